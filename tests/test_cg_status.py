"""CG reports how it ended (converged, max_steps, breakdown) with its true residual;
preconditioners are pytrees applied inside ``jit``; the learner reads the status."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from test_solvers import problem

from nftk_jax import fit_mkl_kernels
from nftk_jax.kernels._operators import ArrayLayerOperator
from nftk_jax.linalg import (
    CG_STATUSES,
    CholeskyPreconditioner,
    NystromPreconditioner,
    cholesky_preconditioner,
    nystrom_preconditioner,
    solve_cg,
    worst_status,
)

from helpers import assert_close

RIDGE = 1e-2


def _true_residual(theta, y, omega, ridge, alpha):
    """``||y_c - (K_c + ridge I) alpha_c|| / ||y_c||`` in NumPy."""
    out = []
    for c in range(y.shape[1]):
        k = np.einsum("l,lij->ij", omega[c], theta) + ridge * np.eye(len(y))
        r = y[:, c] - k @ np.asarray(alpha)[:, c]
        out.append(np.linalg.norm(r) / np.linalg.norm(y[:, c]))
    return np.array(out)


def test_converged_reports_the_true_residual():
    theta, y, omega = problem()
    res = solve_cg(theta, y, omega, ridge=RIDGE, tol=1e-10)
    assert res.status == "converged"
    assert_close(res.residual, _true_residual(theta, y, omega, RIDGE, res.alpha),
                 rtol=1e-6, atol=1e-15)  # fmt: skip
    assert np.all(res.residual < 1e-9)


@pytest.mark.parametrize("operator", [False, True])
def test_max_steps(operator):
    theta, y, omega = problem(decay=0.05)
    th = ArrayLayerOperator(theta) if operator else theta
    res = solve_cg(th, y, omega, ridge=1e-6, tol=1e-12, maxiter=3)
    assert res.status == "max_steps" and res.iterations == 3
    true = _true_residual(theta, y, omega, 1e-6, res.alpha)
    assert_close(res.residual, true, rtol=1e-6)
    assert np.all(res.residual > 1e-12)


@pytest.mark.parametrize("operator", [False, True])
def test_breakdown_on_an_indefinite_system(operator):
    # A = diag(1, -1) + ridge correction: b^T A b = 0 for b = (1, 1), so the
    # very first step divides by p^T A p = 0.
    theta = np.diag([1.0, -1.0 - 2 * RIDGE])[None]
    y = np.ones((2, 1))
    th = ArrayLayerOperator(theta) if operator else theta
    with pytest.warns(RuntimeWarning, match="broke down"):
        res = solve_cg(th, y, np.ones((1, 1)), ridge=RIDGE, tol=1e-10, maxiter=20)
    assert res.status == "breakdown"
    assert_close(res.residual, _true_residual(theta, y, np.ones((1, 1)), RIDGE,
                                              res.alpha), rtol=1e-6)  # fmt: skip


def test_negative_definite_system_breaks_down_at_once():
    theta = -2.0 * np.eye(6)[None]
    y = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.warns(RuntimeWarning, match="broke down"):
        res = solve_cg(theta, y, np.ones((2, 1)), ridge=RIDGE, maxiter=10)
    assert res.status == "breakdown" and res.iterations == 1
    assert np.all(res.residual >= 1.0 - 1e-12)  # alpha stayed at zero


def test_long_runs_replace_the_residual_and_still_converge():
    # Unpreconditioned on an ill-conditioned problem: past 50 iterations the
    # recursive residual is replaced by the true one; the stopping test then
    # reads a residual the iterate really has.
    theta, y, omega = problem(decay=0.05)
    res = solve_cg(theta, y, omega, ridge=1e-4, tol=1e-9, maxiter=2000)
    assert res.iterations > 50 and res.status == "converged"
    true = _true_residual(theta, y, omega, 1e-4, res.alpha)
    assert_close(res.residual, true, rtol=1e-6)
    assert np.all(true < 1e-8)


def test_worst_status_orders_statuses():
    assert CG_STATUSES == ("converged", "max_steps", "breakdown")
    assert worst_status() == "converged"
    assert worst_status("converged", "breakdown", "max_steps") == "breakdown"
    assert worst_status("max_steps", "converged") == "max_steps"


def _preconditioners(theta, omega):
    return {
        "nystrom": nystrom_preconditioner(theta, omega, ridge=RIDGE, rank=20),
        "cholesky_inverted": cholesky_preconditioner(
            theta, omega, ridge=RIDGE, invert=True
        ),
        "cholesky_factor": cholesky_preconditioner(
            theta, omega, ridge=RIDGE, invert=False
        ),
    }


@pytest.mark.parametrize("kind", ["nystrom", "cholesky_inverted", "cholesky_factor"])
def test_preconditioner_apply_under_jit(kind):
    theta, y, omega = problem()
    pre = _preconditioners(theta, omega)[kind]
    assert isinstance(pre, NystromPreconditioner | CholeskyPreconditioner)
    leaves, treedef = jax.tree_util.tree_flatten(pre)
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(again) is type(pre)

    @jax.jit
    def apply(p, r):
        return p.apply(r)

    assert_close(apply(pre, y), pre.apply(y), rtol=1e-10)
    # A new ridge is a new leaf value, not a new trace.
    if kind == "nystrom":
        import dataclasses

        other = dataclasses.replace(pre, ridge=2 * RIDGE)
        assert_close(apply(other, y), other.apply(y), rtol=1e-10)


def test_learner_never_reports_converged_after_failed_solves():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    Y = np.eye(2)[y]
    noise = rng.normal(size=(20, 20))
    theta = np.stack([Y @ Y.T + np.eye(20), noise @ noise.T / 20])
    kw = dict(theta_val=theta, y_val=y, ridge=1e-3, solver="cg", steps=5)
    ok = fit_mkl_kernels(theta, y, **kw)
    assert ok.solver_status == "converged"
    with pytest.warns(RuntimeWarning, match="max_steps"):
        bad = fit_mkl_kernels(
            theta, y, preconditioner="none", cg_maxiter=1, cg_tol=1e-14, **kw
        )
    assert bad.solver_status == "max_steps" and not bad.converged
