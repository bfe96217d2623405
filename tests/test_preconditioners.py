"""Nystrom preconditioners per class: each class's column gets the Woodbury inverse
of its own kernel's Nystrom approximation, built independently here."""

from __future__ import annotations

import numpy as np
import pytest
from test_solvers import RIDGE, matrix_free_problem, problem

from nftk_jax import MLP, layerwise_kernels
from nftk_jax.linalg import (
    nystrom_preconditioner,
    solve_cg,
    solve_cg_matrix_free,
    solve_dense,
)

from helpers import assert_close, random_inputs


def _class_kernels(theta, omega):
    return np.einsum("cl,lij->cij", omega, theta)


def test_per_class_full_rank_inverts_each_class_system():
    theta, _, omega = problem()
    n, d = theta.shape[1], omega.shape[0]
    pre = nystrom_preconditioner(theta, omega, ridge=RIDGE, rank=n, per_class=True)
    assert pre.classes == d and pre.basis.shape == (d, n, n)
    z = np.random.default_rng(0).normal(size=(n, d))
    k = _class_kernels(theta, omega)
    r = np.stack([k[c] @ z[:, c] + RIDGE * z[:, c] for c in range(d)], 1)
    assert_close(pre.apply(r), z, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("scale", [False, True])
def test_per_class_low_rank_is_each_class_woodbury(scale):
    theta, _, omega = problem()
    n, d, m = theta.shape[1], omega.shape[0], 20
    pre = nystrom_preconditioner(
        theta, omega, ridge=RIDGE, rank=m, landmarks="uniform", per_class=True,
        scale_complement=scale,
    )  # fmt: skip
    s = pre.landmarks
    r = np.random.default_rng(1).normal(size=(n, d))
    out = np.asarray(pre.apply(r))
    for c, kc in enumerate(_class_kernels(theta, omega)):
        # Independent reference: K_hat = C W^+ C^T from the landmark columns.
        k_hat = kc[:, s] @ np.linalg.pinv(kc[np.ix_(s, s)]) @ kc[s]
        lam, u = np.linalg.eigh(k_hat)
        lam, u = lam[::-1][:m], u[:, ::-1][:, :m]
        sigma = RIDGE + (lam[-1] if scale else 0.0)
        assert_close(pre.shift[c], sigma, rtol=1e-6)
        proj = u.T @ r[:, c]
        want = u @ (proj / (lam + RIDGE)) + (r[:, c] - u @ proj) / sigma
        assert_close(out[:, c], want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("landmarks", ["greedy", "uniform"])
def test_per_class_cg_matches_cholesky(landmarks):
    theta, y, omega = problem()
    ref = solve_dense(theta, y, omega, ridge=RIDGE)
    pre = nystrom_preconditioner(
        theta, omega, ridge=RIDGE, rank=30, landmarks=landmarks, per_class=True
    )
    want = (3, 30) if landmarks == "greedy" else (30,)
    assert pre.landmarks.shape == want
    res = solve_cg(theta, y, omega, ridge=RIDGE, tol=1e-10, preconditioner=pre)
    assert_close(res.alpha, ref.alpha, rtol=1e-7, atol=1e-8)


def test_per_class_beats_shared_when_classes_weight_different_layers():
    spec = MLP(depth=6)
    x = random_inputs(300, 8, seed=5)
    theta = np.asarray(layerwise_kernels(spec, x, devices=False))
    omega = np.zeros((2, 6))
    omega[0, 0], omega[1, 5] = 1.0, 1.0  # one class on the first layer, one on the last
    y = np.random.default_rng(6).normal(size=(300, 2))
    iters = {}
    for per_class in (False, True):
        pre = nystrom_preconditioner(
            theta, omega, ridge=1e-3, rank=40, landmarks="uniform",
            per_class=per_class,
        )  # fmt: skip
        res = solve_cg(theta, y, omega, ridge=1e-3, tol=1e-8, preconditioner=pre)
        assert res.residual.max() <= 1e-8 * 1.5
        iters[per_class] = res.iterations
    assert iters[True] < iters[False], iters


def test_matrix_free_per_class_equals_cached():
    spec, x, y, omega, tiling, theta = matrix_free_problem()
    free = nystrom_preconditioner(
        None, omega, ridge=0.1, rank=20, spec=spec, x=x, per_class=True, **tiling
    )
    cached = nystrom_preconditioner(
        theta, omega, ridge=0.1, rank=20, landmarks="uniform", per_class=True
    )
    np.testing.assert_array_equal(free.landmarks, cached.landmarks)
    assert_close(free.eigvals, cached.eigvals, rtol=1e-6, atol=1e-10)
    ref = solve_cg(theta, y, omega, ridge=0.1, tol=1e-10)
    res = solve_cg_matrix_free(
        spec, x, y, omega, ridge=0.1, tol=1e-10, preconditioner=free, **tiling
    )
    assert_close(res.alpha, ref.alpha, rtol=1e-7, atol=1e-8)


def test_per_class_preconditioner_must_match_the_classes():
    theta, y, omega = problem()
    pre = nystrom_preconditioner(theta, omega, ridge=RIDGE, rank=10, per_class=True)
    with pytest.raises(ValueError, match=r"per class for d=3 classes .* d=2"):
        solve_cg(theta, y[:, :2], omega[:2], ridge=RIDGE, preconditioner=pre)
