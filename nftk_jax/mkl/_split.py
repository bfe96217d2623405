r"""Split, learn, refit: the one place that learns :math:`\Omega` on a validation
split of the training rows and refits the dual coefficients on all of them.

``fit_mkl`` (kernels in memory, on disk or recomputed), ``omega_stability`` and
``nftk fit`` all call :func:`learn_and_refit`; they differ only in how the kernel
blocks are made, which they pass as a ``kernels(part, rows, cols)`` callable
(:func:`array_kernels` for an in-memory array):

* ``kernels("fit", fit, fit)``: ``(L, n_fit, n_fit)``, the kernels Omega is learned on;
* ``kernels("val", val, fit)``: ``(L, n_val, n_fit)``, the validation kernels;
* ``kernels("all", None, None)``: ``(L, n, n)``, the kernels of every row (refit).

Each block is asked for when it is needed and dropped before the next stage, so the
fit and validation blocks are released before the refit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..core import NFTKInputError, check_positive_number, resolve_dtype, take_blocks
from ..linalg import encode_targets, worst_status
from ._evaluator import make_linear_solver
from ._learner import fit_mkl_kernels
from ._result import NFTKResult
from ._solver_options import CG_KEYWORDS, as_solver, with_kind

__all__ = ["array_kernels", "learn_and_refit", "refit_alpha", "validation_split"]

#: ``kernels(part, rows, cols)``: the layer kernels (array or layer operator) of
#: ``rows`` against ``cols`` (``None``: every row), ``part`` naming the block.
Kernels = Callable[[str, Any, Any], Any]


def check_fraction(fraction: Any) -> float:
    """``validation_fraction`` as a float in ``(0, 1)``."""
    frac = check_positive_number(
        fraction,
        f"validation_fraction must be a positive number, got {fraction!r}.",
        f"validation_fraction must be finite and > 0, got {fraction!r}.",
    )
    if frac >= 1:
        raise NFTKInputError(f"validation_fraction must lie in (0, 1), got {fraction}.")
    return frac


def validation_split(
    y: np.ndarray, fraction: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (stratified for labels) split into sorted train and validation indices."""
    check_fraction(fraction)
    rng = np.random.default_rng(seed)
    n = len(y)
    groups = (
        [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
    )
    val = []
    for idx in groups:
        k = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        val.append(rng.permutation(idx)[:k])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    if len(val_idx) == 0 or len(val_idx) == n:
        raise NFTKInputError(
            f"validation_fraction={fraction} leaves an empty training or validation "
            f"part of the {n} examples; pass x_val/y_val or change the fraction."
        )
    train_idx = np.setdiff1d(np.arange(n), val_idx)
    return train_idx, val_idx


def array_kernels(theta: Any, *, refit_dtype: Any = None) -> Kernels:
    """The ``kernels`` callable of in-memory kernels ``theta (L, n, n)``: blocks
    copied out layer by layer (:func:`~nftk_jax.core.take_blocks`), and ``theta``
    itself for every row (as a JAX array of ``refit_dtype`` when given).

    The blocks are in the dtype the learner computes in (float64 when x64 is
    enabled) whatever ``theta``'s: converting while copying makes no float32 block
    that the learner would copy again (``f L n^2`` floats of that dtype, ``f`` the
    fitting share, are all they hold).
    """

    def kernels(part: str, rows: Any, cols: Any) -> Any:
        if rows is not None:
            return take_blocks(theta, rows, cols, dtype=resolve_dtype(None))
        return theta if refit_dtype is None else jnp.asarray(theta, dtype=refit_dtype)

    return kernels


def learn_and_refit(
    kernels: Kernels,
    y: np.ndarray,
    split: tuple[np.ndarray, np.ndarray] | None,
    *,
    ridge: float | Callable[[Any, np.ndarray], float],
    refit: bool = True,
    memory_budget: int | None = None,
    **options: Any,
) -> NFTKResult:
    r""":math:`\Omega` learned on the rows ``split[0]`` against the validation rows
    ``split[1]`` (``objective='val_mse'``), then ``alpha`` refit on all rows.

    Args:
        kernels: ``kernels(part, rows, cols)`` (see the module docstring).
        y: ``(n,)`` labels or ``(n, d)`` targets of all rows.
        split: ``(fit, val)`` row indices; ``None``: learn on all rows with an
            objective that needs no validation part (nothing to refit).
        ridge: :math:`\rho`, or ``ridge(theta_fit, y_fit)`` computing it from the
            kernels Omega is learned on (a selected or relative ridge).
        refit: recompute ``alpha`` on all rows at the learned Omega
            (:func:`refit_alpha`); otherwise ``alpha`` belongs to the fitting rows.
        memory_budget: for the learner's and the refit's solver planner.
        **options: any other keyword of :func:`fit_mkl_kernels`.

    Returns:
        The learner's :class:`NFTKResult`, with the refit ``alpha``.
    """
    if split is None:
        theta = kernels("all", None, None)
        rho = ridge(theta, y) if callable(ridge) else ridge
        return fit_mkl_kernels(
            theta, y, ridge=rho, memory_budget=memory_budget, **options
        )
    fit, val = split
    theta_fit = kernels("fit", fit, fit)
    rho = ridge(theta_fit, y[fit]) if callable(ridge) else ridge
    res = fit_mkl_kernels(
        theta_fit, y[fit], theta_val=kernels("val", val, fit), y_val=y[val],
        ridge=rho, memory_budget=memory_budget, **{"objective": "val_mse", **options},
    )  # fmt: skip
    del theta_fit  # the blocks go before the refit forms its own system
    if not refit:
        return res
    return refit_alpha(res, kernels("all", None, None), y, options, memory_budget)


def refit_alpha(res: NFTKResult, theta, y_arr, options, memory_budget) -> NFTKResult:
    """``res`` with ``alpha`` recomputed on all training inputs at its Omega.

    ``theta`` holds the kernels of all inputs (array or layer operator); the solve
    uses the learner's solver with the learned Omega as the preconditioner's mix.
    """
    Y_all, _ = encode_targets(
        y_arr, len(y_arr), n_classes=options.get("n_classes"), name="y"
    )
    statuses = [res.solver_status]
    loose = {k: options.get(k, default) for k, default in CG_KEYWORDS.items()}
    solver = with_kind(as_solver(options.get("solver", "auto"), **loose), res.solver)
    prepare = make_linear_solver(
        solver,
        theta,
        ridge=res.ridge,
        reference=res.omega,
        memory_budget=memory_budget,
        statuses=statuses,
    )
    alpha = prepare(jnp.asarray(res.omega))(jnp.asarray(Y_all), None)
    status = worst_status(*statuses)
    return res._replace(
        alpha=np.asarray(alpha, dtype=np.float64),
        solver_status=status,
        converged=res.converged and status == "converged",
    )
