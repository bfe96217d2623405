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
the gradient is in closed form (:math:`dH = -H\,dA\,H`), from one ``n x n``
inverse per class and evaluation in NumPy, so this is for dense kernels of up to a
few thousand rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


def _class_loo(theta, row, col, ridge):
    """Leave-one-out residuals ``e``, ``H = A^{-1}`` and ``alpha`` of one class."""
    n = theta.shape[1]
    a = np.einsum("l,lij->ij", row, theta) + ridge * np.eye(n)
    h = np.linalg.inv(a)
    h = 0.5 * (h + h.T)
    alpha = h @ col
    return alpha / np.diagonal(h), h, alpha


def _values_and_grads(theta, omega, y, ridge, *, grads=True):
    r"""Per class: :math:`J_c = \frac1n\sum_i e_{ic}^2` and its gradient over the
    row :math:`\omega_c`, :math:`\partial J_c/\partial\Omega_{cl} =
    -(Hg)^\top\Theta_l\alpha + \langle H\,\mathrm{diag}(g e)\,H, \Theta_l\rangle`
    with :math:`g = 2e/(n\,\mathrm{diag} H)` (from :math:`dH = -H\,dA\,H`)."""
    n = theta.shape[1]
    values = np.empty(len(omega))
    out = np.zeros_like(omega)
    for c in range(len(omega)):
        e, h, alpha = _class_loo(theta, omega[c], y[:, c], ridge)
        values[c] = np.mean(e**2)
        if grads:
            g = 2.0 * e / (n * np.diagonal(h))
            m = (h * (g * e)[None, :]) @ h
            out[c] = -np.einsum("i,lij,j->l", h @ g, theta, alpha)
            out[c] += np.einsum("ij,lij->l", m, theta)
    return values, out


def _residuals(theta, omega, y, ridge):
    cols = [_class_loo(theta, omega[c], y[:, c], ridge)[0] for c in range(len(omega))]
    return np.stack(cols, axis=1)  # (n, d)


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

    th = np.asarray(theta, dtype=np.float64)
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
    Y = np.asarray(Y, np.float64)
    d = Y.shape[1]
    om = np.full((d, L), 1.0 / L) if omega_init is None else np.asarray(omega_init)
    if om.shape != (d, L):
        raise NFTKInputError(
            f"omega_init must have shape (n_classes, depth) = ({d}, {L}), got "
            f"{om.shape}."
        )
    om = _project(project, om)
    rho = float(ridge)
    val, grad = _values_and_grads(th, om, Y, rho)
    values = [float(np.mean(val))]
    eta = np.full(d, 1.0 / max(float(np.max(np.abs(grad))), 1e-30))
    for _ in range(steps):
        om, val, grad, eta = _armijo_step(th, Y, rho, project, om, val, grad, eta)
        values.append(float(np.mean(val)))
        if values[-2] - values[-1] <= tol * abs(values[-2]):
            break
    resid = _residuals(th, om, Y, rho)
    acc = np.nan
    if is_labels:
        pred = np.argmax(Y - resid, axis=1)
        acc = float(np.mean(pred == labels))
    return LOOOmega(om, values[-1], acc, np.asarray(values))


def _project(project, omega):
    """The constraint's projection, on the host."""
    return np.asarray(project(jnp.asarray(omega, jnp.float64)), np.float64)


def _armijo_step(th, Y, rho, project, om, val, grad, eta, c1=1e-4, tries=30):
    """One projected gradient step per class row, each with its own step size:
    halved until the row's value drops enough, doubled after acceptance."""
    eta = eta.copy()
    pending = np.ones(len(eta), bool)
    new = om
    for _ in range(tries):
        cand = _project(project, om - eta[:, None] * grad)
        cv, _ = _values_and_grads(th, cand, Y, rho, grads=False)
        ok = pending & (val - cv >= c1 * np.sum(grad * (om - cand), axis=1))
        new = np.where(ok[:, None], cand, new)
        pending &= ~ok
        eta[pending] *= 0.5
        if not pending.any():
            break
    eta[~pending] *= 2.0
    val, grad = _values_and_grads(th, new, Y, rho)
    return new, val, grad, eta
