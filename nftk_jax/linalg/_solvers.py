r"""Linear solvers for the per-class systems :math:`(K_c + \rho I)\alpha_c = y_c`.

With :math:`K_c = \sum_l \Omega_{cl}\Theta_l` the ``d`` class systems share the
layerwise kernels but not the matrix. Three solvers cover the memory range:

* :func:`solve_dense`: batched per-class Cholesky (:func:`~nftk_jax.krr_fit`),
  :math:`O(d n^3)` time, cached ``(L, n, n)`` kernels plus ``(d, n, n)`` factors.
* :func:`solve_cg`: conjugate gradients batched over the ``d`` classes, from the
  cached kernels; :math:`O(k\,d\,n^2)` for ``k`` iterations, warm-startable, which
  is what an outer loop over :math:`\Omega` wants.
* :func:`solve_cg_matrix_free`: the same iteration where every product is streamed
  over kernel tiles (:func:`~nftk_jax.layerwise_matvec`), for ``n`` too
  large to cache :math:`L n^2` floats.

Their preconditioners live in :mod:`._preconditioners`; :func:`plan_solver` picks
a solver from the memory each one needs.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import (
    NFTKInputError,
    NFTKTypeError,
    check_positive_float,
    check_positive_int,
    progress_bar,
    resolve_dtype,
)
from ..kernels import is_layer_operator as _is_operator
from ..model import MLP
from ._krr import check_omega, check_ridge, krr_fit
from ._preconditioners import CholeskyPreconditioner, NystromPreconditioner

__all__ = [
    "CG_STATUSES",
    "CGState",
    "DEFAULT_DENSE_MAX_N",
    "SolveResult",
    "default_memory_budget",
    "plan_solver",
    "solve_cg",
    "solve_cg_matrix_free",
    "solve_dense",
    "worst_status",
]

#: Budget used when physical memory cannot be queried (8 GiB).
_FALLBACK_BUDGET = 8 << 30
#: Largest ``n`` for which :func:`plan_solver` prefers per-class Cholesky over CG
#: when both fit. Cholesky costs ``d n^3 / 3`` flops, CG ``k d n^2`` for ``k`` ~ 100-200
#: iterations on MNIST NTKs; at ``n = 3200`` cold CG (tol 1e-8) already took 0.3x
#: the Cholesky time (benchmarks/RESULTS.md), so with the learner's two solves per
#: Omega (value and adjoint, one factorisation) the crossover is near ``n = 2000``.
DEFAULT_DENSE_MAX_N = 2000


#: What a solve reports in ``SolveResult.status``, best first: every class reached
#: ``tol``; the iteration cap ran out first; CG met :math:`p^\top A p \le 0` or
#: :math:`r^\top M^{-1} r \le 0` (the system or the preconditioner is not positive
#: definite), so the iterate is not a solution.
CG_STATUSES = ("converged", "max_steps", "breakdown")
#: CG replaces its recursively updated residual by the true one, ``b - A x``,
#: every this many iterations (as lineax does), so that rounding cannot make the
#: stopping test pass on a residual the iterate does not have.
TRUE_RESIDUAL_EVERY = 50


class SolveResult(NamedTuple):
    r"""Solution of the ``d`` systems :math:`(K_c + \rho I)\alpha_c = y_c`."""

    alpha: jax.Array  # (n, d) float: column c approximates (K_c + ridge I)^{-1} y_c
    iterations: int  # CG iterations run (products with every K_c); 0 for Cholesky
    residual: np.ndarray  # (d,) float64: true ||y_c - A_c alpha_c|| / ||y_c||
    jitter: float  # extra diagonal the Cholesky needed (absolute); 0.0 for CG
    status: str = "converged"  # worst over classes, one of CG_STATUSES


def worst_status(*statuses: str) -> str:
    """The worst of ``statuses`` in the order of :data:`CG_STATUSES`."""
    return max(statuses, key=CG_STATUSES.index, default="converged")


def check_system(theta: Any, y: Any, omega: Any, dtype: np.dtype):
    """``theta (L, n, n)``, ``y (n, d)``, ``omega (d, L)`` as arrays of ``dtype``."""
    th = jnp.asarray(theta)
    if th.ndim != 3 or th.shape[1] != th.shape[2]:
        raise NFTKInputError(
            f"theta must be the (L, n, n) training kernels, got shape {th.shape}."
        )
    yy = np.asarray(y)
    if yy.ndim != 2 or yy.shape[0] != th.shape[1]:
        raise NFTKInputError(
            f"Y must be an (n, d) = ({th.shape[1]}, d) target matrix, got shape "
            f"{yy.shape}; encode labels first with encode_targets."
        )
    if not np.all(np.isfinite(yy)):
        raise NFTKInputError("Y contains NaN or inf.")
    om = check_omega(omega, n_classes=yy.shape[1], depth=th.shape[0])
    return th.astype(dtype), jnp.asarray(yy, dtype), jnp.asarray(om, dtype)


def _check_targets(Y: Any, n: int) -> np.ndarray:
    """``Y`` as a finite ``(n, d)`` array."""
    yy = np.asarray(Y)
    if yy.ndim != 2 or yy.shape[0] != n:
        raise NFTKInputError(
            f"Y must be an (n, d) = ({n}, d) target matrix, got shape {yy.shape}."
        )
    if not np.all(np.isfinite(yy)):
        raise NFTKInputError("Y contains NaN or inf.")
    return yy


def _check_maxiter(maxiter: Any, n: int) -> int:
    """``None`` (then ``10 n``, as SciPy) or an integer >= 1."""
    return 10 * n if maxiter is None else check_positive_int(maxiter, "maxiter")


def _check_x0(x0: Any, shape: tuple[int, int], dtype: np.dtype) -> jax.Array:
    if x0 is None:
        return jnp.zeros(shape, dtype)
    arr = np.asarray(x0)
    if arr.shape != shape:
        raise NFTKInputError(
            f"x0 must have the shape of the solution (n, d) = {shape}, got "
            f"{arr.shape}; pass a previous SolveResult.alpha or None."
        )
    if not np.all(np.isfinite(arr)):
        raise NFTKInputError("x0 contains NaN or inf; pass None for a cold start.")
    return jnp.asarray(arr, dtype)


def _validate_preconditioner(pre: Any, n: int, d: int) -> None:
    """``pre`` is ``None`` or a preconditioner built for ``n`` points (and, per
    class, for the ``d`` classes)."""
    if pre is None:
        return
    if not isinstance(pre, NystromPreconditioner | CholeskyPreconditioner):
        raise NFTKInputError(
            "preconditioner must be None, a NystromPreconditioner from "
            "nystrom_preconditioner or a CholeskyPreconditioner from "
            f"cholesky_preconditioner, got {type(pre).__name__}."
        )
    if pre.size != n:
        raise NFTKInputError(
            f"preconditioner was built for n={pre.size} points but the "
            f"system has n={n}; rebuild it on the same training set."
        )
    classes = getattr(pre, "classes", None)
    if classes is not None and classes != d:
        raise NFTKInputError(
            f"preconditioner is per class for d={classes} classes but the system "
            f"has d={d} columns; rebuild it with this system's omega."
        )


def _check_preconditioner(pre: Any, n: int, d: int, dtype: np.dtype):
    """``None`` or ``pre`` with device arrays, ready to cross ``jit``."""
    _validate_preconditioner(pre, n, d)
    if isinstance(pre, CholeskyPreconditioner):  # keeps its own dtype
        return dataclasses.replace(pre, factor=jnp.asarray(pre.factor))
    if isinstance(pre, NystromPreconditioner):
        return dataclasses.replace(
            pre,
            basis=jnp.asarray(pre.basis, dtype),
            eigvals=jnp.asarray(pre.eigvals, dtype),
            landmarks=None,  # not needed to apply it
        )
    return None


# --------------------------------------------------------------------- memory plan


def default_memory_budget() -> int:
    """Half of physical RAM in bytes (``os.sysconf``), or 8 GiB if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return _FALLBACK_BUDGET
    return int(total) // 2 if total > 0 else _FALLBACK_BUDGET


def memory_budget_or_default(memory_budget: Any) -> int:
    if memory_budget is None:
        return default_memory_budget()
    return check_positive_int(memory_budget, "memory_budget")


def plan_solver(
    n: int,
    depth: int,
    n_classes: int,
    *,
    memory_budget: int | None = None,
    dtype: Any = None,
    dense_max_n: int = DEFAULT_DENSE_MAX_N,
) -> str:
    r"""Which solver fits ``n`` points, ``L = depth`` kernels and ``d`` classes.

    With ``s`` bytes per float (8 for float64) and budget ``B`` bytes:

    * ``'cg_matrix_free'`` if the cached kernels do not fit: :math:`s L n^2 > B`;
    * ``'dense'`` if kernels and the ``d`` Cholesky factors fit,
      :math:`s (L + d) n^2 \le B`, and ``n <= dense_max_n`` (beyond it CG is
      faster than :math:`d n^3/3` flops of factorisation);
    * ``'cg'`` otherwise (kernels cached, factors too big or ``n`` too large).

    Args:
        n: number of training points.
        depth: number of layerwise kernels ``L``.
        n_classes: number of classes ``d``.
        memory_budget: bytes; default :func:`default_memory_budget` (half of RAM).
        dtype: float32 or float64; ``None``: float64 when x64 is enabled.
        dense_max_n: largest ``n`` for which Cholesky is preferred.

    Returns:
        ``'dense'``, ``'cg'`` or ``'cg_matrix_free'``.
    """
    n = check_positive_int(n, "n")
    depth = check_positive_int(depth, "depth")
    n_classes = check_positive_int(n_classes, "n_classes")
    dense_max_n = check_positive_int(dense_max_n, "dense_max_n")
    budget = memory_budget_or_default(memory_budget)
    s = resolve_dtype(dtype).itemsize
    kernels = s * depth * n * n
    factors = s * n_classes * n * n
    if kernels > budget:
        return "cg_matrix_free"
    if kernels + factors <= budget and n <= dense_max_n:
        return "dense"
    return "cg"


# ------------------------------------------------------------------------ matvecs


def _theta_matvec(theta, omega, ridge, v):
    """``[(sum_l omega[c,l] theta_l) + ridge I] v[:, c]`` per column, ``(n, d)``."""
    per_layer = jnp.einsum("lij,jc->lic", theta, v)
    return jnp.einsum("cl,lic->ic", omega, per_layer) + ridge * v


def _kernel_matvec(k, ridge, v):
    """``(K_c + ridge I) v[:, c]`` per column from formed ``(d, n, n)`` kernels."""
    return jnp.einsum("cij,jc->ic", k, v) + ridge * v


@jax.jit
def _form_kernels(theta, omega):
    # One GEMM: (d, L) @ (L, n*n).
    L, n, _ = theta.shape
    return (omega @ theta.reshape(L, -1)).reshape(omega.shape[0], n, n)


def _relative(r, bnorm):
    return jnp.linalg.norm(r, axis=0) / bnorm


def _residual(theta, omega, ridge, alpha, y) -> np.ndarray:
    b = jnp.linalg.norm(y, axis=0)
    r = y - _theta_matvec(theta, omega, ridge, alpha)
    return np.asarray(_relative(r, jnp.where(b > 0, b, 1.0)), dtype=np.float64)


# ---------------------------------------------------------------------------- dense


def solve_dense(theta: Any, Y: Any, omega: Any, *, ridge: float) -> SolveResult:
    r"""Per-class Cholesky solve of :math:`(K_c + \rho I)\alpha_c = y_c`.

    A wrapper of :func:`~nftk_jax.krr_fit` (batched Cholesky with jitter
    escalation) that reports the relative residuals of the un-jittered systems.

    Args:
        theta: ``(L, n, n)`` training kernels.
        Y: ``(n, d)`` float targets.
        omega: ``(d, L)`` non-negative layer weights.
        ridge: :math:`\rho > 0`.

    Returns:
        A :class:`SolveResult` with ``iterations=0``.
    """
    rho = check_ridge(ridge)
    dtype = resolve_dtype(None)
    th, yy, om = check_system(theta, Y, omega, dtype)
    sol = krr_fit(th, yy, om, ridge=rho)
    alpha = jnp.asarray(sol.alpha, dtype)
    return SolveResult(alpha, 0, _residual(th, om, rho, alpha, yy), float(sol.jitter))


# ------------------------------------------------------------------------------ CG


class CGState(NamedTuple):
    """The batched CG iteration between two steps (a pytree of arrays)."""

    k: jax.Array  # () int: iterations done
    x: jax.Array  # (n, d) float: iterate
    r: jax.Array  # (n, d) float: residual b - A x (recursive; true every 50 steps)
    p: jax.Array  # (n, d) float: search directions
    rz: jax.Array  # (d,) float: r^T M^{-1} r
    active: jax.Array  # (d,) bool: class neither converged nor broken down
    rel: jax.Array  # (d,) float: ||r|| / ||b||
    broken: jax.Array  # (d,) bool: p^T A p <= 0 or r^T M^{-1} r <= 0 was met


def _precondition(pre, r):
    return r if pre is None else pre.apply(r)


def _rhs_norms(b):
    """Column norms of ``b``, 1 where a column is zero (relative residuals)."""
    bnorm = jnp.linalg.norm(b, axis=0)
    return jnp.where(bnorm > 0, bnorm, 1.0)


def _cg_init(ax0, b, x0, tol, precondition):
    bnorm = _rhs_norms(b)
    r = b - ax0
    z = precondition(r)
    rel = _relative(r, bnorm)
    rz = jnp.sum(r * z, axis=0)
    active = rel > tol
    broken = active & ~(rz > 0)
    state = CGState(jnp.asarray(0), x0, r, z, rz, active & ~broken, rel, broken)
    return state, bnorm


def _cg_advance(state: CGState, ap, bnorm):
    """First half of a CG step given ``ap = A p``: new iterate and residual."""
    pap = jnp.sum(state.p * ap, axis=0)
    step = state.active & (pap > 0)  # pap <= 0 (or NaN): breakdown, stop that class
    broken = state.broken | (state.active & ~step)
    a = jnp.where(step, state.rz / jnp.where(step, pap, 1.0), 0.0)
    x = state.x + a * state.p
    r = state.r - a * ap
    return x, r, _relative(r, bnorm), step, broken


def _cg_direction(state: CGState, x, r, rel, step, broken, z, tol) -> CGState:
    """Second half given ``z = M^{-1} r``: the next search direction."""
    rz_new = jnp.sum(r * z, axis=0)
    go = step & (rel > tol)
    broken = broken | (go & ~(rz_new > 0))  # M^{-1} is not positive definite
    beta = jnp.where(step, rz_new / jnp.where(state.rz != 0, state.rz, 1.0), 0.0)
    p = z + beta * state.p
    return CGState(state.k + 1, x, r, p, rz_new, go & ~broken, rel, broken)


def _true_residual_due(k) -> Any:
    """Whether iteration ``k + 1`` replaces the recursive residual by the true one."""
    return (k + 1) % TRUE_RESIDUAL_EVERY == 0


def _cg_update(state: CGState, matvec, b, bnorm, tol, pre) -> CGState:
    """One batched CG step; converged and broken-down classes are frozen."""
    x, r, rel, step, broken = _cg_advance(state, matvec(state.p), bnorm)
    r = jax.lax.cond(_true_residual_due(state.k), lambda: b - matvec(x), lambda: r)
    rel = _relative(r, bnorm)
    return _cg_direction(state, x, r, rel, step, broken, _precondition(pre, r), tol)


_cg_advance_jit = jax.jit(_cg_advance)
_cg_direction_jit = jax.jit(_cg_direction)


@functools.partial(jax.jit, static_argnames="formed")
def _cg_cached(op, ridge, b, x0, tol, maxiter, pre, *, formed: bool):
    if formed:
        matvec = functools.partial(_kernel_matvec, op, ridge)
    else:
        matvec = functools.partial(_theta_matvec, op[0], op[1], ridge)
    precondition = functools.partial(_precondition, pre)
    state, bnorm = _cg_init(matvec(x0), b, x0, tol, precondition)

    def cond(s):
        return (s.k < maxiter) & jnp.any(s.active)

    def body(s):
        return _cg_update(s, matvec, b, bnorm, tol, pre)

    return jax.lax.while_loop(cond, body, state)


def _cg_status(state: CGState) -> str:
    """:data:`CG_STATUSES` entry of a finished iteration (worst over classes)."""
    if bool(np.any(np.asarray(state.broken))):
        return "breakdown"
    return "max_steps" if bool(np.any(np.asarray(state.active))) else "converged"


def _warn_unconverged(state: CGState, tol: float, default: bool) -> str:
    """The status of ``state``; warns on a breakdown, and on a cap that was not
    chosen (``default``)."""
    status = _cg_status(state)
    rel, k = np.asarray(state.rel), int(state.k)
    if status == "breakdown":
        warnings.warn(
            f"CG broke down after {k} iterations (p^T A p <= 0: the system or the "
            "preconditioner is not positive definite); the result is not a "
            "solution. Check the kernels (NaN, negative eigenvalues) or increase "
            "the ridge.",
            RuntimeWarning,
            stacklevel=3,
        )
    elif default and status == "max_steps":
        warnings.warn(
            f"CG stopped after {k} iterations with relative residual "
            f"{rel.max():.3g} > tol={tol:g}; pass a preconditioner, a larger maxiter "
            "or a larger ridge.",
            RuntimeWarning,
            stacklevel=3,
        )
    return status


def solve_cg(
    theta: Any,
    Y: Any,
    omega: Any,
    *,
    ridge: float,
    x0: Any = None,
    tol: float = 1e-8,
    maxiter: int | None = None,
    preconditioner: NystromPreconditioner | CholeskyPreconditioner | None = None,
    form_kernels: bool | None = None,
    memory_budget: int | None = None,
) -> SolveResult:
    r"""Conjugate gradients for all ``d`` class systems at once, cached kernels.

    Solves :math:`(K_c + \rho I)\alpha_c = y_c`, :math:`K_c = \sum_l \Omega_{cl}
    \Theta_l`, with (preconditioned) CG run on the ``d`` columns in lock-step in one
    jitted ``while_loop``. Class ``c`` stops updating once
    :math:`\|y_c - (K_c+\rho I)\alpha_c\| \le \mathrm{tol}\,\|y_c\|`; the loop ends
    when every class has converged or after ``maxiter`` iterations.

    Each iteration costs one product with every :math:`K_c`: from the ``(d, n, n)``
    kernels formed once per call (:math:`d n^2` flops per iteration) when they fit
    ``memory_budget``, otherwise from the layerwise kernels
    (:math:`L d n^2` flops, no extra memory).

    With a layer operator (:mod:`nftk_jax.kernels._operators`: kernels streamed from
    disk or recomputed tile by tile) instead of cached kernels, every iteration
    is one :meth:`matmul` pass over the operator, run from Python.

    Args:
        theta: ``(L, n, n)`` training kernels, or a square layer operator.
        Y: ``(n, d)`` float targets.
        omega: ``(d, L)`` non-negative layer weights.
        ridge: :math:`\rho > 0`.
        x0: ``(n, d)`` starting point, e.g. the solution for a nearby
            :math:`\Omega`; ``None``: zeros.
        tol: relative residual target, > 0.
        maxiter: iteration cap, >= 1; ``None``: ``10 n`` (and a warning if it is
            reached).
        preconditioner: a :class:`CholeskyPreconditioner`, a
            :class:`NystromPreconditioner` or ``None``.
        form_kernels: form ``(d, n, n)`` once (faster per iteration); ``None``:
            when :math:`8 d n^2` bytes fit ``memory_budget``.
        memory_budget: bytes; default half of physical RAM.

    Returns:
        A :class:`SolveResult`; ``residual`` is the true relative residual of the
        returned ``alpha`` (recomputed, not the recursively updated one) and
        ``status`` one of :data:`CG_STATUSES`: ``'converged'``, ``'max_steps'``
        (the cap ran out first) or ``'breakdown'`` (:math:`p^\top A p \le 0`:
        the system or the preconditioner is not positive definite; a warning is
        raised). The recursive residual the stopping test reads is replaced by
        the true one every 50 iterations.
    """
    if _is_operator(theta):
        return _solve_cg_operator(
            theta, Y, omega, ridge=ridge, x0=x0, tol=tol, maxiter=maxiter,
            preconditioner=preconditioner,
        )  # fmt: skip
    rho = check_ridge(ridge)
    tol = check_positive_float(tol, "tol")
    dtype = resolve_dtype(None)
    th, yy, om = check_system(theta, Y, omega, dtype)
    n, d = yy.shape
    iters = _check_maxiter(maxiter, n)
    x = _check_x0(x0, (n, d), dtype)
    pre = _check_preconditioner(preconditioner, n, d, dtype)
    if form_kernels is None:
        form_kernels = dtype.itemsize * d * n * n <= memory_budget_or_default(
            memory_budget
        )
    op = _form_kernels(th, om) if form_kernels else (th, om)
    state = _cg_cached(
        op,
        jnp.asarray(rho, dtype),
        yy,
        x,
        jnp.asarray(tol, dtype),
        jnp.asarray(iters),
        pre,
        formed=bool(form_kernels),
    )
    del op
    rel = _residual(th, om, rho, state.x, yy)
    status = _warn_unconverged(state, tol, maxiter is None)
    return SolveResult(state.x, int(state.k), rel, 0.0, status)


def solve_cg_matrix_free(
    spec: MLP,
    x: Any,
    Y: Any,
    omega: Any,
    *,
    ridge: float,
    x0: Any = None,
    tol: float = 1e-6,
    maxiter: int | None = None,
    preconditioner: NystromPreconditioner | CholeskyPreconditioner | None = None,
    block_size: int | None = None,
    memory_budget: int | None = None,
    dtype: Any = None,
    devices: Any = None,
    progress: bool = False,
    state: CGState | None = None,
    on_iteration: Callable[[CGState], Any] | None = None,
) -> SolveResult:
    r"""Batched CG where every product is streamed over kernel tiles.

    :func:`solve_cg` on a
    :class:`~nftk_jax.kernels._operators.StreamedLayerOperator`: every product
    :math:`\Theta_l(X, X) v` is computed tile by tile (each off-diagonal tile once,
    for both blocks), so memory is :math:`O(L n d)` plus one tile and each
    iteration recomputes the kernels (:math:`O(L n^2)` kernel evaluations). Use it
    when :func:`plan_solver` says ``'cg_matrix_free'``. The tiles are computed in
    ``dtype``; the CG iterates are float64 when x64 is enabled.

    Args:
        spec: the architecture.
        x: ``(n, m)`` training inputs.
        Y: ``(n, d)`` float targets.
        omega: ``(d, L)`` non-negative layer weights, ``L = spec.depth``.
        ridge: :math:`\rho > 0`.
        x0: ``(n, d)`` warm start or ``None``.
        tol: relative residual target, > 0.
        maxiter: iteration cap, >= 1; ``None``: ``10 n``.
        preconditioner: a :class:`NystromPreconditioner` (build it with
            ``nystrom_preconditioner(None, omega, spec=spec, x=x, ...)``), a
            :class:`CholeskyPreconditioner` (``cholesky_preconditioner`` of a
            ``StreamedLayerOperator``; ``n^2`` floats) or ``None``.
        block_size, memory_budget, dtype, devices: tiling, as in
            :func:`~nftk_jax.layerwise_matvec`.
        progress: show a progress bar over CG iterations.
        state: a `CGState` passed to ``on_iteration`` by an earlier call on the
            same system, to continue from (``x0`` is then ignored); the iteration
            goes on exactly as if it had not stopped.
        on_iteration: called with the `CGState` after every iteration, e.g. to
            checkpoint it (`numpy.savez` of its fields; rebuild with
            ``CGState(**saved)``).

    Returns:
        A :class:`SolveResult` with its ``status``; ``residual`` is the true
        relative residual of ``alpha`` (one more pass over the kernels unless the
        last iteration already recomputed it).
    """
    if not isinstance(spec, MLP):
        raise NFTKTypeError(f"spec must be an nftk_jax.MLP, got {type(spec).__name__}.")
    from ..kernels import StreamedLayerOperator

    op = StreamedLayerOperator(
        spec, x, block_size=block_size, memory_budget=memory_budget, dtype=dtype,
        devices=devices,
    )  # fmt: skip
    return _solve_cg_operator(
        op, Y, omega, ridge=ridge, x0=x0, tol=tol, maxiter=maxiter,
        preconditioner=preconditioner, progress=progress, state=state,
        on_iteration=on_iteration,
    )  # fmt: skip


@jax.jit
def _operator_matvec(products, ridge, v):
    return products + ridge * v


def _solve_cg_operator(
    op, Y, omega, *, ridge, x0, tol, maxiter, preconditioner, progress=False,
    state=None, on_iteration=None,
):  # fmt: skip
    """:func:`solve_cg` where each product is one pass over a layer operator."""
    rho = check_ridge(ridge)
    tol = check_positive_float(tol, "tol")
    dt = resolve_dtype(None)
    L, n, n2 = op.shape
    if n != n2:
        raise NFTKInputError(
            f"theta must be a square (L, n, n) operator over the training inputs, "
            f"got shape {tuple(op.shape)}."
        )
    yy = _check_targets(Y, n)
    d = yy.shape[1]
    om = jnp.asarray(check_omega(omega, n_classes=d, depth=L), dt)
    iters = _check_maxiter(maxiter, n)
    xs = _check_x0(x0, (n, d), dt)
    _validate_preconditioner(preconditioner, n, d)
    # The preconditioner is applied outside jit, by its own ``apply``: a host
    # factor is then used in place (no device copy of its n^2 floats).
    apply = (lambda r: r) if preconditioner is None else preconditioner.apply
    b = jnp.asarray(yy, dt)
    rho_a, tol_a = jnp.asarray(rho, dt), jnp.asarray(tol, dt)

    def matvec(v):
        return _operator_matvec(jnp.asarray(op.weighted_matmul(v, om), dt), rho_a, v)

    def precondition(r):
        return jnp.asarray(apply(r), dt)

    if state is None:
        ax0 = jnp.zeros_like(b) if x0 is None else matvec(xs)
        state, bnorm = _cg_init(ax0, b, xs, tol_a, precondition)
    else:
        state, bnorm = _resume_state(state, b, tol_a, n, d, dt)
    bar = progress_bar(iters, "CG", enabled=progress, initial=int(state.k))
    while int(state.k) < iters and bool(jnp.any(state.active)):
        x, r, rel, step, broken = _cg_advance_jit(state, matvec(state.p), bnorm)
        if _true_residual_due(int(state.k)):
            r = b - matvec(x)
            rel = _relative(r, bnorm)
        state = _cg_direction_jit(
            state, x, r, rel, step, broken, precondition(r), tol_a
        )
        if bar is not None:
            bar.update()
            bar.set_postfix(residual=f"{float(jnp.max(state.rel)):.2e}")
        if on_iteration is not None:
            on_iteration(state)
    if bar is not None:
        bar.close()
    status = _warn_unconverged(state, tol, maxiter is None)
    k = int(state.k)
    if k % TRUE_RESIDUAL_EVERY:  # r is the recursive residual: one more pass
        rel = _relative(b - matvec(state.x), bnorm)
    else:  # r was computed as b - A x (at the start or by the last replacement)
        rel = state.rel
    return SolveResult(state.x, k, np.asarray(rel, dtype=np.float64), 0.0, status)


def _resume_state(state: Any, b, tol, n: int, d: int, dt) -> tuple[CGState, Any]:
    """A saved `CGState` checked against the system, its ``active`` re-derived for
    ``tol`` (a run may resume with a tighter one)."""
    if not isinstance(state, CGState):
        raise NFTKTypeError(
            f"state must be a CGState (as passed to on_iteration), got "
            f"{type(state).__name__}."
        )
    shapes = {"x": (n, d), "r": (n, d), "p": (n, d), "rz": (d,), "rel": (d,)}
    for name, shape in shapes.items():
        if np.shape(getattr(state, name)) != shape:
            raise NFTKInputError(
                f"state.{name} has shape {np.shape(getattr(state, name))}, but this "
                f"system needs {shape}: the state belongs to another problem."
            )
    bnorm = _rhs_norms(b)
    fields = {f: jnp.asarray(getattr(state, f), dt) for f in ("x", "r", "p", "rz")}
    rel = jnp.asarray(state.rel, dt)
    broken = jnp.asarray(state.broken, bool)
    active = (rel > tol) & ~broken
    resumed = CGState(jnp.asarray(int(state.k)), **fields, active=active, rel=rel,
                      broken=broken)  # fmt: skip
    return resumed, bnorm


# ------------------------------------------------------------------ preconditioner
