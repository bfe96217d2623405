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
from typing import Any, ClassVar

from ..core import NFTKInputError, check_positive_float, check_positive_int, describe
from ._registry import from_registry, make_registry, same_as_default

__all__ = ["STEP_RULE_REGISTRY", "Armijo", "Fixed", "Optax", "as_step_rule"]


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
