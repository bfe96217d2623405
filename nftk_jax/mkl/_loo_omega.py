r"""Omega learned by closed-form leave-one-out on all training rows (dense, small n).

The learner (:func:`~nftk_jax.fit_mkl_kernels`) scores Omega on a validation
split. On a training set of a few dozen examples a split leaves a handful of
validation rows, so the learned Omega follows their noise. Leave-one-out uses
every row once as validation and needs no split: for class :math:`c` with
:math:`A_c = \sum_l \Omega_{cl}\Theta_l + \rho I`, :math:`H_c = A_c^{-1}` and
:math:`\alpha_c = H_c y_c`, the leave-one-out residual of row :math:`i` is
:math:`e_{ic} = \alpha_{ic} / (H_c)_{ii}` (Allen's PRESS, exact for kernel ridge
regression), and

.. math::  J(\Omega) = \frac{1}{nd}\sum_c\sum_i e_{ic}^2,

the criterion :func:`~nftk_jax.mkl.select_ridge` and
:func:`~nftk_jax.mkl.select_spec` score the uniform mix by, now minimised over
Omega. The classes decouple, so every row :math:`\omega_c` takes its own projected
gradient steps (Armijo backtracking, the step doubling after every accepted one);
the gradient is JAX's, through one ``n x n`` Cholesky factorisation per class and
evaluation, so this is for dense kernels of up to a few thousand rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import NFTKInputError, check_positive_int
from ._constraints import check_constraint, make_projection

__all__ = ["LOOOmega", "learn_omega_loo"]


class LOOOmega(NamedTuple):
    """Omega learned by leave-one-out, and its leave-one-out figures."""

    omega: np.ndarray  # (d, L) the learned mix
    loo_mse: float  # J at omega: mean squared leave-one-out residual
    loo_accuracy: float  # leave-one-out accuracy at omega (labels only, else nan)
    values: np.ndarray  # (steps + 1,) J at the start and after every step


def _class_loo(theta, omega_row, y_col, ridge):
    """Leave-one-out residuals of one class's kernel ridge regression."""
    n = theta.shape[1]
    a = jnp.einsum("l,lij->ij", omega_row, theta) + ridge * jnp.eye(
        n, dtype=theta.dtype
    )
    chol = jax.scipy.linalg.cho_factor(a, lower=True)
    h = jax.scipy.linalg.cho_solve(chol, jnp.eye(n, dtype=theta.dtype))
    alpha = h @ y_col
    return alpha / jnp.diagonal(h)


@jax.jit
def _values_and_grads(theta, omega, y, ridge):
    def value(row, col):
        return jnp.mean(_class_loo(theta, row, col, ridge) ** 2)

    vg = jax.vmap(jax.value_and_grad(value), in_axes=(0, 1))
    return vg(omega, y)


@jax.jit
def _residuals(theta, omega, y, ridge):
    res = jax.vmap(lambda row, col: _class_loo(theta, row, col, ridge), (0, 1))
    return res(omega, y).T  # (n, d)


def learn_omega_loo(
    theta: Any,
    y: Any,
    *,
    ridge: float,
    n_classes: int | None = None,
    constraint: str = "simplex",
    steps: int = 100,
    omega_init: Any = None,
    tol: float = 1e-6,
) -> LOOOmega:
    r"""Learn Omega by minimising the closed-form leave-one-out squared error.

    Args:
        theta: ``(L, n, n)`` layerwise training kernels (dense).
        y: ``(n,)`` integer labels (encoded as centred one-hot rows, as the
            learner does) or ``(n, d)`` float targets.
        ridge: the absolute ridge :math:`\rho > 0`, e.g. ``select_ridge``'s on the
            uniform mix.
        n_classes: number of classes when some are absent from ``y``.
        constraint: ``'simplex'``, ``'nonneg'``, ``'l1_ball'`` or ``'box'``
            (radius 1, lower bound 0); ``'simplex'`` keeps the mix's scale, which
            the fixed ridge assumes.
        steps: at most this many projected gradient steps per class.
        omega_init: ``(d, L)`` start; ``None``: the uniform mix :math:`1/L`.
        tol: stop when an iteration lowers :math:`J` by less than ``tol`` times
            its value.

    Returns:
        A :class:`LOOOmega`.

    Example:
        >>> import numpy as np
        >>> from nftk_jax.mkl import learn_omega_loo
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(30, 4)); y = (x[:, 0] > 0).astype(int)
        >>> theta = np.stack([x @ x.T, np.ones((30, 30)), (x @ x.T) ** 2])
        >>> res = learn_omega_loo(theta, y, ridge=1.0, steps=20)
        >>> res.omega.shape, bool(np.allclose(res.omega.sum(axis=1), 1.0))
        ((2, 3), True)
        >>> bool(res.values[-1] <= res.values[0])
        True
    """
    from ..linalg import encode_targets

    th = jnp.asarray(np.asarray(theta, dtype=np.float64))
    if th.ndim != 3 or th.shape[1] != th.shape[2]:
        raise NFTKInputError(
            f"theta must be (L, n, n) square layerwise training kernels, got shape "
            f"{th.shape}."
        )
    if not (np.isfinite(ridge) and ridge > 0):
        raise NFTKInputError(f"ridge must be finite and > 0, got {ridge!r}.")
    steps = check_positive_int(steps, "steps")
    name, radius, lower = check_constraint(constraint, radius=1.0, lower=0.0)
    project = make_projection(name, radius=radius, lower=lower)
    L, n = th.shape[0], th.shape[1]
    labels = np.asarray(y)
    Y, is_labels = encode_targets(labels, n, n_classes=n_classes)
    Y = jnp.asarray(Y, th.dtype)
    d = Y.shape[1]
    om = np.full((d, L), 1.0 / L) if omega_init is None else np.asarray(omega_init)
    if om.shape != (d, L):
        raise NFTKInputError(
            f"omega_init must have shape (n_classes, depth) = ({d}, {L}), got "
            f"{om.shape}."
        )
    om = jnp.asarray(project(jnp.asarray(om, th.dtype)))
    rho = jnp.asarray(ridge, th.dtype)
    val, grad = _values_and_grads(th, om, Y, rho)
    values = [float(jnp.mean(val))]
    eta = np.full(d, 1.0 / max(float(jnp.max(jnp.abs(grad))), 1e-30))
    for _ in range(steps):
        om, val, grad, eta = _armijo_step(th, Y, rho, project, om, val, grad, eta)
        values.append(float(jnp.mean(val)))
        if values[-2] - values[-1] <= tol * abs(values[-2]):
            break
    resid = np.asarray(_residuals(th, om, Y, rho))
    acc = np.nan
    if is_labels:
        pred = np.argmax(np.asarray(Y) - resid, axis=1)
        acc = float(np.mean(pred == labels))
    return LOOOmega(np.asarray(om), values[-1], acc, np.asarray(values))


def _armijo_step(th, Y, rho, project, om, val, grad, eta, c1=1e-4, tries=30):
    """One projected gradient step per class row, each with its own step size:
    halved until the row's value drops enough, doubled after acceptance."""
    eta = eta.copy()
    pending = np.ones(len(eta), bool)
    new = om
    for _ in range(tries):
        cand = project(om - jnp.asarray(eta)[:, None] * grad)
        cv, _ = _values_and_grads(th, cand, Y, rho)
        drop = np.asarray(val - cv)
        ok = pending & (drop >= c1 * np.asarray(jnp.sum(grad * (om - cand), axis=1)))
        new = jnp.where(jnp.asarray(ok)[:, None], cand, new)
        pending &= ~ok
        eta[pending] *= 0.5
        if not pending.any():
            break
    eta[~pending] *= 2.0
    val, grad = _values_and_grads(th, new, Y, rho)
    return new, val, grad, eta
