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

Here :math:`r` is ``radius`` and :math:`\ell` is ``lower``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from optax import projections as _proj

from ..core import NFTKInputError

__all__ = ["CONSTRAINTS", "check_constraint", "make_projection", "project"]

#: Names accepted by ``constraint=``.
CONSTRAINTS = ("nonneg", "simplex", "l1_ball", "box")


def check_constraint(
    constraint: Any, *, radius: Any = 1.0, lower: Any = 0.0
) -> tuple[str, float, float]:
    """Validate ``constraint``, ``radius`` and ``lower``; returns them normalised."""
    if not isinstance(constraint, str) or constraint not in CONSTRAINTS:
        raise NFTKInputError(
            f"constraint={constraint!r} is unknown; choose one of {list(CONSTRAINTS)}."
        )
    try:
        r = float(radius)
        lo = float(lower)
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
