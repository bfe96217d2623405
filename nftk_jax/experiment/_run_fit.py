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
``baselines.json`` (the ridge, the single-depth and uniform test predictions and
the validation-selected depths, reused on resume), ``checkpoint.npz`` (resumable
Omega learning), ``omega.npy``, ``omega_raw.npy``, ``omega_trajectory.npy``,
``omega_resamples.npy`` (``K > 1``), ``metrics.json`` (last: its presence marks a
finished run) and the figures. The directory is checked against the configuration
before any work (:mod:`nftk_jax.experiment._run_dir`): a finished run returns at
once, an interrupted one resumes Omega learning from its checkpoint (the kernels are
recomputed: they are not stored), and a different configuration is refused.

Every stage is timed (``metrics['timings_s']``: kernels, ridge, baselines, Omega
learning, evaluation, files and figures), the peak resident memory after each is
recorded (``metrics['peak_rss_gib']``), and every stage that can take more than a
few seconds shows a labelled progress bar.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core import NFTKInputError, jsonable, problem_digest, write_json
from ..model import MLP, RNN
from ._fit_stages import run_stages
from ._run_dir import open_run_dir, run_guard
from ._run_ridge import default_ridge

__all__ = ["NORMALIZATIONS", "default_ridge", "run_fit"]

#: How layer kernels are scaled before mixing.
NORMALIZATIONS = ("trace", "none")


def _check_memory(n: int, n_test: int, L: int, d: int, dtype: Any) -> None:
    """Fail early, naming the fix, when the cached kernels cannot fit in memory."""
    from ..core import resolve_dtype
    from ..linalg import default_memory_budget
    from ._memory import fit_peak_bytes

    kernels = np.float32 if dtype == np.float32 else np.float64
    # the peak of the largest stage (see _memory.py; within 20 % of measured peaks)
    need = fit_peak_bytes(
        n, n_test, L, d, dtype=kernels, learner_dtype=resolve_dtype(None)
    )
    have = 2 * default_memory_budget()  # physical RAM
    if need > 0.8 * have:
        raise NFTKInputError(
            f"n_train={n} with {L} layers needs about {need / 2**30:.1f} GiB at its "
            f"peak (cached kernels, their copies and the per-class solves), more "
            f"than this machine's {have / 2**30:.1f} GiB; lower n_train (--n-train)."
        )


def spec_config(spec: Any) -> dict:
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


def _config(spec, dataset, x_tr, y_tr, x_te, y_te, settings: dict) -> dict:
    return {
        "spec": spec_config(spec),
        "dataset": dataset.name,
        "classes": list(dataset.classes),
        "n_train": len(x_tr),
        "n_test": len(x_te),
        **settings,
        "data_sha256": problem_digest(
            {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}, {}
        ),
        "title": f"{dataset.name}, {spec.activation}, L = {spec.depth}",
    }


def _resume_note(out: Path, state, log) -> None:
    if not state.resumable:
        return
    with np.load(out / "checkpoint.npz", allow_pickle=False) as z:
        step = int(z["step"]) if "step" in z.files else 0
    reused = (out / "baselines.json").is_file()
    log(
        f"resuming from step {step}: the layerwise kernels are recomputed (they are "
        "not stored), the ridge and baselines are "
        + ("reused from baselines.json" if reused else "recomputed")
    )


def _check_options(resamples: Any, objective: str, normalize: str) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)):
        raise NFTKInputError(f"resamples must be an integer >= 1, got {resamples!r}.")
    if resamples < 1 or (resamples > 1 and objective != "val_mse"):
        raise NFTKInputError(
            f"resamples={resamples}: must be >= 1, and > 1 only with "
            "objective='val_mse' (it resamples the validation split)."
        )
    if normalize not in NORMALIZATIONS:
        raise NFTKInputError(
            f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}."
        )


def _finished_run(out: Path, log: Callable[[str], None]) -> dict:
    """The metrics of the finished run in ``out``, marked ``resumed='finished'``."""
    log(
        f"{out} holds this finished run (same configuration): nothing is "
        "recomputed; pass --overwrite (overwrite=True) to run it again"
    )
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["resumed"] = "finished"
    return metrics


def run_fit(
    spec: MLP,
    dataset: Any,
    out_dir: str | Path,
    *,
    ridge: float | str | None = None,
    ridge_grid: tuple[float, float] | None = None,
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
        out_dir: run directory (created at the first write; must be writable).
        ridge: ridge > 0 on the (normalised) kernels, ``'loo'`` / ``'gcv'``
            (selected in closed form for the uniform mix), or ``None``: ``1e-3`` x
            mean kernel diagonal.
        ridge_grid: ``(low, high)``: the ``'loo'``/``'gcv'`` grid, relative to the
            mean kernel diagonal (default ``(1e-6, 10)``).
        objective, constraint, steps, tol, solver: passed to
            :func:`nftk_jax.fit_mkl_kernels`.
        normalize: ``'trace'`` (default) or ``'none'``: see the module docstring.
        validation_fraction: share of the training set held out, stratified and
            seeded, to learn Omega when ``objective='val_mse'``.
        seed: seed of the validation split.
        dtype: kernel and solve dtype; ``None``: float64 when x64 is enabled.
        overwrite: delete an earlier run in ``out_dir`` instead of resuming it.
        progress: progress bars.
        log: receives one line per stage.

    Returns:
        The metrics dictionary also written to ``metrics.json``; its ``'resumed'``
        entry is ``'finished'`` when a finished run was found and returned as is.

    Raises:
        RunDirectoryError: ``out_dir`` holds a run with another configuration.
    """
    _check_options(resamples, objective, normalize)
    x_tr, x_te = np.asarray(dataset.x_train), np.asarray(dataset.x_test)
    y_tr, y_te = np.asarray(dataset.y_train), np.asarray(dataset.y_test)
    settings = dict(
        ridge=ridge, objective=objective, constraint=constraint, steps=steps, tol=tol,
        solver=solver, normalize=normalize, validation_fraction=validation_fraction,
        seed=seed, resamples=int(resamples), bootstrap=bool(bootstrap),
    )  # fmt: skip
    if ridge_grid is not None:
        settings["ridge_grid"] = [float(v) for v in ridge_grid]
    config = _config(spec, dataset, x_tr, y_tr, x_te, y_te, settings)
    _check_memory(len(x_tr), len(x_te), spec.depth, len(dataset.classes), dtype)
    state = open_run_dir(
        out_dir, config, overwrite=overwrite, remedy="pass overwrite=True or another "
        "out_dir (nftk fit: --overwrite or another --name)",
    )  # fmt: skip
    out = state.path
    if state.finished:
        return _finished_run(out, log)
    with run_guard(out, keep=("checkpoint.npz",)):
        if state.config_changed:
            write_json(out / "config.json", config)
        _resume_note(out, state, log)
        metrics = run_stages(
            spec, dataset, out, config, dtype=dtype, progress=progress, log=log,
            ridge_grid=ridge_grid,
        )  # fmt: skip
    return json.loads(json.dumps(metrics, default=jsonable))
