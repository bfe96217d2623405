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

Every step needs ``d`` linear solves with :math:`K_c + \rho I` (plus one adjoint
solve for ``'train_mse'``/``'val_mse'``). They all go through one internal function
(:func:`_make_solver`): a batched dense Cholesky (the factor serves the value and the
adjoint solve), or conjugate gradients from :mod:`nftk_jax.linalg._solvers`
warm-started at the previous step's solution, which changes little from one step
to the next.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..core import (
    NFTKInputError,
    check_positive_int,
    load_checkpoint,
    problem_digest,
    save_checkpoint,
)
from ..kernels import is_layer_operator as _is_operator
from ..linalg import (
    check_omega,
    check_ridge,
    cholesky_with_jitter,
    combine_kernels,
    encode_targets,
    krr_predict,
    worst_status,
)
from ..model import check_spec_inputs
from ._objectives import (
    SCALE_FREE_ILL_POSED,
    check_objective,
    objective_gradient,
    objective_value,
)
from ._options import LearnerOptions, learner_options
from ._ridge import RIDGE_METHODS, select_ridge_for_labels
from ._solver_options import (
    CG_KEYWORDS,
    PRECONDITIONER_REGISTRY,
    SOLVER_REGISTRY,
    Dense,
    as_solver,
    with_kind,
)
from ._steps import Fixed, Optax
from ._stopping import SMALL_STEPS, Stopping

__all__ = [
    "MKLHistory",
    "MKLStep",
    "NFTKResult",
    "SOLVERS",
    "fit_mkl",
    "fit_mkl_kernels",
]

#: Names accepted by ``solver=``.
SOLVERS = tuple(SOLVER_REGISTRY)
#: Names accepted by ``fit_mkl(kernel_storage=)``.
KERNEL_STORAGES = ("memory", "disk", "recompute")
#: Names accepted by ``preconditioner=`` (CG only).
PRECONDITIONERS = tuple(PRECONDITIONER_REGISTRY)


class MKLHistory(NamedTuple):
    """Trajectory of the Omega learner; entry 0 is the initial point."""

    objective: np.ndarray  # (T,) float64: objective value
    grad_norm: np.ndarray  # (T,) float64: ||Omega - P(Omega - grad)||_F
    sparsity: np.ndarray  # (T,) float64: fraction of exact zeros in Omega
    step_size: np.ndarray  # (T,) float64: accepted step (0 at entry 0)
    omega: np.ndarray  # (T, d, L) float64: Omega after each step
    time: np.ndarray  # (T,) float64: seconds since the start of the fit


class MKLStep(NamedTuple):
    """What ``callback`` receives after every accepted step."""

    step: int  # number of accepted steps so far
    omega: np.ndarray  # (d, L) float64
    objective: float  # objective value at omega
    grad_norm: float  # projected-gradient norm at omega
    step_size: float  # the accepted step


class NFTKResult(NamedTuple):
    """A fitted NFT-K model: learned Omega and the Theorem-1 dual coefficients.

    Predictions are :math:`f_c(x) = \\sum_l \\Omega_{cl}\\Theta_l(x, X)\\alpha_c`.
    """

    omega: np.ndarray  # (d, L) float64: learned layer weights
    alpha: np.ndarray  # (n, d) float64: dual coefficients on the training inputs
    ridge: float  # rho
    history: MKLHistory  # trajectory of the learner
    converged: bool  # a stopping rule fired before `steps` ran out
    n_steps: int  # accepted steps
    objective: str  # objective name
    constraint: str  # constraint name
    is_classification: bool  # targets were integer labels (centred one-hot)
    cond: np.ndarray  # (d,) float64: cond(K_c + rho I), NaN when not computed
    stop_reason: str = ""  # 'rel_change', 'grad_norm', 'stationary', 'steps',
    # 'line_search' (Armijo failed: not converged), 'callback'

    solver: str = "dense"  # linear solver used: 'dense' or 'cg'
    spec: Any = None  # MLP used to compute the kernels (fit_mkl), else None
    x_train: np.ndarray | None = None  # (n, features) training inputs, else None
    kernel_dtype: Any = None  # dtype the kernels were computed in (fit_mkl)
    n_evaluations: int = 0  # Omegas at which the d systems were solved (this run)
    solver_status: str = "converged"  # worst status of the linear solves (CG:
    # 'max_steps' or 'breakdown' make `converged` False); 'converged' for dense

    def __repr__(self) -> str:
        from ._summary import result_repr

        return result_repr(self)

    def predict_kernels(self, theta_cross: Any) -> np.ndarray:
        """Raw scores ``(m, d)`` from test-vs-train kernels ``(L, m, n)``."""
        tc = np.asarray(theta_cross, dtype=np.float64)
        L, n = self.omega.shape[1], self.alpha.shape[0]
        if tc.ndim != 3 or tc.shape[0] != L or tc.shape[2] != n:
            raise NFTKInputError(
                f"theta_cross must have shape (L, m, n) = ({L}, m, {n}) (test "
                f"against the {n} training inputs), got {tc.shape}."
            )
        with jax.enable_x64(True):
            out = krr_predict(jnp.asarray(tc), self.alpha, self.omega)
            return np.asarray(out, dtype=np.float64)

    def predict_labels_kernels(self, theta_cross: Any) -> np.ndarray:
        """Argmax class labels ``(m,)`` from test-vs-train kernels."""
        self._need_classification()
        return np.argmax(self.predict_kernels(theta_cross), axis=1)

    def predict(
        self, x: Any, return_std: bool = False, *, get: str = "ntk"
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Raw scores ``(m, d)`` for inputs ``x``; needs a result from ``fit_mkl``.

        With ``return_std=True``, also the Gaussian-process posterior standard
        deviation ``(m, d)`` of every class (``get='ntk'`` or ``'nngp'`` heads; see
        :func:`nftk_jax.mkl._uncertainty.predict_with_std`).
        """
        from ..kernels import layerwise_matvec

        if return_std or get != "ntk":
            from ._uncertainty import predict_with_std

            mean, std = predict_with_std(self, x, get=get)
            return (mean, std) if return_std else mean

        if self.spec is None or self.x_train is None:
            raise NFTKInputError(
                "this result was fit from precomputed kernels (fit_mkl_kernels), so it "
                "cannot compute kernels for new inputs; use "
                "predict_kernels(theta_cross) or fit with fit_mkl(spec, x, y, ...)."
            )
        xx = check_spec_inputs(self.spec, x, "x", like=self.x_train)
        # Streamed over kernel tiles: sum_l Omega[c, l] Theta_l(x, X) alpha_c, so
        # memory is one tile plus the (m, d) scores whatever m and n.
        with jax.enable_x64(True):
            out = layerwise_matvec(
                self.spec,
                xx,
                self.alpha,
                x2=self.x_train,
                omega=self.omega,
                dtype=self.kernel_dtype or np.float64,
            )
            return np.asarray(out, dtype=np.float64)

    def predict_labels(self, x: Any) -> np.ndarray:
        """Argmax class labels ``(m,)`` for inputs ``x``."""
        self._need_classification()
        return np.argmax(self.predict(x), axis=1)

    def _need_classification(self) -> None:
        if not self.is_classification:
            raise NFTKInputError(
                "labels are only defined for classification (y given as integer "
                "labels); use predict/predict_kernels for regression scores."
            )


# -- linear solves ------------------------------------------------------------------
@jax.jit
def _cho_solve(chol, rhs):
    return jax.scipy.linalg.cho_solve((chol, True), rhs.T[..., None])[..., 0].T


def _dense_factor(theta: jax.Array, omega: jax.Array, ridge: float) -> jax.Array:
    """Batched Cholesky factors ``(d, n, n)`` of ``K_c + ridge I``, with jitter."""
    return cholesky_with_jitter(combine_kernels(theta, omega), ridge)[0]


#: ``prepare(omega) -> solve(rhs (n, d), x0 (n, d) | None) -> (n, d)``
Prepare = Callable[[jax.Array], Callable[[jax.Array, jax.Array | None], jax.Array]]


def _make_solver(
    solver: Any,
    theta: jax.Array,
    *,
    ridge: float,
    reference: Any = None,
    memory_budget: int | None = None,
    statuses: list[str] | None = None,
) -> Prepare:
    """The single place where the learner's linear solves are set up.

    ``solver`` is the solver that runs (:class:`Dense`, ``CG`` or ``MatrixFree``).
    Every CG solve appends its status (``'converged'``, ``'max_steps'``,
    ``'breakdown'``) to ``statuses`` when given.
    """
    if isinstance(solver, Dense):

        def prepare_dense(omega):
            chol = _dense_factor(theta, omega, ridge)
            return lambda rhs, x0=None: _cho_solve(chol, rhs)

        return prepare_dense

    from ..linalg import solve_cg

    L = theta.shape[0]
    operator = solver.name == "matrix_free"
    # Operators may store float32 kernels; their products (and CG) are float64.
    out_dtype = jnp.float64 if operator else theta.dtype
    ref = np.full((1, L), 1.0 / L) if reference is None else np.asarray(reference)
    # Built once per fit from the starting Omega: the mean kernel of any Omega is
    # close to it (the layer kernels are strongly correlated), and a fixed choice
    # keeps resumed fits bit-identical. CG is slow without one when the ridge is
    # small relative to the kernel.
    pre = solver.preconditioner.build(
        theta, ref, ridge=ridge, operator=operator, memory_budget=memory_budget
    )

    def prepare_cg(omega):
        # Products with the L layer kernels read L n^2 floats per iteration; with
        # the class kernels formed first, d n^2 (after (L + d) n^2 to form them).
        form = None if operator else L > 2 * omega.shape[0]
        th, om = theta, omega
        if not operator:
            # Layers no class uses (simplex fits zero most of them) are dropped
            # from the products: one copy of the used kernels per evaluated Omega
            # against one read of the unused ones per CG iteration saved.
            used = np.flatnonzero(np.any(np.asarray(omega) > 0, axis=0))
            if 0 < len(used) < L:
                th, om = theta[used], omega[:, used]

        def solve(rhs, x0=None):
            res = solve_cg(
                th,
                rhs,
                om,
                ridge=ridge,
                x0=x0,
                tol=solver.tol,
                maxiter=solver.maxiter,
                preconditioner=pre,
                form_kernels=form,
            )
            if statuses is not None:
                statuses.append(res.status)
            return jnp.asarray(res.alpha, dtype=out_dtype)

        return solve

    return prepare_cg


# -- input checks -------------------------------------------------------------------
def _fingerprint(theta: Any) -> Any:
    """What the checkpoint digest hashes for ``theta``: the array, or for a layer
    operator its ``fingerprint`` (a string naming the spec, inputs and storage)."""
    if theta is None or not _is_operator(theta):
        return theta
    fp = getattr(theta, "fingerprint", None)
    if fp is None:
        raise NFTKInputError(
            "checkpoint= needs a layer operator with a fingerprint (the operators of "
            "nftk_jax.kernels._operators have one); pass checkpoint=None."
        )
    return np.frombuffer(str(fp).encode(), dtype=np.uint8)


def _check_theta(theta: Any, name: str = "theta") -> np.ndarray:
    t = np.asarray(theta)
    if t.dtype.kind not in "fiu":
        raise NFTKInputError(f"{name} must be a real array, got dtype {t.dtype}.")
    if t.ndim != 3 or t.shape[1] != t.shape[2] or t.shape[1] == 0:
        raise NFTKInputError(
            f"{name} must be (L, n, n) square layerwise training kernels, got shape "
            f"{t.shape}; compute them with layerwise_kernels(spec, x)."
        )
    t = t.astype(np.float64, copy=False)
    if not np.all(np.isfinite(t)):
        raise NFTKInputError(
            f"{name} contains NaN or inf; recompute the kernels (float64, smaller "
            "depth or normalised inputs)."
        )
    return t


def _check_float(value: Any, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NFTKInputError(
            f"{name} must be a positive number, got {value!r}."
        ) from None
    if not math.isfinite(v) or v <= 0:
        raise NFTKInputError(f"{name} must be finite and > 0, got {value!r}.")
    return v


def _rowwise_zero_fraction(omega: np.ndarray) -> float:
    return float(np.mean(omega == 0.0))


# -- the learner --------------------------------------------------------------------
class _Loop(NamedTuple):
    """The learner's state between steps (everything a checkpoint must restore)."""

    omega: jax.Array  # (d, L) float64: current feasible Omega
    value: float  # objective at omega
    grad: jax.Array  # (d, L) float64: gradient at omega
    alpha: jax.Array  # (n, d) float64: (K_c + rho I)^{-1} y_c at omega
    adjoint: jax.Array  # (n, d) float64: last adjoint solution (zeros if none)
    t_next: float  # first trial step of the next Armijo search (0: not yet set)
    n_small: int  # consecutive steps with relative change < tol
    step: int  # accepted steps so far
    converged: bool  # a stopping rule fired
    stop_reason: str  # why the loop stopped ('' while running)
    opt_state: Any  # optax state (None without optimizer)


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
        return _fit(
            theta,
            y,
            theta_val=theta_val,
            y_val=y_val,
            ridge=ridge,
            objective=objective,
            options=options,
            omega_init=omega_init,
            n_classes=n_classes,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            progress=progress,
            callback=callback,
            compute_cond=compute_cond,
            memory_budget=memory_budget,
        )


def _fit(
    theta,
    y,
    *,
    theta_val,
    y_val,
    ridge,
    objective,
    options: LearnerOptions,
    omega_init,
    n_classes,
    checkpoint,
    checkpoint_every,
    progress,
    callback,
    compute_cond,
    memory_budget,
) -> NFTKResult:
    # ---- validation ------------------------------------------------------------
    rho = check_ridge(ridge)
    objective = check_objective(objective)
    cons, rule, stop = options.constraint, options.step_rule, options.stopping
    constraint = cons.name
    steps, tol, grad_tol = stop.max_steps, stop.rel_tol, stop.grad_tol
    optimizer = rule.optimizer if isinstance(rule, Optax) else None
    learning_rate = rule.learning_rate if isinstance(rule, Fixed) else None
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    operator = _is_operator(theta)
    if operator:
        L, n, n2 = theta.shape
        if n != n2 or n == 0:
            raise NFTKInputError(
                f"theta must be a square (L, n, n) layer operator over the training "
                f"inputs, got shape {tuple(theta.shape)}."
            )
        theta_np = theta
    else:
        theta_np = _check_theta(theta)
        L, n, _ = theta_np.shape
    Y, is_clf = encode_targets(y, n, n_classes=n_classes, name="y")
    d = Y.shape[1]
    theta_val_np = Yv = None
    if objective == "val_mse":
        if theta_val is None or y_val is None:
            raise NFTKInputError(
                "objective='val_mse' needs validation data: pass theta_val "
                "(L, n_val, n) and y_val, or use fit_mkl which splits off a "
                "validation set, or choose objective='train_mse'/'krr_dual'."
            )
    if theta_val is not None:
        val_op = _is_operator(theta_val)
        if val_op != operator:
            raise NFTKInputError(
                "theta and theta_val must both be arrays or both layer operators."
            )
        tv = theta_val if val_op else np.asarray(theta_val)
        shape = tuple(tv.shape)
        if len(shape) != 3 or shape[0] != L or shape[2] != n or shape[1] == 0:
            raise NFTKInputError(
                f"theta_val must have shape (L, n_val, n) = ({L}, n_val, {n}) "
                f"(validation against the {n} training inputs), got {shape}."
            )
        theta_val_np = tv if val_op else tv.astype(np.float64, copy=False)
        if not val_op and not np.all(np.isfinite(theta_val_np)):
            raise NFTKInputError(
                "theta_val contains NaN or inf; recompute the kernels."
            )
        if y_val is None:
            raise NFTKInputError("theta_val was given without y_val; pass both.")
        Yv, is_clf_v = encode_targets(
            y_val, theta_val_np.shape[1], n_classes=d if is_clf else None, name="y_val"
        )
        if is_clf_v != is_clf or Yv.shape[1] != d:
            raise NFTKInputError(
                f"y_val must be of the same kind as y (labels or ({n}, {d}) "
                f"targets), got shape {np.shape(y_val)}."
            )
    if omega_init is None:
        om0 = np.full((d, L), 1.0 / L)
    else:
        om0 = check_omega(omega_init, n_classes=d, depth=L, name="omega_init")
    if objective in SCALE_FREE_ILL_POSED and constraint == "nonneg":
        warnings.warn(
            f"objective={objective!r} with constraint='nonneg' is ill-posed: the "
            "objective keeps decreasing as Omega grows, so its scale diverges. Use "
            "constraint='simplex' (or 'l1_ball'/'box') or objective='val_mse'.",
            UserWarning,
            stacklevel=3,
        )
    solver = options.solver.resolve(
        n=n, depth=L, n_classes=d, memory_budget=memory_budget, operator=operator
    )
    kind = solver.name
    if operator and compute_cond:
        raise NFTKInputError(
            "compute_cond=True needs the cached kernels (an eigendecomposition per "
            "class); it is not available with a layer operator."
        )

    # ---- checkpoint identity ---------------------------------------------------
    config = {
        "objective": objective,
        "constraint": constraint,
        "radius": cons.radius,
        "lower": cons.lower,
        "ridge": rho,
        # learning_rate, optimizer (its hyperparameters, not just its type: a
        # resume under optax.adam(5.0) of a run of optax.adam(0.05) is refused),
        # and Armijo's max_backtracks and sigma.
        **rule.identity(),
        "solver": kind,
        "preconditioner": solver.preconditioner.name if kind == "cg" else None,
        "n_classes": d,
        "is_classification": is_clf,
    }
    digest = None
    saved = None
    if checkpoint is not None:
        digest = problem_digest(
            {
                "theta": _fingerprint(theta_np),
                "y": Y,
                "theta_val": _fingerprint(theta_val_np),
                "y_val": Yv,
                "omega_init": om0,
            },
            config,
        )
        if os.path.exists(checkpoint):
            saved = load_checkpoint(checkpoint, digest=digest, config=config)

    # ---- set-up ----------------------------------------------------------------
    th = theta_np if operator else jnp.asarray(theta_np)
    tv = theta_val_np
    if tv is not None and not operator:
        tv = jnp.asarray(theta_val_np)
    Yj = jnp.asarray(Y)
    Yvj = None if Yv is None else jnp.asarray(Yv)
    proj = cons.projection()
    statuses: list[str] = []  # of every CG solve; the result reports the worst
    prepare = _make_solver(
        solver,
        th,
        ridge=rho,
        reference=om0,
        memory_budget=memory_budget,
        statuses=statuses,
    )
    counters = {"solves": 0, "evaluations": 0}

    def evaluate(omega, alpha0):
        solve = prepare(omega)
        counters["solves"] += 1
        counters["evaluations"] += 1
        alpha = solve(Yj, alpha0)
        ev = objective_value(
            objective, omega, alpha, Yj, ridge=rho, theta_val=tv, y_val=Yvj
        )
        return ev, solve

    def gradient(omega, ev, solve, adj0):
        def adjoint_solve(rhs):
            counters["solves"] += 1
            return solve(rhs, adj0)

        g, adj = objective_gradient(
            objective, th, omega, ev, adjoint_solve, ridge=rho, theta_val=tv
        )
        return g, (jnp.zeros_like(ev.alpha) if adj is None else adj)

    def pg_norm(omega, g):
        return float(jnp.linalg.norm(omega - proj(omega - g)))

    hist: dict[str, list] = {k: [] for k in MKLHistory._fields}
    t_start = time.perf_counter()
    t_offset = 0.0

    def record(state: _Loop, step_size: float):
        om = np.asarray(state.omega, dtype=np.float64)
        hist["objective"].append(state.value)
        hist["grad_norm"].append(pg_norm(state.omega, state.grad))
        hist["sparsity"].append(_rowwise_zero_fraction(om))
        hist["step_size"].append(step_size)
        hist["omega"].append(om)
        hist["time"].append(t_offset + time.perf_counter() - t_start)

    def finish(state: _Loop) -> NFTKResult:
        return _result(
            state,
            hist,
            th,
            rho,
            objective,
            constraint,
            is_clf,
            compute_cond,
            kind,
            counters["evaluations"],
            worst_status(*statuses),
        )

    if saved is not None:
        state, hist, t_offset, status = _restore(saved, optimizer, d, L)
        statuses.append(status)
        if state.converged or state.stop_reason == "line_search" or state.step >= steps:
            return finish(state)
        state = state._replace(stop_reason="")
    else:
        omega = proj(jnp.asarray(om0))
        ev, solve = evaluate(omega, None)
        g, adj = gradient(omega, ev, solve, None)
        opt_state = None
        if optimizer is not None:
            with jax.numpy_dtype_promotion("standard"):
                opt_state = optimizer.init(omega)
        state = _Loop(
            omega, ev.value, g, ev.alpha, adj, 0.0, 0, 0, False, "", opt_state
        )
        record(state, 0.0)
        if hist["grad_norm"][-1] < grad_tol:
            state = state._replace(converged=True, stop_reason="grad_norm")

    def save(state: _Loop):
        if checkpoint is None:
            return
        packed = _pack(state, hist)
        packed["solver_status"] = np.asarray(worst_status(*statuses))
        save_checkpoint(checkpoint, packed, config=config, digest=digest)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(  # no ETA: the learner usually stops long before `steps`
            total=steps,
            initial=state.step,
            desc=f"Omega steps (at most {steps})",
            bar_format="{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]",
        )

    while not state.stop_reason and state.step < steps:
        omega, g, f = state.omega, state.grad, state.value
        opt_state = state.opt_state
        accepted = None
        stationary = False
        if optimizer is not None or learning_rate is not None:
            if optimizer is not None:
                with jax.numpy_dtype_promotion("standard"):  # optax mixes dtypes
                    updates, opt_state = optimizer.update(g, opt_state, omega)
                    cand = proj(optax.apply_updates(omega, updates))
                t = float(
                    jnp.linalg.norm(cand - omega) / max(jnp.linalg.norm(g), 1e-300)
                )
            else:
                t = learning_rate
                cand = proj(omega - t * g)
            ev, solve = evaluate(cand, state.alpha)
            accepted = (cand, ev, solve, t)
        else:
            t = state.t_next
            if t <= 0:  # first step: move Omega by about its own norm
                t = float(
                    jnp.linalg.norm(omega) / max(float(jnp.linalg.norm(g)), 1e-300)
                )
            for trial in range(rule.max_backtracks):
                cand = proj(omega - t * g)
                diff = cand - omega
                if not bool(jnp.any(diff != 0)):
                    # The first trial step does not move Omega: a fixed point of
                    # the projected step (stationary); after halvings: a failure.
                    stationary = trial == 0
                    break
                ev, solve = evaluate(cand, state.alpha)
                if ev.value <= f + rule.sigma * float(jnp.sum(g * diff)):
                    accepted = (cand, ev, solve, t)
                    break
                t *= 0.5
        if accepted is None:  # a failed Armijo search is not convergence
            reason = "stationary" if stationary else "line_search"
            state = state._replace(converged=stationary, stop_reason=reason)
            break
        cand, ev, solve, t = accepted
        g_new, adj = gradient(cand, ev, solve, state.adjoint)
        rel = abs(f - ev.value) / max(abs(f), 1e-300)
        n_small = state.n_small + 1 if rel < tol else 0
        state = _Loop(
            cand,
            ev.value,
            g_new,
            ev.alpha,
            adj,
            2.0 * t,
            n_small,
            state.step + 1,
            False,
            "",
            opt_state,
        )
        record(state, t)
        if n_small >= SMALL_STEPS:
            state = state._replace(converged=True, stop_reason="rel_change")
        elif hist["grad_norm"][-1] < grad_tol:
            state = state._replace(converged=True, stop_reason="grad_norm")
        elif state.step >= steps:
            state = state._replace(stop_reason="steps")
        if state.stop_reason or state.step % checkpoint_every == 0:
            save(state)
        if bar is not None:
            bar.set_postfix(objective=f"{state.value:.4g}", refresh=False)
            bar.update()
        if callback is not None:
            info = MKLStep(
                state.step,
                hist["omega"][-1],
                state.value,
                hist["grad_norm"][-1],
                t,
            )
            if callback(info) is True:
                state = state._replace(stop_reason="callback")
                save(state)
                break
    if bar is not None:  # the total becomes the steps really taken
        bar.total = state.step
        bar.set_description_str(f"Omega steps ({state.stop_reason or 'steps'})")
        bar.close()
    if not state.stop_reason:
        state = state._replace(stop_reason="steps")
    save(state)
    return finish(state)


def _pack(state: _Loop, hist: dict[str, list]) -> dict[str, np.ndarray]:
    out = {
        "omega": np.asarray(state.omega, dtype=np.float64),
        "value": np.float64(state.value),
        "grad": np.asarray(state.grad, dtype=np.float64),
        "alpha": np.asarray(state.alpha, dtype=np.float64),
        "adjoint": np.asarray(state.adjoint, dtype=np.float64),
        "t_next": np.float64(state.t_next),
        "n_small": np.int64(state.n_small),
        "step": np.int64(state.step),
        "converged": np.bool_(state.converged),
        "stop_reason": np.asarray(state.stop_reason),
        "finished": np.bool_(bool(state.stop_reason)),
    }
    for k in MKLHistory._fields:
        out["history_" + k] = np.asarray(hist[k], dtype=np.float64)
    leaves = (
        [] if state.opt_state is None else jax.tree_util.tree_leaves(state.opt_state)
    )
    out["opt_n_leaves"] = np.int64(len(leaves))
    for i, leaf in enumerate(leaves):
        out[f"opt_leaf_{i}"] = np.asarray(leaf)
    return out


def _restore(saved, optimizer, d, L) -> tuple[_Loop, dict[str, list], float, str]:
    from ..core import CheckpointError

    try:
        omega = saved["omega"]
        if omega.shape != (d, L):
            raise KeyError("omega shape")
        opt_state = None
        if optimizer is not None:
            template = optimizer.init(jnp.asarray(omega))
            treedef = jax.tree_util.tree_structure(template)
            n_leaves = int(saved["opt_n_leaves"])
            if n_leaves != treedef.num_leaves:
                raise KeyError("optimizer state")
            leaves = [jnp.asarray(saved[f"opt_leaf_{i}"]) for i in range(n_leaves)]
            opt_state = jax.tree_util.tree_unflatten(treedef, leaves)
        state = _Loop(
            jnp.asarray(omega),
            float(saved["value"]),
            jnp.asarray(saved["grad"]),
            jnp.asarray(saved["alpha"]),
            jnp.asarray(saved["adjoint"]),
            float(saved["t_next"]),
            int(saved["n_small"]),
            int(saved["step"]),
            bool(saved["converged"]),
            str(saved["stop_reason"]),
            opt_state,
        )
        hist = {}
        for k in MKLHistory._fields:
            arr = saved["history_" + k]
            hist[k] = list(arr)
        status = str(saved["solver_status"])
    except KeyError as e:
        raise CheckpointError(
            f"checkpoint is incomplete or from another configuration ({e}); delete it "
            "or pass a new checkpoint path."
        ) from e
    t_offset = float(hist["time"][-1]) if hist["time"] else 0.0
    return state, hist, t_offset, status


def _result(
    state,
    hist,
    th,
    rho,
    objective,
    constraint,
    is_clf,
    compute_cond,
    kind,
    n_evaluations=0,
    solver_status="converged",
) -> NFTKResult:
    d, L = state.omega.shape
    converged = bool(state.converged)
    if solver_status != "converged":
        warnings.warn(
            f"some linear solves of the Omega learner ended with status "
            f"{solver_status!r}, so the fit is not reported as converged; pass a "
            "larger cg_maxiter, preconditioner='cholesky', a larger ridge or "
            "solver='dense'.",
            RuntimeWarning,
            stacklevel=4,
        )
        converged = False
    history = MKLHistory(
        *(
            np.asarray(hist[k], dtype=np.float64).reshape(
                (-1, d, L) if k == "omega" else (-1,)
            )
            for k in MKLHistory._fields
        )
    )
    omega = np.asarray(state.omega, dtype=np.float64)
    cond = np.full(d, np.nan)
    if compute_cond:
        k = np.asarray(combine_kernels(th, state.omega), dtype=np.float64)
        ev = np.linalg.eigvalsh(k)
        cond = (ev[:, -1] + rho) / np.maximum(ev[:, 0] + rho, 1e-300)
    return NFTKResult(
        n_evaluations=int(n_evaluations),
        omega=omega,
        alpha=np.asarray(state.alpha, dtype=np.float64),
        ridge=rho,
        history=history,
        converged=converged,
        n_steps=int(state.step),
        objective=objective,
        constraint=constraint,
        is_classification=bool(is_clf),
        cond=cond,
        stop_reason=state.stop_reason,
        solver=kind,
        solver_status=solver_status,
    )


# -- from inputs --------------------------------------------------------------------
def _check_fraction(fraction: Any) -> float:
    frac = _check_float(fraction, "validation_fraction")
    if frac >= 1:
        raise NFTKInputError(f"validation_fraction must lie in (0, 1), got {fraction}.")
    return frac


def validation_split(
    y: np.ndarray, fraction: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (stratified for labels) split into sorted train and validation indices."""
    _check_fraction(fraction)
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


def _check_cached_kernels_fit(n: int, depth: int, dtype: np.dtype) -> None:
    """The learner caches ``(L, n, n)`` kernels: fail early when they cannot fit."""
    from ..linalg import default_memory_budget

    ram = 2 * default_memory_budget()
    need = np.dtype(dtype).itemsize * depth * n * n * 2  # kernels + their slices
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
            :class:`~nftk_jax.DiskLayerOperator`) and streamed back in
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
    from ..kernels import layerwise_kernels

    if "theta_val" in options:
        raise NFTKInputError("fit_mkl computes theta_val itself; pass x_val and y_val.")
    with jax.enable_x64(True):
        xx = check_spec_inputs(spec, x, "x")
        y_arr = np.asarray(y)
        if y_arr.ndim == 0 or y_arr.shape[0] != len(xx):
            raise NFTKInputError(
                f"y must have one entry per row of x: x has {len(xx)} rows, y has "
                f"shape {y_arr.shape}."
            )
        objective = check_objective(objective)
        frac = _check_fraction(validation_fraction)
        # Encode once on all labels so the split keeps every class index.
        _, is_clf = encode_targets(
            y_arr, len(xx), n_classes=options.get("n_classes"), name="y"
        )
        if is_clf and options.get("n_classes") is None:
            options["n_classes"] = int(np.max(y_arr.astype(np.int64))) + 1
        rho = _ridge_or_method(ridge, kernel_storage)

        def scaled(theta, y_fit=None) -> float:
            if isinstance(rho, str):
                sel = select_ridge_for_labels(
                    theta, y_arr if y_fit is None else y_fit, rho,
                    n_classes=options.get("n_classes"),
                )  # fmt: skip
                return sel.ridge
            if not relative_ridge:
                return rho
            diag = np.diagonal(np.asarray(theta), axis1=1, axis2=2)
            return rho * float(np.mean(diag))

        dt = resolve_dtype(dtype)
        if kernel_storage not in KERNEL_STORAGES:
            raise NFTKInputError(
                f"kernel_storage={kernel_storage!r} is unknown; choose one of "
                f"{list(KERNEL_STORAGES)}."
            )
        if kernel_storage != "memory":
            return _fit_mkl_operators(
                spec, xx, y_arr, x_val=x_val, y_val=y_val, rho=rho,
                relative_ridge=relative_ridge, objective=objective, frac=frac,
                seed=seed, refit=refit, is_clf=is_clf, storage=kernel_storage,
                kernel_dir=kernel_dir, memory_budget=memory_budget, dtype=dt,
                progress=progress, options=options, engine=engine,
            )  # fmt: skip
        _check_cached_kernels_fit(len(xx), spec.depth, dt)
        kern = {"memory_budget": memory_budget, "dtype": dt, "progress": progress}
        kern["engine"] = engine
        split = objective == "val_mse" and x_val is None
        if x_val is not None:
            xv = check_spec_inputs(spec, x_val, "x_val", like=xx)
            if y_val is None:
                raise NFTKInputError("x_val was given without y_val; pass both.")
            theta = layerwise_kernels(spec, xx, **kern)
            theta_val = layerwise_kernels(spec, xv, xx, **kern)
            res = fit_mkl_kernels(
                theta,
                y_arr,
                theta_val=theta_val,
                y_val=y_val,
                ridge=scaled(theta),
                objective=objective,
                progress=progress,
                memory_budget=memory_budget,
                **options,
            )
            x_train = xx
        elif split:
            if y_val is not None:
                raise NFTKInputError("y_val was given without x_val; pass both.")
            tr, va = validation_split(
                y_arr if is_clf else np.zeros(len(xx)), frac, seed, stratify=is_clf
            )
            theta_all = np.asarray(layerwise_kernels(spec, xx, **kern))
            theta_tr = theta_all[:, tr][:, :, tr]
            res = fit_mkl_kernels(
                theta_tr,
                y_arr[tr],
                theta_val=theta_all[:, va][:, :, tr],
                y_val=y_arr[va],
                ridge=scaled(theta_tr, y_arr[tr]),
                objective=objective,
                progress=progress,
                memory_budget=memory_budget,
                **options,
            )
            if refit:
                th = jnp.asarray(theta_all, dtype=jnp.float64)
                res = refit_alpha(res, th, y_arr, options, memory_budget)
                x_train = xx
            else:
                x_train = xx[tr]
        else:
            theta = layerwise_kernels(spec, xx, **kern)
            res = fit_mkl_kernels(
                theta,
                y_arr,
                ridge=scaled(theta),
                objective=objective,
                progress=progress,
                memory_budget=memory_budget,
                **options,
            )
            x_train = xx
    return res._replace(spec=spec, x_train=np.asarray(x_train), kernel_dtype=dt)


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
    prepare = _make_solver(
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


def _fit_mkl_operators(
    spec, xx, y_arr, *, x_val, y_val, rho, relative_ridge, objective, frac, seed,
    refit, is_clf, storage, kernel_dir, memory_budget, dtype, progress, options,
    engine="auto",
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
        if not relative_ridge:
            return rho
        return rho * float(np.mean(np.asarray(op.diagonal())))

    options = dict(options)
    options.setdefault("solver", "matrix_free")
    fit_x, fit_y = xx, y_arr
    if x_val is not None:
        xv = check_spec_inputs(spec, x_val, "x_val", like=xx)
        if y_val is None:
            raise NFTKInputError("x_val was given without y_val; pass both.")
        op, op_val, yv = operator("train", xx), operator("xval", xv, xx), y_val
    elif objective == "val_mse":
        if y_val is not None:
            raise NFTKInputError("y_val was given without x_val; pass both.")
        tr, va = validation_split(
            y_arr if is_clf else np.zeros(len(xx)), frac, seed, stratify=is_clf
        )
        fit_x, fit_y = xx[tr], y_arr[tr]
        op, op_val, yv = (
            operator("fit", fit_x),
            operator("val", xx[va], fit_x),
            y_arr[va],
        )
    else:
        op, op_val, yv = operator("train", xx), None, None
    res = fit_mkl_kernels(
        op,
        fit_y,
        theta_val=op_val,
        y_val=yv,
        ridge=scaled(op),
        objective=objective,
        progress=progress,
        memory_budget=memory_budget,
        **options,
    )
    x_train = fit_x
    if refit and fit_x is not xx:
        res = refit_alpha(res, operator("train", xx), y_arr, options, memory_budget)
        x_train = xx
    return res._replace(spec=spec, x_train=np.asarray(x_train), kernel_dtype=dtype)
