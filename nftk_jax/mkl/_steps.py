r"""Step rules of the projected-gradient learner, as option objects.

:math:`\Omega \leftarrow P(\Omega - \eta\nabla J)` with :math:`\eta` from

* :class:`Armijo` (default, ``'armijo'``): backtracking along the projection arc;
  the objective never increases;
* :class:`Fixed` (``'fixed'``): a fixed ``learning_rate``;
* :class:`Optax` (``'optax'``): an optax ``GradientTransformation``'s update,
  then the projection.

Example:
    >>> import optax
    >>> from nftk_jax.mkl import Armijo, Fixed, Optax
    >>> Armijo(max_backtracks=20)
    Armijo(max_backtracks=20, sigma=0.0001)
    >>> Fixed(learning_rate=0.1)
    Fixed(learning_rate=0.1)
    >>> Optax(optimizer=optax.adam(0.05)).name
    'optax'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..core import NFTKInputError, check_positive_float, check_positive_int, describe
from ._registry import from_registry, make_registry, same_as_default

__all__ = [
    "STEP_RULE_REGISTRY",
    "Armijo",
    "Fixed",
    "Optax",
    "Proposal",
    "as_step_rule",
]


class Proposal(NamedTuple):
    """An accepted step of a step rule."""

    omega: jax.Array  # (d, L) float64: the new feasible Omega
    ev: Any  # ObjectiveEval at omega (value and alpha)
    solve: Callable  # the linear solver at omega (for the adjoint solve)
    step_size: float  # the step taken (for an optax rule: ||Delta|| / ||grad||)
    opt_state: Any  # the optax state after the step (None for the other rules)


def _norm_ratio(a, b) -> float:
    """``||a|| / ||b||``, guarded against ``b = 0``."""
    return float(jnp.linalg.norm(a) / max(float(jnp.linalg.norm(b)), 1e-300))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Armijo:
    r"""Backtracking: the first trial is twice the last accepted step (the very
    first :math:`\|\Omega\| / \|\nabla J\|`), halved until
    :math:`J(\Omega^+) \le J(\Omega) + \sigma\langle\nabla J, \Omega^+ - \Omega\rangle`;
    after ``max_backtracks`` halvings the fit stops (``'line_search'``)."""

    name: ClassVar[str] = "armijo"
    max_backtracks: int = 40  # halvings before giving up, >= 1
    sigma: float = 1e-4  # sufficient-decrease constant, in (0, 1)

    def __post_init__(self) -> None:
        check_positive_int(self.max_backtracks, "max_backtracks")
        sigma = check_positive_float(self.sigma, "sigma")
        if sigma >= 1:
            raise NFTKInputError(f"Armijo(sigma=...) must lie in (0, 1), got {sigma}.")
        object.__setattr__(self, "sigma", sigma)

    def identity(self) -> dict[str, Any]:
        """What a checkpoint's identity records of this rule."""
        return {"learning_rate": None, "optimizer": None,
                "max_backtracks": self.max_backtracks, "sigma": self.sigma}  # fmt: skip

    def init(self, omega: jax.Array) -> None:
        """No state besides the next first trial (``LoopState.t_next``)."""
        return None

    def propose(self, state: Any, objective: Any) -> tuple[Proposal | None, str]:
        """The step from ``state``, or ``None`` with why there is none:
        ``'stationary'`` (the first trial does not move Omega) or
        ``'line_search'`` (no decrease within ``max_backtracks`` halvings)."""
        omega, g, f = state.omega, state.grad, state.value
        t = state.t_next
        if t <= 0:  # first step: move Omega by about its own norm
            t = _norm_ratio(omega, g)
        for trial in range(self.max_backtracks):
            cand = objective.project(omega - t * g)
            diff = cand - omega
            if not bool(jnp.any(diff != 0)):
                # The first trial step does not move Omega: a fixed point of the
                # projected step (stationary); after halvings: a failure.
                return None, "stationary" if trial == 0 else "line_search"
            ev, solve = objective.evaluate(cand, state.alpha)
            if ev.value <= f + self.sigma * float(jnp.sum(g * diff)):
                return Proposal(cand, ev, solve, t, None), ""
            t *= 0.5
        return None, "line_search"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fixed:
    """Fixed-step projected gradient (no monotonicity guarantee)."""

    name: ClassVar[str] = "fixed"
    learning_rate: float  # eta > 0

    def __post_init__(self) -> None:
        lr = check_positive_float(self.learning_rate, "learning_rate")
        object.__setattr__(self, "learning_rate", lr)

    def identity(self) -> dict[str, Any]:
        """What a checkpoint's identity records of this rule."""
        return {"learning_rate": self.learning_rate, "optimizer": None}

    def init(self, omega: jax.Array) -> None:
        """No state."""
        return None

    def propose(self, state: Any, objective: Any) -> tuple[Proposal, str]:
        r""":math:`P(\Omega - \eta\nabla J)`, always accepted."""
        t = self.learning_rate
        cand = objective.project(state.omega - t * state.grad)
        ev, solve = objective.evaluate(cand, state.alpha)
        return Proposal(cand, ev, solve, t, None), ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Optax:
    """An optax transformation's update (it carries its own learning rate), then
    the projection; its state is checkpointed."""

    name: ClassVar[str] = "optax"
    optimizer: Any  # an optax GradientTransformation

    def __post_init__(self) -> None:
        opt = self.optimizer
        if not (hasattr(opt, "init") and hasattr(opt, "update")):
            raise NFTKInputError(
                f"optimizer must be an optax GradientTransformation, got {opt!r}."
            )

    def identity(self) -> dict[str, Any]:
        """What a checkpoint's identity records of this rule: the optimiser's
        hyperparameters, not just its type (``optax.adam(5.0)`` is not
        ``optax.adam(0.05)``)."""
        return {"learning_rate": None, "optimizer": describe(self.optimizer)}

    def init(self, omega: jax.Array) -> Any:
        """The optimiser's state at ``omega``."""
        with jax.numpy_dtype_promotion("standard"):  # optax mixes dtypes
            return self.optimizer.init(omega)

    def propose(self, state: Any, objective: Any) -> tuple[Proposal, str]:
        """The optimiser's update, then the projection; always accepted."""
        omega, g = state.omega, state.grad
        with jax.numpy_dtype_promotion("standard"):  # optax mixes dtypes
            updates, opt_state = self.optimizer.update(g, state.opt_state, omega)
            cand = objective.project(optax.apply_updates(omega, updates))
        t = _norm_ratio(cand - omega, g)
        ev, solve = objective.evaluate(cand, state.alpha)
        return Proposal(cand, ev, solve, t, opt_state), ""


#: Step-rule names and their option classes.
STEP_RULE_REGISTRY = make_registry(Armijo, Fixed, Optax)


def as_step_rule(
    step_rule: Any = None,
    *,
    learning_rate: Any = None,
    optimizer: Any = None,
    max_backtracks: Any = 40,
) -> Any:
    """The step rule object from ``step_rule`` (an object, a name of
    :data:`STEP_RULE_REGISTRY` or ``None``) and the loose keywords.

    With ``step_rule=None``: :class:`Optax` when ``optimizer`` is given,
    :class:`Fixed` when ``learning_rate`` is, else :class:`Armijo`.

    Example:
        >>> as_step_rule(learning_rate=0.5)
        Fixed(learning_rate=0.5)
        >>> as_step_rule("armijo", max_backtracks=10)
        Armijo(max_backtracks=10, sigma=0.0001)
    """
    loose = {"learning_rate": learning_rate, "optimizer": optimizer,
             "max_backtracks": max_backtracks}  # fmt: skip
    if step_rule is not None and not isinstance(step_rule, str):
        same_as_default(loose, {"learning_rate": None, "optimizer": None,
                                "max_backtracks": 40}, "step_rule")  # fmt: skip
        return from_registry(step_rule, STEP_RULE_REGISTRY, "step_rule")
    if optimizer is not None and learning_rate is not None:
        raise NFTKInputError(
            "pass either learning_rate (fixed-step projected gradient) or optimizer "
            "(an optax transformation, which carries its own learning rate), not both."
        )
    if step_rule is None:
        step_rule = "optax" if optimizer is not None else "armijo"
        step_rule = "fixed" if learning_rate is not None else step_rule
    if step_rule not in STEP_RULE_REGISTRY:
        from_registry(step_rule, STEP_RULE_REGISTRY, "step_rule")  # raises
    if step_rule == "fixed":
        if learning_rate is None:
            raise NFTKInputError("step_rule='fixed' needs learning_rate=ETA (> 0).")
        return Fixed(learning_rate=learning_rate)
    if step_rule == "optax":
        if optimizer is None:
            raise NFTKInputError(
                "step_rule='optax' needs optimizer=, e.g. optax.adam(0.05)."
            )
        return Optax(optimizer=optimizer)
    if learning_rate is not None or optimizer is not None:
        raise NFTKInputError(
            "step_rule='armijo' chooses the step itself; drop learning_rate and "
            "optimizer, or pass step_rule='fixed' / 'optax'."
        )
    return Armijo(max_backtracks=max_backtracks)
