r"""The end-to-end infinite-width experiment behind ``nftk fit`` and ``nftk reproduce``.

One run: layerwise NTKs of the training set and of test-versus-training inputs are
computed once; every comparison reuses them:

* each single depth :math:`\Omega = e_l` (the stand-alone depth-l NTK),
* the uniform mix :math:`\Omega_{cl} = 1/L`,
* the learned :math:`\Omega` (multiple kernel learning on a seeded validation split of
  the training set, then a refit of :math:`\alpha` on the whole training set).

The single depth a user could choose is the one with the best accuracy on the same
validation split; it, the uniform mix and the learned :math:`\Omega` are reported with
bootstrap intervals and paired tests (:mod:`nftk_jax.experiment._baselines`). The
depth that is best on the *test* set is kept only as a row labelled *oracle*. With
``resamples=K > 1``, :math:`\Omega` is learned again on ``K - 1`` further seeded
splits (same kernels), the stability of its entries is summarised
(:mod:`nftk_jax.mkl._stability`) and drawn next to Fig. 2, and every row gets the
mean test accuracy over the ``K`` splits with a Student-t interval.

Layer kernels are trace-normalised by default (``normalize='trace'``): each
:math:`\Theta_l` is divided by the mean of its training diagonal, so that every layer
enters at the same scale and :math:`\Omega` measures importance rather than kernel
magnitude (the raw NTK diagonal grows linearly with depth under ReLU). The learned
weights on the raw kernels are ``omega / scale`` and are saved as well.

Everything a run writes goes to one directory, atomically: ``config.json``,
``metrics.json``, ``omega.npy``, ``omega_raw.npy``, ``omega_trajectory.npy``,
``checkpoint.npz`` (resumable Omega learning), ``omega_resamples.npy`` (``K > 1``)
and the figures.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core._checkpoint import problem_digest
from ..core._io import _jsonable, ensure_writable_dir, write_json, write_npy
from ..model._rnn import RNN
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


def _spec_config(spec: Any) -> dict:
    """The spec's fields for config.json."""
    if isinstance(spec, RNN):
        return {"arch": "rnn", **dataclasses.asdict(spec)}
    return {
        "depth": spec.depth,
        "activation": spec.activation,
        "activation_kwargs": dict(spec.activation_kwargs or {}),
        "W_std": spec.W_std,
        "b_std": spec.b_std,
        "readout_W_std": spec.readout_W_std,
        "parameterization": spec.parameterization,
    }


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
    resamples: int = 1,
    bootstrap: bool = False,
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
        seed: seed of the validation split (run ``k`` of ``resamples`` uses
            ``seed + k``).
        resamples: number ``K`` of validation splits Omega is learned on (1: one).
        bootstrap: with ``resamples > 1``, also resample each fitting part with
            replacement.
        dtype: kernel and solve dtype; ``None``: float64 when x64 is enabled.
        overwrite: discard an existing checkpoint in ``out_dir`` instead of resuming.
        progress: progress bars.
        log: receives one line per stage.

    Returns:
        The metrics dictionary also written to ``metrics.json``.
    """
    from ..kernels._layerwise import layerwise_kernels
    from ..linalg._krr import encode_targets
    from ..mkl._fit import fit_mkl_kernels
    from ..mkl._stability import resample_splits

    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)):
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}.")
    if resamples < 1 or (resamples > 1 and objective != "val_mse"):
        raise ValueError(
            f"resamples={resamples}: must be >= 1, and > 1 only with "
            "objective='val_mse' (it resamples the validation split)."
        )
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
        "spec": _spec_config(spec),
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
        "resamples": int(resamples),
        "bootstrap": bool(bootstrap),
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

    # Run 0 is the split fit_mkl makes with `seed`; it also selects the single depth
    # when the objective needs no validation part.
    def _splits(boot: bool) -> tuple:
        return resample_splits(
            y_tr, max(int(resamples), 2), validation_fraction=validation_fraction,
            seed=seed, bootstrap=boot,
        )[: int(resamples)]  # fmt: skip

    splits = _splits(False)
    if bootstrap and resamples > 1:  # run 0 stays the run's own split
        splits = splits[:1] + _splits(True)[1:]
    if objective == "val_mse":
        fit_idx, val_idx = splits[0]
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
    omega = np.asarray(result.omega)
    omegas = [omega]
    if resamples > 1:
        from ..mkl._stability import fit_split, summarise_omegas

        log(f"learning Omega on {resamples - 1} more validation splits")
        for fit_idx, val_idx in splits[1:]:
            omegas.append(fit_split(
                theta_tr, y_tr, fit_idx, val_idx, ridge=ridge_value,
                constraint=constraint, steps=steps, tol=tol, solver=solver,
                n_classes=d,
            ))  # fmt: skip
    timings["omega_learning_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    from ._baselines import honest_baselines

    baselines = honest_baselines(
        theta_tr, theta_te, y_tr, y_te, ridge=ridge_value, omegas=np.stack(omegas),
        splits=splits, seed=seed,
    )  # fmt: skip
    timings["baselines_s"] = time.perf_counter() - t0
    rows = baselines["rows"]
    single = [float(v) for v in baselines.pop("single_depth_test_accuracy")]
    hist = result.history
    sparsity = float(np.mean(omega == 0))

    write_npy(out / "omega.npy", omega)
    write_npy(out / "omega_raw.npy", omega / scale[None, :])
    write_npy(out / "omega_trajectory.npy", np.asarray(hist.omega))
    metrics = {
        "accuracy": {
            "learned_omega": rows[0]["test_accuracy"],
            "validation_selected_single_depth": rows[1]["test_accuracy"],
            "validation_selected_depth": rows[1]["depth"],
            "uniform_omega": rows[2]["test_accuracy"],
            "oracle_best_single_depth": rows[3]["test_accuracy"],
            "oracle_best_depth": rows[3]["depth"],
            "single_depth": single,
        },
        "baselines": baselines,
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
    stability = None
    if resamples > 1:
        stability = summarise_omegas(np.stack(omegas), splits=splits,
                                     bootstrap=bootstrap)  # fmt: skip
        write_npy(out / "omega_resamples.npy", stability.omegas)
        metrics["stability"] = {
            "mean": stability.mean,
            "lower": stability.lower,
            "upper": stability.upper,
            "confidence": stability.confidence,
            "selection_frequency": stability.selection_frequency,
            "rank_correlation": stability.rank_correlation,
            "mean_rank_correlation": stability.mean_rank_correlation,
        }
    write_json(out / "metrics.json", metrics)

    from ._figures import plot_omega_heatmaps, plot_omega_trajectory

    plot_omega_heatmaps(
        omega,
        out / "fig2_omega.png",
        class_names=list(dataset.classes),
        title=config["title"],
    )
    if stability is not None:
        from ._stability_figures import plot_omega_stability

        plot_omega_stability(
            stability,
            out / "fig2_omega_stability.png",
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
