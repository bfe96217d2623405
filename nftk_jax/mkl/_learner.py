r"""Multiple kernel learning of the per-class layer weights :math:`\Omega`.

The model (Theorem 1 of the paper, with the inverse that its eq. 14 omits): class
:math:`c` is kernel ridge regression with :math:`K_c = \sum_l \Omega_{cl}\Theta_l`,

.. math::  f_c(x) = K_c(x, X)\,(K_c(X, X) + \rho I)^{-1} y_c .

:math:`\Omega` is learned by projected gradient descent (eq. 16),
:math:`\Omega \leftarrow P_{\mathcal S}(\Omega - \eta\nabla J(\Omega))`, on one of the
objectives of :mod:`nftk_jax.mkl._objectives` (closed-form gradients) over one of the
feasible sets of :mod:`nftk_jax.mkl._constraints`. The step :math:`\eta` comes from
Armijo backtracking (default), a fixed ``learning_rate``, or an optax optimiser
followed by the projection.

The learner is split by concept: :mod:`~nftk_jax.mkl._problem` validates the
problem, :mod:`~nftk_jax.mkl._evaluator` evaluates the objective (value, solves,
gradient), :mod:`~nftk_jax.mkl._steps` proposes steps, :mod:`~nftk_jax.mkl._stopping`
decides when to stop and :mod:`~nftk_jax.mkl._history` records, checkpoints and
restores; this module runs the loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from ..core import NFTKInputError, check_positive_int, progress_bar
from ._evaluator import Objective
from ._history import Checkpoint, History, LoopState
from ._options import LearnerOptions, learner_options
from ._problem import check_problem, checkpoint_identity
from ._result import MKLStep, NFTKResult
from ._stopping import CONVERGED, Stopping

__all__ = ["fit_mkl_kernels", "learn"]


def fit_mkl_kernels(
    theta: Any,
    y: Any,
    *,
    theta_val: Any = None,
    y_val: Any = None,
    ridge: float,
    objective: str = "val_mse",
    constraint: str = "simplex",
    radius: float = 1.0,
    lower: float = 0.0,
    omega_init: Any = None,
    steps: int = 100,
    tol: float = 1e-5,
    grad_tol: float | None = None,
    learning_rate: float | None = None,
    optimizer: optax.GradientTransformation | None = None,
    solver: str = "auto",
    n_classes: int | None = None,
    checkpoint: str | None = None,
    checkpoint_every: int = 1,
    progress: bool = False,
    callback: Callable[[MKLStep], Any] | None = None,
    compute_cond: bool = False,
    cg_tol: float = 1e-10,
    cg_maxiter: int | None = None,
    preconditioner: str = "cholesky",
    precondition_rank: int = 500,
    max_backtracks: int = 40,
    memory_budget: int | None = None,
    step_rule: Any = None,
    stopping: Stopping | None = None,
) -> NFTKResult:
    r"""Learn per-class layer weights :math:`\Omega` from precomputed kernels.

    Minimises ``objective`` over :math:`\Omega` in the set named by ``constraint``
    by projected gradient descent,
    :math:`\Omega \leftarrow P(\Omega - \eta\nabla J)`. With ``learning_rate=None``
    :math:`\eta` is chosen by Armijo backtracking: the first trial is twice the last
    accepted step, halved until
    :math:`J(\Omega^+) \le J(\Omega) + 10^{-4}\langle\nabla J, \Omega^+-\Omega\rangle`,
    so :math:`J` never increases. With ``optimizer`` (an optax transformation) its
    update is applied and then projected. The loop stops when the relative change of
    :math:`J` stays below ``tol`` for two steps, when the projected-gradient norm
    :math:`\|\Omega - P(\Omega - \nabla J)\|_F` drops below ``grad_tol``, when the
    first trial step does not move :math:`\Omega` (stationary), or after ``steps``
    steps. When the Armijo search cannot decrease :math:`J` within
    ``max_backtracks`` halvings it stops with ``stop_reason='line_search'`` and
    ``converged=False``: a failed line search is not convergence.

    Args:
        theta: ``(L, n, n)`` layerwise training kernels :math:`\Theta_l(X, X)`.
        y: ``(n,)`` integer labels (classification, centred one-hot targets) or
            ``(n, d)`` float targets.
        theta_val: ``(L, m, n)`` validation-vs-training kernels (``'val_mse'``).
        y_val: ``(m,)`` labels or ``(m, d)`` targets for ``theta_val``.
        ridge: :math:`\rho > 0`.
        objective: ``'val_mse'``, ``'train_mse'`` or ``'krr_dual'``.
        constraint: ``'simplex'``, ``'nonneg'``, ``'l1_ball'`` or ``'box'``, or a
            constraint object (``Simplex(radius=...)``, ``NonNeg()``,
            ``L1Ball(radius=...)``, ``Box(lower=..., radius=...)``; then leave
            ``radius`` and ``lower`` at their defaults).
        radius: row sum (simplex), :math:`\ell_1` radius, or box upper bound.
        lower: box lower bound.
        omega_init: ``(d, L)`` non-negative start (projected); default ``1/L``.
        steps: maximum number of accepted steps (>= 1).
        tol: tolerance (> 0) on the relative objective change.
        grad_tol: tolerance (> 0) on the projected-gradient norm (default: ``tol``).
        learning_rate: fixed step instead of the line search.
        optimizer: optax transformation used instead of the line search.
        solver: ``'auto'``, ``'dense'`` (batched Cholesky), ``'cg'`` (warm-started
            conjugate gradients from :mod:`nftk_jax.linalg._solvers`) or
            ``'matrix_free'`` (layer operators), or a solver object (``Auto``,
            ``Dense``, ``CG``, ``MatrixFree`` with ``tol``, ``maxiter`` and
            ``preconditioner``; then leave the ``cg_*`` and ``precondition*``
            keywords at their defaults).
        n_classes: number of classes when ``y`` holds labels (default ``max + 1``).
        checkpoint: ``.npz`` path; resumed when it matches this problem.
        checkpoint_every: save every this many steps (and always at the end).
        progress: show a progress bar.
        callback: called with an :class:`MKLStep` after every step; returning
            ``True`` stops the fit.
        compute_cond: compute ``cond`` of each final system (an eigendecomposition).
        cg_tol: relative residual tolerance of CG solves.
        cg_maxiter: CG iteration cap (``None``: the solver's default).
        preconditioner: of the CG solves, built once per fit from the mean layer
            weights of ``omega_init`` and shared by all classes: ``'cholesky'``
            (default; exact inverse of the mean-kernel system, :math:`n^2` extra
            floats), ``'nystrom'`` (rank ``precondition_rank``, pivoted-Cholesky
            landmarks, :math:`O(n\,m)` floats) or ``'none'``.
        precondition_rank: rank ``m`` of the ``'nystrom'`` preconditioner.
        max_backtracks: Armijo halvings before giving up.
        memory_budget: bytes, passed to the solver planner for ``solver='auto'``.
        step_rule: ``None`` (Armijo, or what ``learning_rate``/``optimizer``
            ask for), ``'armijo'``, ``'fixed'``, ``'optax'`` or a step-rule object
            (``Armijo(max_backtracks=...)``, ``Fixed(learning_rate=...)``,
            ``Optax(optimizer=...)``).
        stopping: a ``Stopping(rel_tol=, grad_tol=, max_steps=)`` instead of
            ``tol``, ``grad_tol`` and ``steps``.

    Returns:
        An :class:`NFTKResult`.

    Raises:
        ValueError: on invalid input (the message names the argument).
        CheckpointError: ``checkpoint`` belongs to another problem or is corrupt.

    Example:
        >>> import numpy as np
        >>> from nftk_jax import fit_mkl_kernels
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1], 10)
        >>> Y = np.eye(2)[y]
        >>> noise = rng.normal(size=(20, 20))
        >>> theta = np.stack([Y @ Y.T + np.eye(20), noise @ noise.T / 20])
        >>> res = fit_mkl_kernels(theta, y, theta_val=theta, y_val=y, ridge=0.1,
        ...                       objective="val_mse", constraint="simplex")
        >>> res.omega.round(3).tolist()
        [[1.0, 0.0], [1.0, 0.0]]
        >>> res.predict_labels_kernels(theta).tolist() == y.tolist()
        True
    """
    options = learner_options(
        constraint=constraint, radius=radius, lower=lower, step_rule=step_rule,
        learning_rate=learning_rate, optimizer=optimizer,
        max_backtracks=max_backtracks, stopping=stopping, steps=steps, tol=tol,
        grad_tol=grad_tol, solver=solver, cg_tol=cg_tol, cg_maxiter=cg_maxiter,
        preconditioner=preconditioner, precondition_rank=precondition_rank,
    )  # fmt: skip
    with jax.enable_x64(True):
        return learn(
            theta, y, theta_val=theta_val, y_val=y_val, ridge=ridge,
            objective=objective, options=options, omega_init=omega_init,
            n_classes=n_classes, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every, progress=progress, callback=callback,
            compute_cond=compute_cond, memory_budget=memory_budget,
        )  # fmt: skip


def learn(
    theta, y, *, theta_val=None, y_val=None, ridge, objective="val_mse",
    options: LearnerOptions | None = None, omega_init=None, n_classes=None,
    checkpoint=None, checkpoint_every=1, progress=False, callback=None,
    compute_cond=False, memory_budget=None,
) -> NFTKResult:  # fmt: skip
    """:func:`fit_mkl_kernels` with its settings as one :class:`LearnerOptions`
    (``None``: the defaults); x64 must be enabled."""
    options = learner_options() if options is None else options
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    problem = check_problem(
        theta, y, theta_val=theta_val, y_val=y_val, ridge=ridge, objective=objective,
        omega_init=omega_init, n_classes=n_classes, constraint=options.constraint,
    )  # fmt: skip
    L, n, d = problem.shape
    solver = options.solver.resolve(
        n=n, depth=L, n_classes=d, memory_budget=memory_budget,
        operator=problem.operator,
    )  # fmt: skip
    if problem.operator and compute_cond:
        raise NFTKInputError(
            "compute_cond=True needs the cached kernels (an eigendecomposition per "
            "class); it is not available with a layer operator."
        )
    ckpt = Checkpoint(checkpoint, *checkpoint_identity(problem, options, solver))
    saved = ckpt.load()
    obj = Objective(
        problem, solver, project=options.constraint.projection(),
        memory_budget=memory_budget,
    )  # fmt: skip
    rule, stop = options.step_rule, options.stopping
    if saved is not None:
        state, history, status = History.restore(saved, rule, (d, L))
        obj.statuses.append(status)
        if (
            state.converged
            or state.stop_reason == "line_search"
            or (state.step >= stop.max_steps)
        ):
            return _result(state, history, obj, options, solver, compute_cond)
        state = state._replace(stop_reason="")
    else:
        state, history = _start(obj, rule, stop)
    bar = _progress_bar(stop.max_steps, state.step) if progress else None
    state = _run(state, history, obj, options, ckpt, checkpoint_every, bar, callback)
    return _result(state, history, obj, options, solver, compute_cond)


def _start(obj: Objective, rule: Any, stop: Stopping) -> tuple[LoopState, History]:
    """The state at the projected ``omega_init``, recorded as history entry 0."""
    history = History()
    omega = obj.project(jax.numpy.asarray(obj.problem.omega_init))
    ev, solve = obj.evaluate(omega, None)
    g, adj = obj.gradient(omega, ev, solve, None)
    state = LoopState(
        omega, ev.value, g, ev.alpha, adj, 0.0, 0, 0, False, "", rule.init(omega)
    )
    grad_norm = obj.projected_gradient_norm(omega, g)
    history.record(state, grad_norm, 0.0)
    if grad_norm < stop.grad_tol:
        state = state._replace(converged=True, stop_reason="grad_norm")
    return state, history


def _run(state, history, obj, options, ckpt, every, bar, callback) -> LoopState:
    """Steps until a stopping rule fires; every ``every`` steps a checkpoint."""
    rule, stop = options.step_rule, options.stopping
    while not state.stop_reason and state.step < stop.max_steps:
        proposal, failure = rule.propose(state, obj)
        if proposal is None:  # a failed Armijo search is not convergence
            state = state._replace(converged=failure in CONVERGED, stop_reason=failure)
            break
        g, adj = obj.gradient(proposal.omega, proposal.ev, proposal.solve,
                              state.adjoint)  # fmt: skip
        small = stop.small_change(state.value, proposal.ev.value)
        state = LoopState(
            proposal.omega, proposal.ev.value, g, proposal.ev.alpha, adj,
            2.0 * proposal.step_size, state.n_small + 1 if small else 0,
            state.step + 1, False, "", proposal.opt_state,
        )  # fmt: skip
        grad_norm = obj.projected_gradient_norm(state.omega, g)
        history.record(state, grad_norm, proposal.step_size)
        reason = stop.reason(state.n_small, grad_norm, state.step)
        state = state._replace(converged=reason in CONVERGED, stop_reason=reason)
        if state.stop_reason or state.step % every == 0:
            ckpt.save(state, history, obj.status)
        if bar is not None:
            bar.set_postfix(objective=f"{state.value:.4g}", refresh=False)
            bar.update()
        info = MKLStep(state.step, history.last("omega"), state.value, grad_norm,
                       proposal.step_size)  # fmt: skip
        if callback is not None and callback(info) is True:
            state = state._replace(stop_reason="callback")
            ckpt.save(state, history, obj.status)
            break
    if bar is not None:  # the total becomes the steps really taken
        bar.total = state.step
        bar.set_description_str(f"Omega steps ({state.stop_reason or 'steps'})")
        bar.close()
    if not state.stop_reason:
        state = state._replace(stop_reason="steps")
    ckpt.save(state, history, obj.status)
    return state


def _progress_bar(steps: int, initial: int):
    return progress_bar(  # no ETA: the learner usually stops long before `steps`
        steps,
        f"Omega steps (at most {steps})",
        initial=initial,
        bar_format="{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]",
    )


def _result(state, history, obj, options, solver, compute_cond) -> NFTKResult:
    """The :class:`NFTKResult` of the final ``state``; a fit whose linear solves
    did not all converge is not reported as converged (and warns)."""
    d, L = state.omega.shape
    status = obj.status
    converged = bool(state.converged)
    if status != "converged":
        warnings.warn(
            f"some linear solves of the Omega learner ended with status "
            f"{status!r}, so the fit is not reported as converged; pass a "
            "larger cg_maxiter, preconditioner='cholesky', a larger ridge or "
            "solver='dense'.",
            RuntimeWarning,
            stacklevel=4,
        )
        converged = False
    p = obj.problem
    return NFTKResult(
        omega=np.asarray(state.omega, dtype=np.float64),
        alpha=np.asarray(state.alpha, dtype=np.float64),
        ridge=p.ridge,
        history=history.result(d, L),
        converged=converged,
        n_steps=int(state.step),
        objective=p.objective,
        constraint=options.constraint.name,
        is_classification=bool(p.is_classification),
        cond=obj.cond(state.omega) if compute_cond else np.full(d, np.nan),
        stop_reason=state.stop_reason,
        solver=solver.name,
        n_evaluations=obj.n_evaluations,
        solver_status=status,
    )
