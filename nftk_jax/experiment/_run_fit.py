r"""The end-to-end infinite-width experiment behind ``nftk fit`` and ``nftk reproduce``.

One run: layerwise NTKs of the training set and of test-versus-training inputs are
computed once; every comparison reuses them:

* each single depth :math:`\Omega = e_l` (the stand-alone depth-l NTK),
* the uniform mix :math:`\Omega_{cl} = 1/L`,
* the learned :math:`\Omega` (multiple kernel learning on a seeded validation split of
  the training set, then a refit of :math:`\alpha` on the whole training set).

Layer kernels are trace-normalised by default (``normalize='trace'``): each
:math:`\Theta_l` is divided by the mean of its training diagonal, so that every layer
enters at the same scale and :math:`\Omega` measures importance rather than kernel
magnitude (the raw NTK diagonal grows linearly with depth under ReLU). The learned
weights on the raw kernels are ``omega / scale`` and are saved as well.

Everything a run writes goes to one directory, atomically: ``config.json``,
``metrics.json``, ``omega.npy``, ``omega_raw.npy``, ``omega_trajectory.npy``,
``checkpoint.npz`` (resumable Omega learning) and the figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core._checkpoint import problem_digest
from ..core._io import _jsonable, ensure_writable_dir, write_json, write_npy
from ..model._spec import MLP

__all__ = ["NORMALIZATIONS", "default_ridge", "run_fit"]

#: How layer kernels are scaled before mixing.
NORMALIZATIONS = ("trace", "none")

#: Default ridge relative to the mean training diagonal of the (normalised) kernels.
DEFAULT_RELATIVE_RIDGE = 1e-3


def default_ridge(theta_train: np.ndarray) -> float:
    """``1e-3`` times the mean training diagonal over layers."""
    diag = np.diagonal(theta_train, axis1=1, axis2=2)
    return float(DEFAULT_RELATIVE_RIDGE * np.mean(diag))


def _check_memory(n: int, n_test: int, L: int, d: int, dtype: Any) -> None:
    """Fail early, naming the fix, when the cached kernels cannot fit in memory."""
    from ..linalg._solvers import default_memory_budget

    item = np.dtype(np.float32 if dtype == np.float32 else np.float64).itemsize
    # train kernels, their fit/validation slices (0.8^2 + 0.2 * 0.8), the test
    # kernels and the d class factors of the dense solves.
    need = item * (L * (1.8 * n * n + n_test * n) + d * n * n)
    have = 2 * default_memory_budget()  # physical RAM
    if need > 0.8 * have:
        raise ValueError(
            f"n_train={n} with {L} layers needs about {need / 2**30:.1f} GiB for the "
            f"cached kernels and solves, more than this machine's "
            f"{have / 2**30:.1f} GiB; lower n_train (--n-train)."
        )


def _accuracy(scores: Any, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(np.asarray(scores), axis=1) == labels))


def _evaluate(theta_tr, theta_te, y_tr_enc, y_te, omega, ridge) -> float:
    from ..linalg._krr import krr_fit, krr_predict

    sol = krr_fit(theta_tr, y_tr_enc, omega, ridge=ridge)
    return _accuracy(krr_predict(theta_te, sol.alpha, omega), y_te)


def run_fit(
    spec: MLP,
    dataset: Any,
    out_dir: str | Path,
    *,
    ridge: float | str | None = None,
    objective: str = "val_mse",
    constraint: str = "simplex",
    steps: int = 100,
    tol: float = 1e-5,
    solver: str = "auto",
    normalize: str = "trace",
    validation_fraction: float = 0.2,
    seed: int = 0,
    dtype: Any = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the infinite-width NFT-K experiment and write its run directory.

    Args:
        spec: the architecture.
        dataset: a :class:`nftk_jax.data.Dataset`.
        out_dir: run directory (created; must be writable).
        ridge: ridge > 0, ``'loo'`` / ``'gcv'`` (selected in closed form for the
            uniform mix), or ``None``: ``1e-3`` x mean kernel diagonal.
        objective, constraint, steps, tol, solver: passed to
            :func:`nftk_jax.fit_mkl_kernels`.
        normalize: ``'trace'`` (default) or ``'none'``: see the module docstring.
        validation_fraction: share of the training set held out, stratified and
            seeded, to learn Omega when ``objective='val_mse'``.
        seed: seed of the validation split.
        dtype: kernel and solve dtype; ``None``: float64 when x64 is enabled.
        overwrite: discard an existing checkpoint in ``out_dir`` instead of resuming.
        progress: progress bars.
        log: receives one line per stage.

    Returns:
        The metrics dictionary also written to ``metrics.json``.
    """
    from ..kernels._layerwise import layerwise_kernels
    from ..linalg._krr import encode_targets
    from ..mkl._fit import _validation_split, fit_mkl_kernels

    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}."
        )
    out = ensure_writable_dir(out_dir, "out_dir")
    ckpt = out / "checkpoint.npz"
    if overwrite and ckpt.exists():
        ckpt.unlink()
    x_tr = np.asarray(dataset.x_train)
    x_te = np.asarray(dataset.x_test)
    y_tr = np.asarray(dataset.y_train)
    y_te = np.asarray(dataset.y_test)
    d = len(dataset.classes)
    L = spec.depth
    config = {
        "spec": {
            "depth": spec.depth,
            "activation": spec.activation,
            "activation_kwargs": dict(spec.activation_kwargs or {}),
            "W_std": spec.W_std,
            "b_std": spec.b_std,
            "readout_W_std": spec.readout_W_std,
            "parameterization": spec.parameterization,
        },
        "dataset": dataset.name,
        "classes": list(dataset.classes),
        "n_train": len(x_tr),
        "n_test": len(x_te),
        "ridge": ridge,
        "objective": objective,
        "constraint": constraint,
        "steps": steps,
        "tol": tol,
        "solver": solver,
        "normalize": normalize,
        "validation_fraction": validation_fraction,
        "seed": seed,
        "data_sha256": problem_digest(
            {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}, {}
        ),
        "title": f"{dataset.name}, {spec.activation}, L = {L}",
    }
    _check_memory(len(x_tr), len(x_te), L, d, dtype)
    write_json(out / "config.json", config)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    log(f"layerwise NTKs: {L} layers, {len(x_tr)} train x {len(x_te)} test inputs")
    theta_tr = np.asarray(layerwise_kernels(spec, x_tr, dtype=dtype, progress=progress))
    theta_te = np.asarray(
        layerwise_kernels(spec, x_te, x_tr, dtype=dtype, progress=progress)
    )
    timings["kernels_s"] = time.perf_counter() - t0
    scale = np.mean(np.diagonal(theta_tr, axis1=1, axis2=2), axis=1)
    if normalize == "trace":
        theta_tr = theta_tr / scale[:, None, None]
        theta_te = theta_te / scale[:, None, None]
    else:
        scale = np.ones(L)

    y_enc, _ = encode_targets(y_tr, len(y_tr), n_classes=d)
    uniform = np.full((d, L), 1.0 / L)
    ridge_info: dict[str, Any] = {}
    if ridge is None:
        ridge_value = default_ridge(theta_tr)
        ridge_info["rule"] = "1e-3 x mean training kernel diagonal"
    elif isinstance(ridge, str):
        from ..mkl._ridge import select_ridge

        sel = select_ridge(theta_tr, y_enc, uniform, method=ridge)
        ridge_value = float(sel.ridge)
        ridge_info.update(
            rule=f"{ridge} on the uniform mix", grid=sel.grid, scores=sel.scores
        )
    else:
        ridge_value = float(ridge)
        ridge_info["rule"] = "given"
    ridge_info["value"] = ridge_value
    log(f"ridge = {ridge_value:.4g} ({ridge_info['rule']})")

    t0 = time.perf_counter()
    single = []
    for l in range(L):
        om = np.zeros((d, L))
        om[:, l] = 1.0
        single.append(_evaluate(theta_tr, theta_te, y_enc, y_te, om, ridge_value))
    acc_uniform = _evaluate(theta_tr, theta_te, y_enc, y_te, uniform, ridge_value)
    timings["baselines_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if objective == "val_mse":
        fit_idx, val_idx = _validation_split(
            y_tr, validation_fraction, seed, stratify=True
        )
        theta_fit = theta_tr[:, fit_idx][:, :, fit_idx]
        theta_val = theta_tr[:, val_idx][:, :, fit_idx]
        y_fit, y_val = y_tr[fit_idx], y_tr[val_idx]
    else:
        theta_fit, theta_val, y_fit, y_val = theta_tr, None, y_tr, None
    log(f"learning Omega: objective={objective}, constraint={constraint}")
    result = fit_mkl_kernels(
        theta_fit,
        y_fit,
        theta_val=theta_val,
        y_val=y_val,
        ridge=ridge_value,
        objective=objective,
        constraint=constraint,
        steps=steps,
        tol=tol,
        solver=solver,
        n_classes=d,
        checkpoint=ckpt,
        progress=progress,
    )
    del theta_fit, theta_val
    timings["omega_learning_s"] = time.perf_counter() - t0
    omega = np.asarray(result.omega)
    acc_learned = _evaluate(theta_tr, theta_te, y_enc, y_te, omega, ridge_value)
    hist = result.history
    sparsity = float(np.mean(omega == 0))

    write_npy(out / "omega.npy", omega)
    write_npy(out / "omega_raw.npy", omega / scale[None, :])
    write_npy(out / "omega_trajectory.npy", np.asarray(hist.omega))
    best = int(np.argmax(single))
    metrics = {
        "accuracy": {
            "learned_omega": acc_learned,
            "uniform_omega": acc_uniform,
            "best_single_depth": single[best],
            "best_depth": best + 1,
            "single_depth": single,
        },
        "sparsity": sparsity,
        "ridge": ridge_info,
        "kernel_scale": scale,
        "converged": bool(result.converged),
        "n_steps": int(result.n_steps),
        "history": {
            "objective": np.asarray(hist.objective),
            "grad_norm": np.asarray(hist.grad_norm),
            "sparsity": np.asarray(hist.sparsity),
        },
        "timings_s": timings,
    }
    write_json(out / "metrics.json", metrics)

    from ._figures import plot_omega_heatmaps, plot_omega_trajectory

    plot_omega_heatmaps(
        omega,
        out / "fig2_omega.png",
        class_names=list(dataset.classes),
        title=config["title"],
    )
    if len(hist.objective) > 0:
        plot_omega_trajectory(
            np.asarray(hist.omega),
            out / "omega_trajectory.png",
            objective=np.asarray(hist.objective).tolist(),
        )
    return json.loads(json.dumps(metrics, default=_jsonable))
