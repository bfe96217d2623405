r"""Feasible sets for the layer weights :math:`\Omega \in \mathbb{R}^{d\times L}`.

Every constraint acts on each class row :math:`\omega_c` independently, so the
Euclidean projection of :math:`\Omega` is the row-wise projection, vmapped over
classes:

* ``'nonneg'``: :math:`\omega_c \ge 0` (the paper's set :math:`\mathcal S`, eq. 12).
* ``'simplex'``: :math:`\omega_c \ge 0,\ \sum_l \omega_{cl} = r`. The projection
  thresholds, :math:`\max(\omega - \tau, 0)`, so it produces exact zeros.
* ``'l1_ball'``: :math:`\omega_c \ge 0,\ \sum_l \omega_{cl} \le r` (the
  :math:`\ell_1` ball intersected with the non-negative orthant).
* ``'box'``: :math:`\ell \le \omega_{cl} \le r`.

Here :math:`r` is ``radius`` and :math:`\ell` is ``lower``. Each set is also an
option object (:class:`NonNeg`, :class:`Simplex`, :class:`L1Ball`, :class:`Box`),
validated at construction; :data:`CONSTRAINT_REGISTRY` maps the names to them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from optax import projections as _proj

from ..core import NFTKInputError
from ._registry import make_registry, same_as_default

__all__ = [
    "CONSTRAINTS",
    "CONSTRAINT_REGISTRY",
    "Box",
    "L1Ball",
    "NonNeg",
    "Simplex",
    "as_constraint",
    "check_constraint",
    "make_projection",
    "project",
]


def check_constraint(
    constraint: Any, *, radius: Any = 1.0, lower: Any = 0.0
) -> tuple[str, float, float]:
    """Validate ``constraint``, ``radius`` and ``lower``; returns them normalised."""
    if not isinstance(constraint, str) or constraint not in CONSTRAINTS:
        raise NFTKInputError(
            f"constraint={constraint!r} is unknown; choose one of {list(CONSTRAINTS)}."
        )
    try:
        r, lo = float(radius), float(lower)
    except (TypeError, ValueError):
        raise NFTKInputError(
            f"radius and lower must be numbers, got radius={radius!r}, lower={lower!r}."
        ) from None
    if not np.isfinite(r) or r <= 0:
        raise NFTKInputError(
            f"radius must be finite and > 0 (the scale of each Omega row), got "
            f"{radius!r}; e.g. radius=1.0."
        )
    if not np.isfinite(lo) or lo < 0 or lo >= r:
        raise NFTKInputError(
            f"lower must satisfy 0 <= lower < radius (box constraint), got "
            f"lower={lower!r} with radius={r}."
        )
    return constraint, r, lo


class _Constraint:
    """A feasible set for every class row of Omega; ``radius``/``lower`` as in
    :func:`make_projection`."""

    name: ClassVar[str]
    radius: float
    lower: float

    def __post_init__(self) -> None:
        _, r, lo = check_constraint(self.name, radius=self.radius, lower=self.lower)
        object.__setattr__(self, "radius", r)
        object.__setattr__(self, "lower", lo)

    def projection(self) -> Callable[[jax.Array], jax.Array]:
        """The jitted row-wise Euclidean projection onto the set."""
        return make_projection(self.name, radius=self.radius, lower=self.lower)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NonNeg(_Constraint):
    r""":math:`\omega_c \ge 0` (the paper's set); ill-posed with a scale-free
    objective (``'train_mse'``, ``'krr_dual'``).

    Example:
        >>> NonNeg().name
        'nonneg'
    """

    name: ClassVar[str] = "nonneg"
    radius: float = dataclasses.field(default=1.0, repr=False)  # unused
    lower: float = dataclasses.field(default=0.0, repr=False)  # unused


@dataclasses.dataclass(frozen=True, kw_only=True)
class Simplex(_Constraint):
    r""":math:`\omega_c \ge 0,\ \sum_l \omega_{cl} = r` (``radius``): exact zeros.

    Example:
        >>> Simplex(radius=2.0)
        Simplex(radius=2.0)
    """

    name: ClassVar[str] = "simplex"
    radius: float = 1.0  # r > 0: the sum of every row
    lower: float = dataclasses.field(default=0.0, repr=False)  # unused


@dataclasses.dataclass(frozen=True, kw_only=True)
class L1Ball(_Constraint):
    r""":math:`\omega_c \ge 0,\ \sum_l \omega_{cl} \le r` (``radius``).

    Example:
        >>> L1Ball(radius=0.5).radius
        0.5
    """

    name: ClassVar[str] = "l1_ball"
    radius: float = 1.0  # r > 0: the largest sum of a row
    lower: float = dataclasses.field(default=0.0, repr=False)  # unused


@dataclasses.dataclass(frozen=True, kw_only=True)
class Box(_Constraint):
    r""":math:`\ell \le \omega_{cl} \le r` (``lower`` :math:`\ell`, ``radius`` r).

    Example:
        >>> Box(lower=0.1, radius=2.0)
        Box(radius=2.0, lower=0.1)
    """

    name: ClassVar[str] = "box"
    radius: float = 1.0  # r > lower: the upper bound
    lower: float = 0.0  # 0 <= lower < radius


#: ``constraint=`` names and their option classes.
CONSTRAINT_REGISTRY = make_registry(NonNeg, Simplex, L1Ball, Box)
#: Names accepted by ``constraint=``.
CONSTRAINTS = tuple(CONSTRAINT_REGISTRY)


def as_constraint(constraint: Any, *, radius: Any = 1.0, lower: Any = 0.0) -> Any:
    """The constraint object for ``constraint`` (an object, or a name of
    :data:`CONSTRAINT_REGISTRY` with ``radius`` and ``lower``).

    Example:
        >>> as_constraint("box", radius=2.0, lower=0.5)
        Box(radius=2.0, lower=0.5)
    """
    if isinstance(constraint, _Constraint):
        same_as_default(
            {"radius": radius, "lower": lower},
            {"radius": 1.0, "lower": 0.0},
            f"constraint={constraint!r}",
        )
        return constraint
    name, r, lo = check_constraint(constraint, radius=radius, lower=lower)
    return CONSTRAINT_REGISTRY[name](radius=r, lower=lo)


def _row_projection(constraint: str, radius: float, lower: float) -> Callable:
    if constraint == "nonneg":
        return _proj.projection_non_negative
    if constraint == "simplex":
        return lambda w: _proj.projection_simplex(w, radius)
    if constraint == "box":
        return lambda w: _proj.projection_box(w, lower, radius)

    # l1_ball intersected with w >= 0: KKT gives max(w - tau, 0) with tau >= 0; tau = 0
    # when max(w, 0) is already inside the ball, otherwise the simplex projection.
    def l1_nonneg(w):
        pos = jnp.maximum(w, 0)
        return jnp.where(
            jnp.sum(pos) <= radius, pos, _proj.projection_simplex(w, radius)
        )

    return l1_nonneg


@functools.lru_cache(maxsize=32)
def make_projection(
    constraint: str, *, radius: float = 1.0, lower: float = 0.0
) -> Callable[[jax.Array], jax.Array]:
    r"""A jitted Euclidean projection of a ``(d, L)`` Omega onto the feasible set.

    Args:
        constraint: one of :data:`CONSTRAINTS`.
        radius: :math:`r`, the row sum for ``'simplex'``, the :math:`\ell_1` radius
            for ``'l1_ball'`` and the upper bound for ``'box'``.
        lower: lower bound for ``'box'``.

    Returns:
        ``omega (d, L) -> projected (d, L)``, vmapped over class rows.
    """
    constraint, radius, lower = check_constraint(constraint, radius=radius, lower=lower)
    row = _row_projection(constraint, radius, lower)

    def rows(omega):
        # optax's simplex projection mixes int and float internally; allow it even
        # under jax_numpy_dtype_promotion='strict'.
        with jax.numpy_dtype_promotion("standard"):
            return jax.vmap(row)(omega)

    return jax.jit(rows)


def project(
    omega: Any, constraint: str, *, radius: float = 1.0, lower: float = 0.0
) -> np.ndarray:
    """Project ``omega`` (``(d, L)`` or ``(L,)``) row-wise; returns float64 NumPy.

    Example:
        >>> import numpy as np
        >>> project(np.array([0.5, 0.5, 2.0]), "simplex").tolist()
        [0.0, 0.0, 1.0]
    """
    om = np.asarray(omega, dtype=np.float64)
    single = om.ndim == 1
    fn = make_projection(constraint, radius=float(radius), lower=float(lower))
    out = np.asarray(fn(jnp.asarray(np.atleast_2d(om))), dtype=np.float64)
    return out[0] if single else out
