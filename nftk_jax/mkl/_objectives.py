r"""MKL objectives over :math:`\Omega` with closed-form gradients.

For class :math:`c` let :math:`K_c = \sum_l \Omega_{cl}\Theta_l`,
:math:`A_c = K_c + \rho I` and :math:`\alpha_c = A_c^{-1} y_c` (Theorem 1). Since
:math:`\partial A_c / \partial\Omega_{cl} = \Theta_l`,

.. math::  \frac{\partial \alpha_c}{\partial \Omega_{cl}} = -A_c^{-1}\Theta_l\alpha_c.

Each objective is a sum over classes of a term that depends only on row
:math:`\omega_c`, so its gradient is assembled row by row from layer quadratic
forms :math:`u_c^\top\Theta_l v_c` (one pass over the kernels); the solver is never
differentiated through.

* ``'train_mse'``: :math:`J = \sum_c \frac1n\|K_c\alpha_c - y_c\|^2
  = \sum_c \frac{\rho^2}{n}\|\alpha_c\|^2` (because
  :math:`K_c\alpha_c - y_c = -\rho\alpha_c`), with
  :math:`\partial J/\partial\Omega_{cl}
  = -\frac{2\rho^2}{n}\beta_c^\top\Theta_l\alpha_c`,
  :math:`\beta_c = A_c^{-1}\alpha_c` (one adjoint solve).
* ``'krr_dual'``: :math:`J = \sum_c y_c^\top A_c^{-1} y_c = \sum_c y_c^\top\alpha_c`,
  with :math:`\partial J/\partial\Omega_{cl} = -\alpha_c^\top\Theta_l\alpha_c`
  (no extra solve).
* ``'val_mse'``: with validation kernels :math:`V_l = \Theta_l(X_v, X)`
  (:math:`m\times n`), :math:`e_c = \sum_l\Omega_{cl}V_l\alpha_c - y^v_c` and
  :math:`J = \frac{1}{md}\sum_c\|e_c\|^2`,

  .. math::  \frac{\partial J}{\partial\Omega_{cl}} = \frac{2}{md}\Big(
             e_c^\top V_l\alpha_c - \gamma_c^\top\Theta_l\alpha_c\Big),\qquad
             \gamma_c = A_c^{-1}\Big(\sum_k\Omega_{ck}V_k\Big)^{\!\top} e_c.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import NFTKInputError
from ..kernels import is_layer_operator as _is_operator
from ..linalg import cholesky_with_jitter

__all__ = [
    "OBJECTIVES",
    "ObjectiveEval",
    "check_objective",
    "layer_products",
    "layer_quadratic_forms",
    "layer_rproducts",
    "objective_gradient",
    "objective_value",
    "objective_and_gradient",
]

#: Names accepted by ``objective=``.
OBJECTIVES = ("val_mse", "train_mse", "krr_dual")
#: Objectives whose value does not pin down the scale of Omega under 'nonneg'.
SCALE_FREE_ILL_POSED = ("train_mse", "krr_dual")


class ObjectiveEval(NamedTuple):
    """An objective evaluated at one Omega (before its gradient)."""

    value: float  # scalar objective
    alpha: jax.Array  # (n, d): alpha_c = A_c^{-1} y_c
    val_residual: jax.Array | None  # (m, d): e_c for 'val_mse', else None
    val_alpha: jax.Array | None  # (L, m, d): V_l alpha_c for 'val_mse', else None


def check_objective(objective: Any) -> str:
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise NFTKInputError(
            f"objective={objective!r} is unknown; choose one of {list(OBJECTIVES)}."
        )
    return objective


@jax.jit
def _dense_products(theta, v):
    return jnp.einsum("lij,jc->lic", theta, v)


@jax.jit
def _dense_rproducts(theta, u):
    return jnp.einsum("lij,ic->ljc", theta, u)


def layer_products(theta: Any, v: Any) -> jax.Array:
    r""":math:`\Theta_l v` for every layer, ``(L, n1, k)``, for ``v (n2, k)``.

    ``theta`` is an ``(L, n1, n2)`` array or a layer operator from
    :mod:`nftk_jax.kernels._operators` (streamed or disk-backed products).
    """
    if _is_operator(theta):
        return jnp.asarray(theta.matmul(v))
    return _dense_products(theta, v)


def layer_rproducts(theta: Any, u: Any) -> jax.Array:
    r""":math:`\Theta_l^\top u` for every layer, ``(L, n2, k)``, for ``u (n1, k)``."""
    if _is_operator(theta):
        return jnp.asarray(theta.rmatmul(u))
    return _dense_rproducts(theta, u)


@jax.jit
def _contract(u, tv):
    return jnp.einsum("ic,lic->cl", u, tv)


def layer_quadratic_forms(theta: Any, u: jax.Array, v: jax.Array) -> jax.Array:
    r""":math:`Q_{cl} = u_c^\top \Theta_l v_c` for ``theta (L, n1, n2)`` (or a layer
    operator), ``u (n1, d)``, ``v (n2, d)``; returns ``(d, L)``."""
    return _contract(u, layer_products(theta, v))


@jax.jit
def _val_finish(va, omega, y_val):
    pred = jnp.einsum("cl,lmc->mc", omega, va)
    resid = pred - y_val
    return resid, jnp.mean(resid**2)


def _val_parts(theta_val, omega, alpha, y_val):
    va = layer_products(theta_val, alpha)  # (L, m, d)
    resid, value = _val_finish(va, omega, y_val)
    return va, resid, value


@jax.jit
def _combine_rows(omega, vt):
    return jnp.einsum("cl,ljc->jc", omega, vt)


def _val_adjoint_rhs(theta_val, omega, resid):
    # (sum_k Omega[c,k] V_k)^T e_c = sum_k Omega[c,k] V_k^T e_c
    return _combine_rows(omega, layer_rproducts(theta_val, resid))


def objective_value(
    objective: str,
    omega: jax.Array,
    alpha: jax.Array,
    y: jax.Array,
    *,
    ridge: float,
    theta_val: jax.Array | None = None,
    y_val: jax.Array | None = None,
) -> ObjectiveEval:
    """The objective at ``omega`` given its dual coefficients ``alpha (n, d)``."""
    n = alpha.shape[0]
    if objective == "train_mse":
        value = ridge**2 / n * jnp.sum(alpha**2)
        return ObjectiveEval(float(value), alpha, None, None)
    if objective == "krr_dual":
        return ObjectiveEval(float(jnp.sum(y * alpha)), alpha, None, None)
    va, resid, value = _val_parts(theta_val, omega, alpha, y_val)
    return ObjectiveEval(float(value), alpha, resid, va)


def objective_gradient(
    objective: str,
    theta: jax.Array,
    omega: jax.Array,
    ev: ObjectiveEval,
    adjoint_solve: Callable[[jax.Array], jax.Array],
    *,
    ridge: float,
    theta_val: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array | None]:
    r"""Closed-form gradient ``(d, L)`` and the adjoint solution (or ``None``).

    Args:
        objective: one of :data:`OBJECTIVES`.
        theta: ``(L, n, n)`` training kernels.
        omega: ``(d, L)`` where ``ev`` was evaluated.
        ev: from :func:`objective_value` at ``omega``.
        adjoint_solve: ``rhs (n, d) -> A^{-1} rhs`` column-wise with
            :math:`A_c = K_c + \rho I` at ``omega``.
        ridge: :math:`\rho`.
        theta_val: ``(L, m, n)`` for ``'val_mse'``.
    """
    alpha = ev.alpha
    n, d = alpha.shape
    if objective == "krr_dual":
        return -layer_quadratic_forms(theta, alpha, alpha), None
    if objective == "train_mse":
        beta = adjoint_solve(alpha)
        g = -(2.0 * ridge**2 / n) * layer_quadratic_forms(theta, beta, alpha)
        return g, beta
    m = ev.val_residual.shape[0]
    gamma = adjoint_solve(_val_adjoint_rhs(theta_val, omega, ev.val_residual))
    direct = jnp.einsum("mc,lmc->cl", ev.val_residual, ev.val_alpha)
    g = (2.0 / (m * d)) * (direct - layer_quadratic_forms(theta, gamma, alpha))
    return g, gamma


def objective_and_gradient(
    theta: Any,
    y: Any,
    omega: Any,
    *,
    ridge: float,
    objective: str = "val_mse",
    theta_val: Any = None,
    y_val: Any = None,
) -> tuple[float, np.ndarray]:
    r"""Objective and closed-form gradient at one Omega, with dense solves.

    A reference entry point (the learner in :mod:`nftk_jax.mkl._learner` reuses
    solves and warm starts instead).

    Args:
        theta: ``(L, n, n)`` training kernels.
        y: ``(n, d)`` float targets.
        omega: ``(d, L)`` non-negative layer weights.
        ridge: :math:`\rho > 0`.
        objective: one of :data:`OBJECTIVES`.
        theta_val: ``(L, m, n)`` validation-vs-training kernels (``'val_mse'``).
        y_val: ``(m, d)`` validation targets (``'val_mse'``).

    Returns:
        ``(value, gradient (d, L))``.
    """
    objective = check_objective(objective)
    theta = jnp.asarray(theta, dtype=jnp.float64)
    y = jnp.asarray(y, dtype=theta.dtype)
    om = jnp.asarray(omega, dtype=theta.dtype)
    chol = cholesky_with_jitter(jnp.einsum("cl,lij->cij", om, theta), ridge)[0]

    def solve(rhs):
        return jax.scipy.linalg.cho_solve((chol, True), rhs.T[..., None])[..., 0].T

    tv = yv = None
    if objective == "val_mse":
        tv = jnp.asarray(theta_val, dtype=theta.dtype)
        yv = jnp.asarray(y_val, dtype=theta.dtype)
    ev = objective_value(
        objective, om, solve(y), y, ridge=ridge, theta_val=tv, y_val=yv
    )
    g, _ = objective_gradient(
        objective, theta, om, ev, solve, ridge=ridge, theta_val=tv
    )
    return ev.value, np.asarray(g, dtype=np.float64)
