"""GP posterior variance of the Theorem-1 predictor, against dense references."""

import numpy as np
import pytest
from scipy.special import ndtr
from sklearn.datasets import load_digits

from nftk_jax import MLP, NFTKClassifier, NFTKRegressor, fit_mkl, layerwise_kernels
from nftk_jax.linalg._krr import encode_targets
from nftk_jax.mkl._uncertainty import (
    gaussian_class_probabilities,
    posterior_variance,
)

from helpers import assert_close


def _random_kernels(L, n, m, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(L, n + m, 6))
    full = np.einsum("lia,lja->lij", z, z) + 0.1 * np.exp(
        -np.sum((z[:, :, None] - z[:, None]) ** 2, axis=-1)
    )
    return full[:, :n, :n], full[:, n:, :n], np.diagonal(full, axis1=1, axis2=2)[:, n:]


def _dense_reference(theta, cross, diag, omega, ridge):
    out = []
    for row in omega:
        k = np.tensordot(row, theta, axes=1)
        kx = np.tensordot(row, cross, axes=1)
        kd = row @ diag
        sol = np.linalg.solve(k + ridge * np.eye(len(k)), kx.T)
        out.append(kd - np.sum(kx.T * sol, axis=0))
    return np.stack(out, axis=1)


@pytest.mark.parametrize("block", [3, 2048])
def test_posterior_variance_matches_dense_reference(block):
    theta, cross, diag = _random_kernels(4, 30, 11)
    omega = np.array([[0.5, 0.2, 0.3, 0.0], [0.0, 0.0, 1.0, 0.0], [0.5, 0.2, 0.3, 0.0]])
    var = posterior_variance(theta, cross, diag, omega, ridge=0.05, block=block)
    ref = _dense_reference(theta, cross, diag, omega, 0.05)
    assert var.shape == (11, 3)
    assert_close(var, ref, rtol=1e-10, atol=1e-12)
    assert np.all(var <= (omega @ diag).T + 1e-12)  # never above the prior variance


def test_variance_vanishes_at_training_points_as_ridge_goes_to_zero():
    theta = _random_kernels(3, 12, 0, seed=1)[0]
    diag = np.diagonal(theta, axis1=1, axis2=2)
    omega = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    worst = []
    for ridge in (1e-2, 1e-4, 1e-6, 1e-8):
        var = posterior_variance(theta, theta, diag, omega, ridge=ridge)
        assert_close(
            var,
            _dense_reference(theta, theta, diag, omega, ridge),
            rtol=1e-7,
            atol=1e-12,
        )
        worst.append(float(var.max()))
    assert worst[-1] < 1e-7 * float(diag.max())
    assert all(
        b < 0.05 * a for a, b in zip(worst[:-1], worst[1:], strict=True)
    )  # ~ linear in ridge


@pytest.fixture(scope="module")
def digits_fit():
    x, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))[:110]
    x = x[idx] / 16.0
    y = y[idx]
    res = fit_mkl(
        MLP(depth=3), x[:80], y[:80], ridge=1e-2, relative_ridge=True, steps=5
    )
    return res, x[:80], y[:80], x[80:]


@pytest.mark.slow
def test_result_predict_return_std_matches_kernels(digits_fit):
    res, x, _, xt = digits_fit
    mean, std = res.predict(xt, return_std=True)
    assert_close(mean, res.predict(xt), rtol=1e-9, atol=1e-12)
    spec = res.spec
    theta = np.asarray(layerwise_kernels(spec, x))
    cross = np.asarray(layerwise_kernels(spec, xt, x))
    diag = np.diagonal(np.asarray(layerwise_kernels(spec, xt)), axis1=1, axis2=2)
    ref = _dense_reference(theta, cross, diag, res.omega, res.ridge)
    assert_close(std**2, np.maximum(ref, 0), rtol=1e-7, atol=1e-10)


@pytest.mark.slow
def test_nngp_heads_are_the_nngp_posterior(digits_fit):
    res, x, y, xt = digits_fit
    mean, std = res.predict(xt, return_std=True, get="nngp")
    spec = res.spec
    theta = np.asarray(layerwise_kernels(spec, x, get="nngp"))
    cross = np.asarray(layerwise_kernels(spec, xt, x, get="nngp"))
    diag = np.diagonal(
        np.asarray(layerwise_kernels(spec, xt, get="nngp")), axis1=1, axis2=2
    )
    Y, _ = encode_targets(y, len(y), n_classes=10)
    ref_mean = np.stack(
        [
            np.tensordot(row, cross, axes=1)
            @ np.linalg.solve(
                np.tensordot(row, theta, axes=1) + res.ridge * np.eye(len(y)), Y[:, c]
            )
            for c, row in enumerate(res.omega)
        ],
        axis=1,
    )
    assert_close(mean, ref_mean, rtol=1e-6, atol=1e-9)
    ref = _dense_reference(theta, cross, diag, res.omega, res.ridge)
    assert_close(std**2, np.maximum(ref, 0), rtol=1e-7, atol=1e-10)
    assert not np.allclose(std, res.predict(xt, return_std=True)[1])


@pytest.mark.slow
def test_estimators_return_std(digits_fit):
    _, x, y, xt = digits_fit
    clf = NFTKClassifier(depth=2, steps=2).fit(x, y)
    labels, std = clf.predict(xt, return_std=True)
    assert_close(labels, clf.predict(xt), rtol=0, atol=0)
    assert std.shape == (len(xt), len(clf.classes_)) and np.all(std > 0)
    reg = NFTKRegressor(depth=2, steps=2).fit(x, x[:, 10])
    mean, sd = reg.predict(xt, return_std=True)
    assert mean.shape == sd.shape == (len(xt),)
    assert_close(mean, reg.predict(xt), rtol=1e-9, atol=1e-12)


def test_gaussian_class_probabilities():
    rng = np.random.default_rng(0)
    mu, sd = rng.normal(size=(5, 2)), rng.uniform(0.2, 1.0, size=(5, 2))
    p = gaussian_class_probabilities(mu, sd)
    exact = ndtr((mu[:, 0] - mu[:, 1]) / np.hypot(sd[:, 0], sd[:, 1]))
    assert_close(p[:, 0], exact, rtol=1e-8, atol=1e-10)
    mu, sd = rng.normal(size=(3, 4)), rng.uniform(0.3, 1.0, size=(3, 4))
    draws = mu[:, None] + sd[:, None] * rng.normal(size=(3, 100_000, 4))
    mc = np.stack([np.mean(draws.argmax(-1) == c, axis=1) for c in range(4)], axis=1)
    assert_close(gaussian_class_probabilities(mu, sd), mc, rtol=0, atol=5e-3)
    with pytest.raises(ValueError, match="mean and std"):
        gaussian_class_probabilities(mu, sd[:, :2])


def test_bad_kernel_shapes():
    theta, cross, diag = _random_kernels(2, 5, 3)
    with pytest.raises(ValueError, match="theta_diag"):
        posterior_variance(theta, cross, diag[:, :2], [[1.0, 0.0]], ridge=0.1)
    with pytest.raises(ValueError, match="theta_cross"):
        posterior_variance(theta, cross[:1], diag, [[1.0, 0.0]], ridge=0.1)
