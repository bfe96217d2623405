import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mkl_cases import synthetic_problem

from nftk_jax.linalg._krr import encode_targets
from nftk_jax.mkl._objectives import OBJECTIVES, objective_and_gradient

from helpers import assert_close

RIDGE = 0.3


def _problem():
    theta, theta_val, y, y_val = synthetic_problem(n=30, m=12, d=3, seed=1)
    Y, _ = encode_targets(y, len(y))
    Yv, _ = encode_targets(y_val, len(y_val), n_classes=3)
    omega = np.random.default_rng(5).uniform(0.2, 1.5, size=(3, 3))
    return theta, theta_val, Y, Yv, omega


def _reference(objective, theta, theta_val, Y, Yv):
    """The objective written directly with a dense jnp.linalg.solve."""
    theta, theta_val = jnp.asarray(theta), jnp.asarray(theta_val)
    Y, Yv = jnp.asarray(Y), jnp.asarray(Yv)
    n = theta.shape[-1]

    def f(omega):
        total = 0.0
        for c in range(Y.shape[1]):
            k = jnp.tensordot(omega[c], theta, axes=1)
            a = jnp.linalg.solve(k + RIDGE * jnp.eye(n), Y[:, c])
            if objective == "train_mse":
                total = total + jnp.sum((k @ a - Y[:, c]) ** 2) / n
            elif objective == "krr_dual":
                total = total + Y[:, c] @ a
            else:
                kv = jnp.tensordot(omega[c], theta_val, axes=1)
                total = total + jnp.mean((kv @ a - Yv[:, c]) ** 2) / Y.shape[1]
        return total

    return f


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_gradient_matches_autodiff(objective):
    theta, theta_val, Y, Yv, omega = _problem()
    value, grad = objective_and_gradient(
        theta, Y, omega, ridge=RIDGE, objective=objective, theta_val=theta_val, y_val=Yv
    )
    f = _reference(objective, theta, theta_val, Y, Yv)
    assert_close(value, f(jnp.asarray(omega)), rtol=1e-10)
    assert_close(grad, jax.grad(f)(jnp.asarray(omega)), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_gradient_matches_central_differences(objective):
    theta, theta_val, Y, Yv, omega = _problem()
    kw = dict(ridge=RIDGE, objective=objective, theta_val=theta_val, y_val=Yv)
    _, grad = objective_and_gradient(theta, Y, omega, **kw)
    h = 1e-6
    fd = np.zeros_like(omega)
    for c in range(omega.shape[0]):
        for l in range(omega.shape[1]):
            e = np.zeros_like(omega)
            e[c, l] = h
            fp, _ = objective_and_gradient(theta, Y, omega + e, **kw)
            fm, _ = objective_and_gradient(theta, Y, omega - e, **kw)
            fd[c, l] = (fp - fm) / (2 * h)
    assert_close(grad, fd, rtol=1e-5, atol=1e-9)


def test_train_mse_equals_ridge_identity():
    # At the Theorem-1 solution K a - y = -rho a, so the training MSE is rho^2|a|^2/n.
    theta, theta_val, Y, Yv, omega = _problem()
    v_train, _ = objective_and_gradient(
        theta, Y, omega, ridge=RIDGE, objective="train_mse"
    )
    n = theta.shape[-1]
    direct = 0.0
    for c in range(3):
        k = np.tensordot(omega[c], theta, axes=1)
        a = np.linalg.solve(k + RIDGE * np.eye(n), Y[:, c])
        direct += np.sum((k @ a - Y[:, c]) ** 2) / n
    assert_close(v_train, direct, rtol=1e-10)


def test_unknown_objective():
    theta, theta_val, Y, Yv, omega = _problem()
    with pytest.raises(ValueError, match="objective"):
        objective_and_gradient(theta, Y, omega, ridge=RIDGE, objective="mse")
