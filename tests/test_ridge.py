"""Ridge selection: closed-form LOO and GCV against brute force, grid handling."""

from __future__ import annotations

import numpy as np
import pytest

from nftk_jax.mkl._ridge import RidgeSelection, default_ridge_grid, select_ridge

from helpers import assert_close

N, DEPTH, D = 40, 3, 2


def problem(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(DEPTH, N, 8))
    theta = np.einsum("lik,ljk->lij", a, a) / 8 + 0.05 * np.eye(N)
    omega = 0.2 + rng.random((D, DEPTH))
    y = rng.normal(size=(N, D))
    return theta, y, omega


def class_kernels(theta, omega):
    return np.einsum("cl,lij->cij", omega, theta)


def brute_force_loo(k, y, ridge):
    """Mean squared residual of refits that leave each point out, summed over c."""
    total = 0.0
    for c in range(y.shape[1]):
        errors = []
        for i in range(N):
            keep = np.arange(N) != i
            kk = k[c][np.ix_(keep, keep)] + ridge * np.eye(N - 1)
            alpha = np.linalg.solve(kk, y[keep, c])
            errors.append(y[i, c] - k[c][i, keep] @ alpha)
        total += np.mean(np.square(errors))
    return total


def direct_gcv(k, y, ridge):
    total = 0.0
    for c in range(y.shape[1]):
        hat = k[c] @ np.linalg.inv(k[c] + ridge * np.eye(N))
        resid = (np.eye(N) - hat) @ y[:, c]
        total += N * resid @ resid / np.trace(np.eye(N) - hat) ** 2
    return total


def test_loo_equals_brute_force_refits():
    theta, y, omega = problem()
    grid = np.array([1e-3, 3e-2, 0.5, 4.0])
    sel = select_ridge(theta, y, omega, method="loo", grid=grid)
    assert isinstance(sel, RidgeSelection) and sel.method == "loo"
    k = class_kernels(theta, omega)
    expected = [brute_force_loo(k, y, r) for r in grid]
    assert_close(sel.scores, expected, rtol=1e-8)


def test_gcv_equals_direct_formula():
    theta, y, omega = problem(1)
    grid = np.array([1e-4, 1e-2, 1.0, 20.0])
    sel = select_ridge(theta, y, omega, method="gcv", grid=grid)
    k = class_kernels(theta, omega)
    assert_close(sel.scores, [direct_gcv(k, y, r) for r in grid], rtol=1e-8)


@pytest.mark.parametrize("method", ["loo", "gcv"])
def test_selects_grid_minimiser_on_default_grid(method):
    theta, y, omega = problem(2)
    y = y + class_kernels(theta, omega)[0] @ np.ones((N, D)) / N  # some signal
    sel = select_ridge(theta, y, omega, method=method)
    k = class_kernels(theta, omega)
    mean_diag = np.mean(np.diagonal(k, axis1=1, axis2=2))
    assert sel.grid.shape == (29,) and sel.scores.shape == (29,)
    assert_close(sel.grid, default_ridge_grid(mean_diag))
    assert_close(sel.grid[[0, -1]], [1e-6 * mean_diag, 10 * mean_diag])
    assert sel.ridge == sel.grid[np.argmin(sel.scores)]
    assert np.all(np.isfinite(sel.scores))


def test_bad_arguments_name_the_argument():
    theta, y, omega = problem()
    with pytest.raises(ValueError, match="method"):
        select_ridge(theta, y, omega, method="kfold")
    for grid in ([], [1.0, -1.0], [[1.0]], [np.nan]):
        with pytest.raises(ValueError, match="grid"):
            select_ridge(theta, y, omega, grid=grid)
    with pytest.raises(
        ValueError, match=r"^Y must be an \(n, d\) = \(40, d\) target matrix"
    ):
        select_ridge(theta, y[:3], omega)
    with pytest.raises(ValueError, match="omega"):
        select_ridge(theta, y, omega[:1])
    with pytest.raises(ValueError, match="scale"):
        default_ridge_grid(0.0)
