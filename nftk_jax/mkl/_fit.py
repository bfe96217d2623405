r"""``fit_mkl``: the layerwise kernels of a spec computed once, cached in memory, on
disk or recomputed (layer operators), then Omega learned on a seeded validation
split and the dual coefficients refit on all training inputs by
:func:`~nftk_jax.mkl._split.learn_and_refit`.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import NFTKInputError
from ..linalg import absolute_ridge, check_ridge, encode_targets
from ..model import check_spec_inputs
from ._learner import fit_mkl_kernels
from ._objectives import check_objective
from ._result import NFTKResult
from ._ridge import RIDGE_METHODS, select_ridge_for_labels
from ._split import array_kernels, check_fraction, learn_and_refit, validation_split

__all__ = ["KERNEL_STORAGES", "fit_mkl"]

#: Names accepted by ``fit_mkl(kernel_storage=)``.
KERNEL_STORAGES = ("memory", "disk", "recompute")


def _check_cached_kernels_fit(n: int, depth: int, dtype: np.dtype) -> None:
    """The learner caches ``(L, n, n)`` kernels: fail early when they cannot fit."""
    from ..linalg import default_memory_budget

    ram = 2 * default_memory_budget()
    # The kernels, and at most L n^2 float64 beside them: the learner's float64
    # blocks (f L n^2, f < 1), or the refit's float64 copy of float32 kernels.
    need = (np.dtype(dtype).itemsize + 8) * depth * n * n
    if need > 0.8 * ram:
        raise NFTKInputError(
            f"x has n={n} rows: the cached (L, n, n) kernels need about "
            f"{need / 2**30:.1f} GiB, more than this machine's {ram / 2**30:.1f} GiB. "
            "Pass kernel_storage='disk' with a kernel_dir (kernels streamed from "
            "float32 files) or kernel_storage='recompute', or learn Omega on a "
            "subset of x."
        )


def fit_mkl(
    spec: Any,
    x: Any,
    y: Any,
    *,
    x_val: Any = None,
    y_val: Any = None,
    ridge: float,
    objective: str = "val_mse",
    validation_fraction: float = 0.2,
    seed: int = 0,
    refit: bool = True,
    relative_ridge: bool = False,
    memory_budget: int | None = None,
    dtype: Any = None,
    progress: bool = False,
    kernel_storage: str = "memory",
    kernel_dir: str | os.PathLike | None = None,
    engine: str = "auto",
    **options: Any,
) -> NFTKResult:
    r"""Compute the layerwise kernels of ``spec`` once and learn :math:`\Omega`.

    With ``objective='val_mse'`` and no ``x_val``, a seeded validation part
    (``validation_fraction`` of the examples, stratified by label for
    classification) is split off; :math:`\Omega` is learned on the rest, and with
    ``refit=True`` the dual coefficients are then recomputed on all of ``x`` with the
    learned :math:`\Omega`. The kernels of all inputs are computed in one call and
    sliced, never twice.

    Args:
        spec: an :class:`~nftk_jax.MLP`.
        x: ``(n, features)`` training inputs.
        y: ``(n,)`` integer labels or ``(n, d)`` targets.
        x_val: optional validation inputs (then no split is made).
        y_val: their labels/targets.
        ridge: :math:`\rho > 0`, or ``'loo'`` / ``'gcv'``: selected in closed
            form (:func:`~nftk_jax.mkl._ridge.select_ridge`) on the kernels
            :math:`\Omega` is learned on, for the uniform mix, as ``nftk fit
            --ridge loo`` does (``relative_ridge`` is then ignored).
        objective: see :func:`fit_mkl_kernels`.
        validation_fraction: fraction held out when splitting, in ``(0, 1)``.
        seed: seed of the split.
        refit: recompute ``alpha`` on all training inputs after learning.
        relative_ridge: read ``ridge`` relative to the kernel scale: the ridge used
            is ``ridge`` times the mean diagonal of the training kernels, averaged
            over layers (reported as ``result.ridge``).
        memory_budget: bytes per tile for the kernel computation (and the solver
            planner).
        dtype: kernel dtype (default float64).
        progress: progress bars for the kernels and the steps.
        kernel_storage: where the ``(L, n, n)`` kernels live. ``'memory'``
            (default): cached in RAM, :math:`8 L n^2` bytes. ``'disk'``: computed
            once into files under ``kernel_dir`` (float32,
            :class:`~nftk_jax.kernels.DiskLayerOperator`) and streamed back in
            row panels for every product; reused when present, so an interrupted
            fit restarts without recomputing them. ``'recompute'``: nothing
            stored, every product recomputes the kernel tiles
            (:class:`~nftk_jax.kernels._operators.StreamedLayerOperator`). The last two
            learn :math:`\Omega` with ``solver='matrix_free'`` (CG, one pass over
            the kernels per iteration) and hold :math:`O(n^2)` floats only for
            the mean-kernel preconditioner (float32 past half the memory
            budget; ``preconditioner='none'`` drops it).
        kernel_dir: directory of the ``'disk'`` stores (created if needed).
        engine: kernel engine, as in :func:`~nftk_jax.layerwise_kernels`
            (``'auto'``: the fast closed-form recursion where it exists).
        **options: any other keyword of :func:`fit_mkl_kernels`.

    Returns:
        An :class:`NFTKResult` that can ``predict(x_new)``.
    """
    from ..core import resolve_dtype

    if "theta_val" in options:
        raise NFTKInputError("fit_mkl computes theta_val itself; pass x_val and y_val.")
    with jax.enable_x64(True):
        xx, y_arr, is_clf, n_classes = _check_fit_inputs(spec, x, y, options)
        if n_classes is not None:
            options["n_classes"] = n_classes
        objective = check_objective(objective)
        frac = check_fraction(validation_fraction)
        rho = _ridge_or_method(ridge, kernel_storage)
        dt = resolve_dtype(dtype)
        if kernel_storage not in KERNEL_STORAGES:
            raise NFTKInputError(
                f"kernel_storage={kernel_storage!r} is unknown; choose one of "
                f"{list(KERNEL_STORAGES)}."
            )
        xv, split = _plan_split(
            spec, xx, y_arr, is_clf, x_val=x_val, y_val=y_val, objective=objective,
            frac=frac, seed=seed,
        )  # fmt: skip
        run = {"objective": objective, "progress": progress,
               "memory_budget": memory_budget, **options}  # fmt: skip
        fit = {"xv": xv, "y_val": y_val, "split": split, "rho": rho,
               "relative_ridge": relative_ridge, "refit": refit,
               "run": run}  # fmt: skip
        if kernel_storage == "memory":
            _check_cached_kernels_fit(len(xx), spec.depth, dt)
            kern = {"memory_budget": memory_budget, "dtype": dt,
                    "progress": progress, "engine": engine}  # fmt: skip
            res = _fit_mkl_memory(spec, xx, y_arr, kern=kern, **fit)
        else:
            res = _fit_mkl_operators(
                spec, xx, y_arr, storage=kernel_storage, kernel_dir=kernel_dir,
                dtype=dt, engine=engine, **fit,
            )  # fmt: skip
    # alpha belongs to all of x, or to the fitting rows when not refit
    x_train = xx if split is None or refit else xx[split[0]]
    return res._replace(spec=spec, x_train=np.asarray(x_train), kernel_dtype=dt)


def _check_fit_inputs(spec, x, y, options) -> tuple[np.ndarray, np.ndarray, bool, Any]:
    """``x`` and ``y`` checked; whether ``y`` holds labels, and their number of
    classes (``None`` for targets or when ``options`` sets it)."""
    xx = check_spec_inputs(spec, x, "x")
    y_arr = np.asarray(y)
    if y_arr.ndim == 0 or y_arr.shape[0] != len(xx):
        raise NFTKInputError(
            f"y must have one entry per row of x: x has {len(xx)} rows, y has "
            f"shape {y_arr.shape}."
        )
    # Encode once on all labels so the split keeps every class index.
    n_classes = options.get("n_classes")
    _, is_clf = encode_targets(y_arr, len(xx), n_classes=n_classes, name="y")
    if is_clf and n_classes is None:
        return xx, y_arr, True, int(np.max(y_arr.astype(np.int64))) + 1
    return xx, y_arr, is_clf, None


def _scaled_ridge(rho, relative_ridge, theta, y_fit, n_classes) -> float:
    """The ridge of a fit on ``theta``: selected (``rho`` a method name), relative
    to the mean kernel diagonal, or ``rho`` itself."""
    if isinstance(rho, str):
        return select_ridge_for_labels(theta, y_fit, rho, n_classes=n_classes).ridge
    return absolute_ridge(rho, theta) if relative_ridge else rho


def _plan_split(spec, xx, y_arr, is_clf, *, x_val, y_val, objective, frac, seed):
    """``(x_val checked, None)`` when the caller gave validation inputs, else
    ``(None, split)``: the seeded validation split of ``x`` for ``'val_mse'``,
    ``None`` for an objective that needs no validation part."""
    if x_val is not None:
        xv = check_spec_inputs(spec, x_val, "x_val", like=xx)
        if y_val is None:
            raise NFTKInputError("x_val was given without y_val; pass both.")
        return xv, None
    if objective != "val_mse":
        return None, None
    if y_val is not None:
        raise NFTKInputError("y_val was given without x_val; pass both.")
    labels = y_arr if is_clf else np.zeros(len(xx))
    return None, validation_split(labels, frac, seed, stratify=is_clf)


def _fit_mkl_memory(
    spec, xx, y_arr, *, xv, y_val, split, rho, relative_ridge, refit, kern, run
) -> NFTKResult:
    """:func:`fit_mkl` with cached kernels, computed once for all inputs and
    sliced."""
    from ..kernels import layerwise_kernels

    def ridge_for(theta, y_fit) -> float:
        return _scaled_ridge(rho, relative_ridge, theta, y_fit, run.get("n_classes"))

    theta = layerwise_kernels(spec, xx, **kern)
    if xv is not None:
        theta_val = layerwise_kernels(spec, xv, xx, **kern)
        return fit_mkl_kernels(theta, y_arr, theta_val=theta_val, y_val=y_val,
                               ridge=ridge_for(theta, y_arr), **run)  # fmt: skip
    # The refit solves in float64 whatever the kernel dtype.
    kernels = array_kernels(theta, refit_dtype=None if split is None else jnp.float64)
    return learn_and_refit(kernels, y_arr, split, ridge=ridge_for, refit=refit, **run)


def _ridge_or_method(ridge: Any, kernel_storage: str) -> float | str:
    """A ridge > 0, or a selection method name of :data:`RIDGE_METHODS`."""
    if isinstance(ridge, str):
        if ridge not in RIDGE_METHODS:
            raise NFTKInputError(
                f"ridge={ridge!r} is unknown; pass a number > 0 or one of "
                f"{list(RIDGE_METHODS)} to select it in closed form."
            )
        if kernel_storage != "memory":
            raise NFTKInputError(
                f"ridge={ridge!r} selects the ridge from the cached kernels; with "
                f"kernel_storage={kernel_storage!r} pass a number."
            )
        return ridge
    return check_ridge(ridge)


def _fit_mkl_operators(
    spec, xx, y_arr, *, xv, y_val, split, rho, relative_ridge, refit, storage,
    kernel_dir, dtype, engine, run,
) -> NFTKResult:  # fmt: skip
    """:func:`fit_mkl` with the kernels on disk or recomputed: layer operators."""
    from ..kernels import DiskLayerOperator, StreamedLayerOperator

    if storage == "disk":
        if kernel_dir is None:
            raise NFTKInputError(
                "kernel_storage='disk' needs kernel_dir, a directory for the kernel "
                "files (about 4 L n^2 bytes)."
            )
        os.makedirs(kernel_dir, exist_ok=True)

    memory_budget, progress = run["memory_budget"], run["progress"]

    def operator(name, x1, x2=None):
        if storage == "recompute":
            return StreamedLayerOperator(
                spec, x1, x2, memory_budget=memory_budget, dtype=dtype, engine=engine
            )
        return DiskLayerOperator.build(
            spec,
            x1,
            x2,
            path=os.path.join(os.fspath(kernel_dir), f"{name}.bin"),
            compute_dtype=dtype,
            memory_budget=memory_budget,
            progress=progress,
            engine=engine,
        )

    def scaled(op) -> float:
        return absolute_ridge(rho, op) if relative_ridge else rho

    run = {"solver": "matrix_free", **run}
    if xv is not None:
        op = operator("train", xx)
        return fit_mkl_kernels(op, y_arr, theta_val=operator("xval", xv, xx),
                               y_val=y_val, ridge=scaled(op), **run)  # fmt: skip

    def kernels(part, rows, cols):
        if rows is None:
            return operator("train", xx)
        return operator(part, xx[rows], None if part == "fit" else xx[cols])

    return learn_and_refit(
        kernels, y_arr, split, ridge=lambda op, _: scaled(op), refit=refit, **run
    )
