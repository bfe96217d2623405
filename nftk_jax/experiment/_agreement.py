r"""Does a finite network learn the same layer importance as the kernel learner?

The paper trains :math:`\Omega` together with the network at finite width
(:func:`~nftk_jax.finite.train_paper_mode`: alternating steps on :math:`\theta` and
on the head weights :math:`w = \sqrt{\Omega}`); this package learns :math:`\Omega`
on the infinite-width kernels (:func:`~nftk_jax.fit_mkl`). Both weigh the *raw* layer
kernels (the finite network's NTK is :math:`\sum_l w_{cl}^2\Theta_l`), so the
comparison uses the kernel-learned :math:`\Omega` on the raw kernels
(``omega_raw.npy`` of ``nftk fit``). Agreement is measured per class by the
Spearman rank correlation of the two rows (which layers matter, in which order),
which is blind to the overall scale of each row.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core import NFTKInputError

__all__ = ["omega_agreement", "run_interpret"]


def omega_agreement(omega_kernel: Any, omega_finite: Any) -> dict:
    """Per-class Spearman correlation and top-layer agreement of two Omegas.

    Returns ``rank_correlation (d,)`` (NaN for a constant row), its nan-mean
    ``mean_rank_correlation``, and ``top_layer_agreement``: the share of classes
    whose largest entry sits on the same layer (1-based ``top_layer_kernel`` /
    ``top_layer_finite`` are included).

    Example:
        >>> r = omega_agreement([[0.1, 0.2, 0.7]], [[0.2, 0.3, 0.5]])
        >>> r["rank_correlation"].round(6).tolist(), r["top_layer_agreement"]
        ([1.0], 1.0)
    """
    from ..mkl import rank_correlation

    a = np.asarray(omega_kernel, dtype=np.float64)
    b = np.asarray(omega_finite, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise NFTKInputError(
            f"the two Omegas must both be (d, L), got {a.shape} and {b.shape}."
        )
    r = rank_correlation(np.stack([a, b]))
    ta, tb = np.argmax(a, axis=1), np.argmax(b, axis=1)
    return {
        "rank_correlation": r,
        "mean_rank_correlation": float(np.nanmean(r))
        if np.any(np.isfinite(r))
        else float("nan"),
        "top_layer_kernel": (ta + 1).tolist(),
        "top_layer_finite": (tb + 1).tolist(),
        "top_layer_agreement": float(np.mean(ta == tb)),
    }


def run_interpret(
    spec: Any,
    dataset: Any,
    out_dir: str | Path,
    *,
    omega_kernel: Any = None,
    relative_ridge: float = 1e-3,
    steps: int = 100,
    train_steps: int = 2000,
    batch_size: int | None = 50,
    seed: int = 0,
    log=print,
) -> dict:
    """Kernel-learned vs finite-width-trained Omega on one data set; writes a run dir.

    ``omega_kernel`` (raw kernels) is used when given, else learned with
    :func:`~nftk_jax.fit_mkl` (val_mse, simplex, ``relative_ridge``). The finite
    network (``spec.width``) is trained with :func:`~nftk_jax.finite.train_paper_mode`
    (the paper's defaults, ``train_steps`` mini-batch steps). Writes
    ``interpret.json``, ``omega_kernel.npy``, ``omega_finite.npy`` and
    ``omega_agreement.png``; returns the JSON content.
    """
    from ..core import ensure_writable_dir, jsonable, write_json, write_npy
    from ..finite import train_paper_mode
    from ..mkl import fit_mkl
    from ._stability_figures import plot_omega_agreement

    out = ensure_writable_dir(out_dir, "out_dir")
    x, y = np.asarray(dataset.x_train), np.asarray(dataset.y_train)
    d = len(dataset.classes)
    timings = {}
    t0 = time.perf_counter()
    if omega_kernel is None:
        log(f"learning Omega on the infinite-width kernels ({len(x)} inputs)")
        res = fit_mkl(spec, x, y, ridge=relative_ridge, relative_ridge=True,
                      steps=steps, n_classes=d, seed=seed)  # fmt: skip
        omega_kernel = res.omega
    omega_kernel = np.asarray(omega_kernel, dtype=np.float64)
    timings["kernel_omega_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    log(f"training the width-{spec.width} network in paper mode ({train_steps} steps)")
    fin = train_paper_mode(spec, x, y, steps=train_steps, n_classes=d,
                           batch_size=batch_size, seed=seed)  # fmt: skip
    timings["finite_training_s"] = time.perf_counter() - t0
    omega_finite = np.asarray(fin.omega, dtype=np.float64)
    agree = omega_agreement(omega_kernel, omega_finite)
    x_te, y_te = np.asarray(dataset.x_test), np.asarray(dataset.y_test)
    acc = (
        float(np.mean(np.argmax(np.asarray(fin.predict(x_te)), 1) == y_te))
        if len(x_te)
        else None
    )
    write_npy(out / "omega_kernel.npy", omega_kernel)
    write_npy(out / "omega_finite.npy", omega_finite)
    result = {
        **agree,
        "omega_kernel": omega_kernel,
        "omega_finite": omega_finite,
        "finite_test_accuracy": acc,
        "width": spec.width,
        "train_steps": train_steps,
        "timings_s": timings,
    }
    write_json(out / "interpret.json", result)
    plot_omega_agreement(
        omega_kernel, omega_finite, out / "omega_agreement.png",
        correlation=agree["rank_correlation"], class_names=list(dataset.classes),
        title=f"{dataset.name}, L = {spec.depth}, width {spec.width}: "
        f"mean rank correlation {agree['mean_rank_correlation']:.2f}",
    )  # fmt: skip
    return json.loads(json.dumps(result, default=jsonable))
