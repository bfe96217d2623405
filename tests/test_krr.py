"""Theorem-1 kernel ridge regression against scikit-learn's KernelRidge."""

import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge

from nftk_jax.linalg._krr import (
    check_omega,
    check_ridge,
    combine_kernels,
    encode_targets,
    krr_fit,
    krr_predict,
)

from helpers import assert_close


def _problem(seed=0, n=30, m=8, L=3, d=4):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(L, n + m, 6))
    theta = np.einsum("lni,lmi->lnm", feats, feats)
    y = rng.integers(0, d, n)
    return theta[:, :n, :n], theta[:, n:, :n], y, rng


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("ridge", [1e-3, 0.5])
def test_matches_sklearn_kernel_ridge(shared, ridge):
    theta, cross, y, rng = _problem()
    omega = rng.random((4, 3))
    if shared:
        omega = np.tile(omega[:1], (4, 1))
    Y, is_clf = encode_targets(y, len(y))
    assert is_clf
    sol = krr_fit(theta, Y, omega, ridge=ridge)
    pred = krr_predict(cross, sol.alpha, omega)
    for c in range(4):
        k = np.einsum("l,lij->ij", omega[c], theta)
        kx = np.einsum("l,lij->ij", omega[c], cross)
        ref = KernelRidge(alpha=ridge, kernel="precomputed").fit(k, Y[:, c])
        assert_close(sol.alpha[:, c], ref.dual_coef_, rtol=1e-8, atol=1e-10)
        assert_close(pred[:, c], ref.predict(kx), rtol=1e-8, atol=1e-10)


def test_combine_and_condition_number():
    theta, _, y, rng = _problem(1)
    omega = rng.random((4, 3))
    k = combine_kernels(theta, omega)
    assert_close(k[2], sum(omega[2, l] * theta[l] for l in range(3)))
    sol = krr_fit(
        theta, encode_targets(y, len(y))[0], omega, ridge=0.1, compute_cond=True
    )
    assert_close(
        sol.cond[2], np.linalg.cond(np.asarray(k[2]) + 0.1 * np.eye(30)), rtol=1e-6
    )


def test_jitter_escalation_warns_on_singular_kernel():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(1, 30, 1))
    theta = 1e3 * v @ v.transpose(0, 2, 1)  # rank one: singular for a tiny ridge
    y = rng.integers(0, 2, 30)
    with pytest.warns(RuntimeWarning, match="jitter"):
        sol = krr_fit(theta, encode_targets(y, 30)[0], np.ones((2, 1)), ridge=1e-300)
    assert sol.jitter > 0 and np.all(np.isfinite(np.asarray(sol.alpha)))


def test_indefinite_kernel_fails_loudly():
    theta, _, y, _ = _problem(2)
    bad = theta - 1e3 * np.eye(30)
    with pytest.raises(np.linalg.LinAlgError, match="ridge"):
        krr_fit(bad, encode_targets(y, 30)[0], np.ones((4, 3)), ridge=1e-3)


def test_centred_one_hot_targets():
    Y, _ = encode_targets(np.array([0, 2, 1]), 3, n_classes=3)
    assert_close(Y.sum(axis=1), np.zeros(3))
    assert_close(Y[1], np.array([-1, -1, 2]) / 3)
    Yr, is_clf = encode_targets(np.ones((3, 2)), 3)
    assert not is_clf and Yr.shape == (3, 2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: check_ridge(0.0), "ridge"),
        (lambda: check_ridge(-1), "ridge"),
        (lambda: check_ridge(float("nan")), "ridge"),
        (lambda: check_omega(-np.ones((2, 3)), n_classes=2, depth=3), "non-negative"),
        (lambda: check_omega(np.ones((2, 4)), n_classes=2, depth=3), "shape"),
        (lambda: check_omega(np.zeros((2, 3)), n_classes=2, depth=3), "all zero"),
        (lambda: encode_targets(np.array([0, 1, 5]), 3, n_classes=3), "labels"),
        (lambda: encode_targets(np.array([0.5, 1, 0]), 3), "non-integer"),
        (lambda: encode_targets(np.array([0, 1]), 3), "length 3"),
        (lambda: encode_targets(np.array([[np.nan]]), 1), "NaN"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
