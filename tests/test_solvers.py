"""Linear solvers: CG agrees with Cholesky, warm starts, preconditioning, planning."""

from __future__ import annotations

import numpy as np
import pytest

from nftk_jax import MLP, layerwise_kernels
from nftk_jax.linalg import (
    CholeskyPreconditioner,
    NystromPreconditioner,
    SolveResult,
    cholesky_preconditioner,
    nystrom_preconditioner,
    plan_solver,
    solve_cg,
    solve_cg_matrix_free,
    solve_dense,
)

from helpers import assert_close, random_inputs

RIDGE = 1e-2


def psd_kernels(n: int, depth: int, *, decay: float = 0.0, seed: int = 0):
    """``(L, n, n)`` random PSD kernels; ``decay > 0`` gives eigenvalues
    ``exp(-decay * k)`` in a shared basis (an ill-conditioned, low-rank-ish problem).
    """
    rng = np.random.default_rng(seed)
    if decay == 0.0:
        a = rng.normal(size=(depth, n, n // 2))
        return np.einsum("lik,ljk->lij", a, a) / n
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    spectrum = np.exp(-decay * np.arange(n))
    scales = 1.0 + 0.5 * rng.random((depth, n))  # layers differ, basis is shared
    return np.einsum("ik,lk,jk->lij", q, scales * spectrum, q)


def problem(n=120, depth=4, d=3, *, seed=0, decay=0.0):
    rng = np.random.default_rng(seed + 1)
    theta = psd_kernels(n, depth, decay=decay, seed=seed)
    omega = 0.1 + rng.random((d, depth))
    y = rng.normal(size=(n, d))
    return theta, y, omega


def test_dense_matches_direct_solve():
    theta, y, omega = problem()
    res = solve_dense(theta, y, omega, ridge=RIDGE)
    assert isinstance(res, SolveResult)
    assert res.iterations == 0 and res.jitter == 0.0
    assert res.alpha.shape == y.shape and res.residual.shape == (3,)
    for c in range(3):
        k = np.einsum("l,lij->ij", omega[c], theta) + RIDGE * np.eye(len(y))
        assert_close(res.alpha[:, c], np.linalg.solve(k, y[:, c]), rtol=1e-9)
    assert np.all(res.residual < 1e-12)


@pytest.mark.parametrize("form_kernels", [True, False])
def test_cg_matches_cholesky(form_kernels):
    theta, y, omega = problem()
    ref = solve_dense(theta, y, omega, ridge=RIDGE)
    res = solve_cg(theta, y, omega, ridge=RIDGE, tol=1e-10, form_kernels=form_kernels)
    assert res.residual.dtype == np.float64 and res.residual.shape == (3,)
    assert np.all(res.residual <= 1e-10 * 1.5)
    assert 0 < res.iterations <= 10 * len(y)
    assert_close(res.alpha, ref.alpha, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("landmarks", ["greedy", "uniform"])
def test_preconditioned_cg_matches_cholesky(landmarks):
    theta, y, omega = problem()
    ref = solve_dense(theta, y, omega, ridge=RIDGE)
    pre = nystrom_preconditioner(
        theta, omega, ridge=RIDGE, rank=30, landmarks=landmarks
    )
    assert isinstance(pre, NystromPreconditioner)
    assert pre.basis.shape == (120, 30) and pre.landmarks.shape == (30,)
    res = solve_cg(theta, y, omega, ridge=RIDGE, tol=1e-10, preconditioner=pre)
    assert_close(res.alpha, ref.alpha, rtol=1e-7, atol=1e-8)


def test_preconditioner_is_woodbury_inverse():
    theta, _, omega = problem()
    kbar = np.einsum("l,lij->ij", omega.mean(axis=0), theta)
    # Full rank: K_hat is the mean kernel itself, whatever the complement's scale.
    for scale in (True, False):
        pre = nystrom_preconditioner(
            theta, omega, ridge=RIDGE, rank=120, scale_complement=scale
        )
        assert_close(pre.apply(kbar + RIDGE * np.eye(120)), np.eye(120), atol=1e-8)
    # Low rank, unscaled: exactly (K_hat + ridge I)^{-1}.
    pre = nystrom_preconditioner(
        theta, omega, ridge=RIDGE, rank=20, scale_complement=False
    )
    u, lam = np.asarray(pre.basis), np.asarray(pre.eigvals)
    assert pre.shift == RIDGE and np.all(np.diff(lam) <= 0)
    k_hat = (u * lam) @ u.T
    assert_close(pre.apply(k_hat + RIDGE * np.eye(120)), np.eye(120), atol=1e-8)
    # Scaled: the complement of range(U) is divided by lambda_m + ridge.
    scaled = nystrom_preconditioner(theta, omega, ridge=RIDGE, rank=20)
    assert scaled.shift == RIDGE + lam[-1]
    r = np.random.default_rng(0).normal(size=(120, 2))
    expected = u @ ((u.T @ r) / (lam + RIDGE)[:, None]) + (r - u @ (u.T @ r)) / (
        RIDGE + lam[-1]
    )
    assert_close(scaled.apply(r), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("invert", [True, False])
def test_cholesky_preconditioner_is_inverse_of_mean_system(invert):
    theta, _, omega = problem()
    pre = cholesky_preconditioner(theta, omega, ridge=RIDGE, invert=invert)
    assert isinstance(pre, CholeskyPreconditioner) and pre.jitter == 0.0
    assert pre.inverted == invert
    assert_close(pre.weights, omega.mean(axis=0))
    kbar = np.einsum("l,lij->ij", omega.mean(axis=0), theta) + RIDGE * np.eye(120)
    r = np.random.default_rng(3).normal(size=(120, 4))
    assert_close(pre.apply(r), np.linalg.solve(kbar, r), rtol=1e-8, atol=1e-10)
    # The stored factor (R or its inverse) is lower triangular.
    f = np.asarray(pre.factor)
    assert_close(np.triu(f, 1), np.zeros_like(f), atol=0)
    # CG gives the same solution with either form.
    _, y, _ = problem()
    res = solve_cg(theta, y, omega, ridge=RIDGE, tol=1e-11, preconditioner=pre)
    assert_close(res.alpha, solve_dense(theta, y, omega, ridge=RIDGE).alpha, rtol=1e-7)
    # A float32 factor still gives a float64 solution to tolerance.
    pre32 = cholesky_preconditioner(
        theta, omega, ridge=RIDGE, invert=invert, dtype=np.float32
    )
    assert pre32.factor.dtype == np.float32
    res32 = solve_cg(theta, y, omega, ridge=RIDGE, tol=1e-11, preconditioner=pre32)
    assert res32.alpha.dtype == np.float64 and np.all(res32.residual < 1e-10)


@pytest.mark.parametrize("decay", [0.0, 0.15])
def test_cholesky_preconditioned_cg_matches_cholesky(decay):
    theta, y, omega = problem(decay=decay)
    ridge = RIDGE if decay == 0.0 else 1e-8
    ref = solve_dense(theta, y, omega, ridge=ridge)
    plain = solve_cg(theta, y, omega, ridge=ridge, tol=1e-10, maxiter=2000)
    pre = cholesky_preconditioner(theta, omega, ridge=ridge)
    res = solve_cg(theta, y, omega, ridge=ridge, tol=1e-10, preconditioner=pre)
    assert np.all(res.residual < 1e-9)
    scale = np.abs(np.asarray(ref.alpha)).max()
    assert_close(res.alpha, ref.alpha, rtol=1e-6, atol=1e-7 * scale)
    # Classes whose rows differ from the mean still converge much faster.
    assert res.iterations < plain.iterations / 2, (res.iterations, plain.iterations)


def test_cholesky_preconditioner_exact_for_a_shared_row():
    """Every class uses the mean row: P^{-1} A = I, so one CG step is exact."""
    theta, y, omega = problem()
    omega = np.tile(omega[:1], (3, 1))
    pre = cholesky_preconditioner(theta, omega, ridge=RIDGE)
    res = solve_cg(theta, y, omega, ridge=RIDGE, tol=1e-10, preconditioner=pre)
    assert res.iterations <= 2 and np.all(res.residual < 1e-9)


def test_preconditioning_cuts_iterations_on_ill_conditioned_problem():
    theta, y, omega = problem(decay=0.15)
    ridge = 1e-8
    plain = solve_cg(theta, y, omega, ridge=ridge, tol=1e-8, maxiter=1000)
    pre = nystrom_preconditioner(theta, omega, ridge=ridge, rank=60)
    fast = solve_cg(theta, y, omega, ridge=ridge, tol=1e-8, preconditioner=pre)
    assert np.all(fast.residual < 1e-7)
    assert fast.iterations < plain.iterations / 2, (fast.iterations, plain.iterations)


def test_preconditioning_helps_ntk_with_spectral_floor():
    """A deep ReLU NTK: a few outliers above a flat floor far above the ridge."""
    spec = MLP(depth=4)
    x = random_inputs(120, 8, seed=7)
    theta = layerwise_kernels(spec, x, devices=False)
    rng = np.random.default_rng(8)
    omega, y = 0.5 + rng.random((3, 4)), rng.normal(size=(120, 3))
    ridge = 1e-4
    plain = solve_cg(theta, y, omega, ridge=ridge, tol=1e-10)
    pre = nystrom_preconditioner(theta, omega, ridge=ridge, rank=40)
    fast = solve_cg(theta, y, omega, ridge=ridge, tol=1e-10, preconditioner=pre)
    assert fast.iterations < plain.iterations, (fast.iterations, plain.iterations)
    assert_close(fast.alpha, plain.alpha, rtol=1e-7, atol=1e-8)


def test_warm_start_needs_fewer_iterations():
    theta, y, omega = problem()
    cold = solve_cg(theta, y, omega, ridge=RIDGE, tol=1e-9)
    nearby = omega * (1 + 1e-3 * np.random.default_rng(5).normal(size=omega.shape))
    warm = solve_cg(theta, y, nearby, ridge=RIDGE, tol=1e-9, x0=cold.alpha)
    again = solve_cg(theta, y, nearby, ridge=RIDGE, tol=1e-9)
    assert warm.iterations < again.iterations, (warm.iterations, again.iterations)
    assert_close(warm.alpha, again.alpha, rtol=1e-6, atol=1e-7)
    # Starting from the solution itself: converged before the first iteration.
    exact = solve_dense(theta, y, nearby, ridge=RIDGE)
    assert solve_cg(theta, y, nearby, ridge=RIDGE, x0=exact.alpha).iterations == 0


def test_cg_freezes_converged_classes_and_zero_targets():
    theta, y, omega = problem()
    y[:, 1] = 0.0
    res = solve_cg(theta, y, omega, ridge=RIDGE)
    assert_close(res.alpha[:, 1], np.zeros(len(y)), atol=0)
    assert res.residual[1] == 0.0


def test_cg_maxiter_caps_iterations():
    theta, y, omega = problem()
    res = solve_cg(theta, y, omega, ridge=RIDGE, maxiter=3)
    assert res.iterations == 3 and np.all(res.residual > 1e-8)


def matrix_free_problem():
    """``(spec, x, y, omega, tiling, theta)``: a small problem for the streamed
    (matrix-free) paths, with its cached kernels as the reference."""
    spec = MLP(depth=3)
    x = random_inputs(40, 5, seed=3)
    rng = np.random.default_rng(4)
    omega = 0.1 + rng.random((2, 3))
    y = rng.normal(size=(40, 2))
    tiling = {"block_size": 20, "devices": False}
    return spec, x, y, omega, tiling, layerwise_kernels(spec, x, devices=False)


def test_matrix_free_matches_cached():
    spec, x, y, omega, tiling, theta = matrix_free_problem()
    ridge = 0.1
    ref = solve_cg(theta, y, omega, ridge=ridge, tol=1e-10)
    free = solve_cg_matrix_free(spec, x, y, omega, ridge=ridge, tol=1e-10, **tiling)
    assert_close(free.alpha, ref.alpha, rtol=1e-7, atol=1e-8)
    assert abs(free.iterations - ref.iterations) <= 2
    # Matrix-free preconditioner equals the cached one on the same landmarks.
    pre_free = nystrom_preconditioner(
        None, omega, ridge=ridge, rank=20, spec=spec, x=x, **tiling
    )
    pre = nystrom_preconditioner(
        theta, omega, ridge=ridge, rank=20, landmarks="uniform"
    )
    np.testing.assert_array_equal(pre_free.landmarks, pre.landmarks)
    # The landmark block holds x-vs-x diagonal entries, which carry neural-tangents'
    # sqrt(q1 q2 - q12^2) cancellation (~1e-7 relative) when computed as a cross kernel.
    assert_close(pre_free.eigvals, pre.eigvals, rtol=1e-6, atol=1e-10)
    warm = solve_cg_matrix_free(
        spec,
        x,
        y,
        omega,
        ridge=ridge,
        tol=1e-8,
        x0=ref.alpha,
        preconditioner=pre_free,
        **tiling,
    )
    assert warm.iterations <= 1
    assert_close(warm.alpha, ref.alpha, rtol=1e-7, atol=1e-8)


def test_plan_solver_branches():
    gib = 1 << 30
    # n=1000, L=10, d=10, float64: kernels 80 MB, factors 80 MB.
    assert plan_solver(1000, 10, 10, memory_budget=gib) == "dense"
    assert plan_solver(1000, 10, 10, memory_budget=100_000_000) == "cg"
    assert plan_solver(1000, 10, 10, memory_budget=50_000_000) == "cg_matrix_free"
    # Large n prefers CG even when the factors fit.
    assert plan_solver(10_000, 10, 10, memory_budget=64 * gib) == "cg"
    assert plan_solver(20_000, 10, 10, memory_budget=16 * gib) == "cg_matrix_free"
    # float32 halves the bytes.
    assert plan_solver(1000, 10, 10, memory_budget=100_000_000, dtype="float32") == (
        "dense"
    )
    assert plan_solver(1000, 10, 10) in ("dense", "cg", "cg_matrix_free")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ridge": 0.0}, "ridge"),
        ({"ridge": -1.0}, "ridge"),
        ({"ridge": RIDGE, "tol": 0.0}, "tol"),
        ({"ridge": RIDGE, "tol": -1e-3}, "tol"),
        ({"ridge": RIDGE, "maxiter": 0}, "maxiter"),
        ({"ridge": RIDGE, "x0": np.zeros((5, 3))}, "x0"),
        ({"ridge": RIDGE, "preconditioner": "nystrom"}, "preconditioner"),
    ],
)
def test_cg_rejects_bad_arguments(kwargs, name):
    theta, y, omega = problem(n=20)
    with pytest.raises(ValueError, match=name):
        solve_cg(theta, y, omega, **kwargs)


def test_other_bad_arguments():
    theta, y, omega = problem(n=20)
    with pytest.raises(ValueError, match="ridge"):
        solve_dense(theta, y, omega, ridge=0)
    with pytest.raises(ValueError, match="rank"):
        nystrom_preconditioner(theta, omega, ridge=RIDGE, rank=0)
    with pytest.raises(ValueError, match="landmarks"):
        nystrom_preconditioner(theta, omega, ridge=RIDGE, landmarks="kmeans")
    with pytest.raises(ValueError, match="theta"):
        nystrom_preconditioner(None, omega, ridge=RIDGE)
    with pytest.raises(
        ValueError, match=r"^Y must be an \(n, d\) = \(20, d\) target matrix"
    ):
        solve_cg(theta, y[:5], omega, ridge=RIDGE)
    with pytest.raises(ValueError, match="omega"):
        solve_cg(theta, y, -omega, ridge=RIDGE)
    with pytest.raises(ValueError, match="memory_budget"):
        plan_solver(10, 2, 2, memory_budget=0)
    spec, x = MLP(depth=4), random_inputs(20, 3)
    with pytest.raises(ValueError, match="tol"):
        solve_cg_matrix_free(spec, x, y, omega, ridge=RIDGE, tol=0)
    with pytest.raises(ValueError, match="x0"):
        solve_cg_matrix_free(spec, x, y, omega, ridge=RIDGE, x0=np.zeros((2, 2)))
