r"""When the projected-gradient learner stops, as an option object.

Example:
    >>> from nftk_jax.mkl import Stopping
    >>> Stopping(rel_tol=1e-6, max_steps=50)
    Stopping(rel_tol=1e-06, grad_tol=1e-06, max_steps=50)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core import check_positive_float, check_positive_int
from ._registry import same_as_default

__all__ = ["CONVERGED", "SMALL_STEPS", "Stopping", "as_stopping"]

#: The relative-change rule needs this many consecutive small changes.
SMALL_STEPS = 2
#: Stop reasons that mean convergence (``'steps'``, ``'line_search'`` and
#: ``'callback'`` do not).
CONVERGED = ("rel_change", "grad_norm", "stationary")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stopping:
    r"""The learner's stopping rules; the first to fire ends the fit.

    * ``'rel_change'``: :math:`|J_k - J_{k+1}| / |J_k| <` ``rel_tol`` for two
      consecutive steps;
    * ``'grad_norm'``: :math:`\|\Omega - P(\Omega - \nabla J)\|_F <` ``grad_tol``
      (``None``: ``rel_tol``);
    * ``'steps'``: ``max_steps`` accepted steps (``converged=False``).
    """

    rel_tol: float = 1e-5  # tolerance on the relative objective change, > 0
    grad_tol: float | None = None  # on the projected-gradient norm; None: rel_tol
    max_steps: int = 100  # accepted steps at most, >= 1

    def __post_init__(self) -> None:
        rel = check_positive_float(self.rel_tol, "rel_tol")
        grad = rel if self.grad_tol is None else self.grad_tol
        object.__setattr__(self, "rel_tol", rel)
        object.__setattr__(self, "grad_tol", check_positive_float(grad, "grad_tol"))
        check_positive_int(self.max_steps, "max_steps")

    def small_change(self, before: float, after: float) -> bool:
        """Whether the objective moved by less than ``rel_tol``, relatively."""
        return abs(before - after) / max(abs(before), 1e-300) < self.rel_tol

    def reason(self, n_small: int, grad_norm: float, step: int) -> str:
        """The rule that fires after ``step`` accepted steps, ``n_small`` of them
        (the latest, in a row) small changes: ``'rel_change'``, ``'grad_norm'``,
        ``'steps'`` or ``''`` (none)."""
        if n_small >= SMALL_STEPS:
            return "rel_change"
        if grad_norm < self.grad_tol:
            return "grad_norm"
        return "steps" if step >= self.max_steps else ""


def as_stopping(
    stopping: Stopping | None = None,
    *,
    steps: Any = 100,
    tol: Any = 1e-5,
    grad_tol: Any = None,
) -> Stopping:
    """``stopping``, or the rule the loose ``steps``/``tol``/``grad_tol`` describe.

    Example:
        >>> as_stopping(steps=10, tol=1e-3)
        Stopping(rel_tol=0.001, grad_tol=0.001, max_steps=10)
    """
    if stopping is None:  # validated under the names the caller used
        return Stopping(
            rel_tol=check_positive_float(tol, "tol"),
            grad_tol=None
            if grad_tol is None
            else check_positive_float(grad_tol, "grad_tol"),
            max_steps=check_positive_int(steps, "steps"),
        )
    same_as_default(
        {"steps": steps, "tol": tol, "grad_tol": grad_tol},
        {"steps": 100, "tol": 1e-5, "grad_tol": None},
        "stopping",
    )
    if not isinstance(stopping, Stopping):
        from ..core import NFTKTypeError

        raise NFTKTypeError(
            f"stopping must be a Stopping(rel_tol=, grad_tol=, max_steps=) or None, "
            f"got {stopping!r}."
        )
    return stopping
