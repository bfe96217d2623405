"""Regression tests for defects of the Omega learner and the ``nftk fit`` job."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from mkl_cases import synthetic_problem

import nftk_jax
from nftk_jax import MLP, fit_mkl_kernels, linalg
from nftk_jax.core import NFTKInputError
from nftk_jax.data import load_digits
from nftk_jax.experiment import _run_fit

from helpers import assert_close


@pytest.fixture(scope="module")
def problem():
    return synthetic_problem(n=40, m=20, d=3, seed=5)


def test_nystrom_needs_a_positive_rank(problem):
    """``precondition_rank=0`` used to run CG silently without a preconditioner."""
    theta, theta_val, y, y_val = problem
    with pytest.raises(NFTKInputError, match=r"^precondition_rank must be >= 1"):
        fit_mkl_kernels(
            theta,
            y,
            theta_val=theta_val,
            y_val=y_val,
            ridge=0.1,
            solver="cg",
            preconditioner="nystrom",
            precondition_rank=0,
        )


@pytest.mark.slow
def test_missing_solvers_module_is_not_swallowed(tmp_path):
    """If the solvers cannot be imported, ``solver='auto'`` fails loudly instead of
    silently planning a dense solve."""
    script = textwrap.dedent(
        """
        import sys
        from importlib.abc import MetaPathFinder

        class Block(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "nftk_jax.linalg._solvers":
                    raise ImportError("blocked for the test")
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        try:
            from nftk_jax import fit_mkl_kernels
            y = np.arange(12) % 2
            theta = np.stack([np.eye(12), np.ones((12, 12)) + np.eye(12)])
            fit_mkl_kernels(theta, y, ridge=0.1, objective="train_mse", steps=1)
        except ImportError as e:
            print("ImportError:", e)
            sys.exit(3)
        print("ran without the solvers")
        """
    )
    path = tmp_path / "blocked.py"
    path.write_text(script)
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 3, out.stdout + out.stderr
    assert "blocked for the test" in out.stdout


def test_synthetic_problem_returns_what_its_docstring_lists():
    listed = re.findall(r"``(\w+) \(", inspect.getdoc(synthetic_problem))
    assert listed == ["theta", "theta_val", "y", "y_val"]
    assert len(synthetic_problem(n=6, m=3, d=2)) == len(listed)


def _digits_subset(n_train: int, n_test: int):
    ds = load_digits(seed=0)
    return ds._replace(
        x_train=ds.x_train[:n_train],
        y_train=ds.y_train[:n_train],
        x_test=ds.x_test[:n_test],
        y_test=ds.y_test[:n_test],
    )


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["cg", "dense"])
def test_run_fit_refit_uses_the_requested_solver(solver, monkeypatch, tmp_path):
    """The final refit on all training inputs honours ``solver``: with 'cg' it
    solves the full system by CG, with 'dense' CG is never called."""
    ds = _digits_subset(120, 40)
    full_cg = []
    real = linalg.solve_cg

    def spy(theta, y, *args, **kwargs):
        if np.shape(y)[0] == len(ds.x_train):
            full_cg.append(np.shape(theta))
        return real(theta, y, *args, **kwargs)

    monkeypatch.setattr(linalg, "solve_cg", spy)
    metrics = _run_fit.run_fit(
        MLP(depth=3),
        ds,
        tmp_path / "run",
        steps=3,
        solver=solver,
        progress=False,
        log=lambda line: None,
    )
    assert (len(full_cg) > 0) == (solver == "cg"), full_cg
    omega = np.load(tmp_path / "run" / "omega.npy")
    # The accuracy reported for the learned Omega is that of KRR on all training
    # inputs at this Omega (numpy reference with the run's ridge and scaling).
    k = nftk_jax.layerwise_kernels(MLP(depth=3), ds.x_train)
    kt = nftk_jax.layerwise_kernels(MLP(depth=3), ds.x_test, ds.x_train)
    scale = np.asarray(metrics["kernel_scale"])
    k, kt = np.asarray(k) / scale[:, None, None], np.asarray(kt) / scale[:, None, None]
    y = np.eye(10)[ds.y_train] - 0.1
    scores = np.stack(
        [
            np.einsum("l,lij->ij", omega[c], kt)
            @ np.linalg.solve(
                np.einsum("l,lij->ij", omega[c], k)
                + metrics["ridge"]["value"] * np.eye(len(k[0])),
                y[:, c],
            )
            for c in range(10)
        ],
        axis=1,
    )
    acc = float(np.mean(np.argmax(scores, axis=1) == ds.y_test))
    assert_close(metrics["accuracy"]["learned_omega"], acc)


def _fit(problem, **kw):
    theta, theta_val, y, y_val = problem
    return fit_mkl_kernels(theta, y, theta_val=theta_val, y_val=y_val, ridge=0.1, **kw)


def test_line_search_failure_is_not_convergence(problem):
    """One Armijo trial per step: the doubled trial step soon overshoots and the
    search fails; that is reported as such, never as ``converged=True``."""
    res = _fit(problem, max_backtracks=1, steps=200, tol=1e-15)
    assert res.stop_reason == "line_search"
    assert res.converged is False
    assert res.n_steps < 200


def test_objective_and_gradient_tolerances_are_separate(problem):
    by_grad = _fit(problem, steps=200, tol=1e-15, grad_tol=1.0)
    assert (by_grad.stop_reason, by_grad.n_steps) == ("grad_norm", 0)
    assert by_grad.history.grad_norm[0] < 1.0
    by_change = _fit(problem, steps=200, tol=1e-2, grad_tol=1e-15)
    assert by_change.stop_reason == "rel_change" and by_change.converged
    assert by_change.history.grad_norm[-1] > 1e-15
    obj = by_change.history.objective
    assert abs(obj[-1] - obj[-2]) / abs(obj[-2]) < 1e-2
