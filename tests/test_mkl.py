import warnings

import numpy as np
import optax
import pytest
from mkl_cases import synthetic_problem
from sklearn.kernel_ridge import KernelRidge

from nftk_jax import NFTKResult, fit_mkl_kernels
from nftk_jax.linalg._krr import encode_targets
from nftk_jax.mkl import MKLHistory

from helpers import assert_close

RIDGE = 0.1


@pytest.fixture(scope="module")
def problem():
    return synthetic_problem(n=48, m=24, d=3, seed=0)


def _fit(problem, **kw):
    theta, theta_val, y, y_val = problem
    kw.setdefault("ridge", RIDGE)
    return fit_mkl_kernels(theta, y, theta_val=theta_val, y_val=y_val, **kw)


def test_result_fields_and_shapes(problem):
    res = _fit(problem, steps=5)
    assert isinstance(res, NFTKResult) and isinstance(res.history, MKLHistory)
    T = res.n_steps + 1
    assert res.omega.shape == (3, 3) and res.alpha.shape == (48, 3)
    assert res.history.omega.shape == (T, 3, 3)
    for name in ("objective", "grad_norm", "sparsity", "step_size", "time"):
        assert getattr(res.history, name).shape == (T,)
    assert res.objective == "val_mse" and res.constraint == "simplex"
    assert res.is_classification and res.cond.shape == (3,)
    assert np.all(np.diff(res.history.time) >= 0)
    assert res.ridge == RIDGE


@pytest.mark.parametrize("objective", ["val_mse", "train_mse", "krr_dual"])
def test_predictions_equal_sklearn_kernel_ridge(problem, objective):
    theta, theta_val, y, _ = problem
    res = _fit(problem, objective=objective, steps=6, compute_cond=True)
    Y, _ = encode_targets(y, len(y))
    scores = res.predict_kernels(theta_val)
    for c in range(3):
        k = np.tensordot(res.omega[c], theta, axes=1)
        kv = np.tensordot(res.omega[c], theta_val, axes=1)
        ref = KernelRidge(alpha=RIDGE, kernel="precomputed").fit(k, Y[:, c])
        assert_close(scores[:, c], ref.predict(kv), rtol=1e-8, atol=1e-10)
        ev = np.linalg.eigvalsh(k)
        assert_close(res.cond[c], (ev[-1] + RIDGE) / (ev[0] + RIDGE), rtol=1e-8)
    assert_close(res.predict_labels_kernels(theta_val), np.argmax(scores, axis=1))


@pytest.mark.parametrize(
    "objective, constraint",
    [("val_mse", "simplex"), ("train_mse", "l1_ball"), ("krr_dual", "box")],
)
def test_armijo_objective_non_increasing(problem, objective, constraint):
    res = _fit(problem, objective=objective, constraint=constraint, steps=25)
    obj = res.history.objective
    assert np.all(np.diff(obj) <= 1e-15 * np.abs(obj[:-1]))
    assert obj[-1] < obj[0]
    assert np.all(res.history.step_size[1:] > 0)


def test_simplex_val_mse_zeroes_the_noise_layer(problem):
    res = _fit(problem, objective="val_mse", constraint="simplex", steps=200)
    assert res.converged
    assert np.all(res.omega[:, 2] == 0.0)  # the pure-noise kernel: exactly zero
    assert_close(res.omega.sum(1), np.ones(3))
    assert res.history.sparsity[-1] >= 1 / 3
    assert res.history.sparsity[0] == 0.0


def test_feasible_along_trajectory(problem):
    res = _fit(problem, constraint="box", lower=0.05, radius=0.8, steps=10)
    traj = res.history.omega
    assert np.all(traj >= 0.05 - 1e-15) and np.all(traj <= 0.8 + 1e-15)


def test_fixed_learning_rate_and_optax(problem):
    res = _fit(problem, learning_rate=0.5, steps=5)
    assert res.n_steps == 5 and np.all(res.history.step_size[1:] == 0.5)
    res = _fit(problem, optimizer=optax.adam(0.05), steps=30)
    assert res.history.objective[-1] < res.history.objective[0]
    assert_close(res.omega.sum(1), np.ones(3))


def test_regression_targets(problem):
    theta, theta_val, y, y_val = problem
    Y = np.stack([np.sin(y), np.cos(y)], 1).astype(float)
    Yv = np.stack([np.sin(y_val), np.cos(y_val)], 1).astype(float)
    res = fit_mkl_kernels(theta, Y, theta_val=theta_val, y_val=Yv, ridge=RIDGE, steps=5)
    assert not res.is_classification and res.omega.shape == (2, 3)
    with pytest.raises(ValueError, match="classification"):
        res.predict_labels_kernels(theta_val)


def test_stopping_rules(problem):
    res = _fit(problem, objective="krr_dual", steps=500, tol=1e-3)
    assert res.converged and res.stop_reason in ("rel_change", "grad_norm")
    res = _fit(problem, steps=2, tol=1e-14)
    assert not res.converged and res.stop_reason == "steps" and res.n_steps == 2


def test_callback_can_stop(problem):
    seen = []

    def cb(info):
        seen.append(info.step)
        return info.step == 3

    res = _fit(problem, steps=50, tol=1e-14, callback=cb)
    assert seen == [1, 2, 3] and res.n_steps == 3 and res.stop_reason == "callback"


def test_nonneg_scale_warning(problem):
    with pytest.warns(UserWarning, match="constraint='simplex'"):
        _fit(problem, objective="krr_dual", constraint="nonneg", steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(problem, objective="val_mse", constraint="nonneg", steps=2)


def test_predict_without_spec_is_a_clear_error(problem):
    res = _fit(problem, steps=1)
    with pytest.raises(ValueError, match="predict_kernels"):
        res.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="theta_cross"):
        res.predict_kernels(np.zeros((3, 5, 7)))


def _bad_cases():
    theta, theta_val, y, y_val = synthetic_problem(n=48, m=24, d=3, seed=0)
    nan_theta = theta.copy()
    nan_theta[0, 0, 0] = np.nan
    yf = y.astype(float)
    yf[0] = 0.5
    return [
        ({"y": y + 5, "n_classes": 3}, r"^y labels must lie in \[0, 3\)"),
        ({"y": yf}, r"^y is 1-D with non-integer values"),
        ({"y": y[:-1]}, r"^y must have one entry per example"),
        ({"theta": nan_theta}, "theta"),
        ({"y": np.where(y == 0, np.nan, 1.0)[:, None]}, r"^y contains NaN or inf"),
        ({"ridge": 0.0}, "ridge"),
        ({"ridge": -1.0}, "ridge"),
        ({"omega_init": -np.ones((3, 3))}, "omega_init"),
        ({"omega_init": np.ones((2, 3))}, "omega_init"),
        ({"omega_init": np.array([[1.0, 0, 0], [0, 0, 0], [1, 1, 1]])}, "omega_init"),
        ({"objective": "mse"}, "objective"),
        ({"constraint": "positive"}, "constraint"),
        ({"theta": theta[:, :, :40]}, "theta"),
        ({"theta": theta[0]}, "theta"),
        ({"theta_val": theta_val[:, :, :40]}, "theta_val"),
        ({"theta_val": None}, "theta_val"),
        ({"y_val": y_val[:-2]}, "y_val"),
        ({"steps": 0}, "steps"),
        ({"tol": 0.0}, "tol"),
        ({"tol": -1.0}, "tol"),
        ({"solver": "qr"}, "solver"),
        ({"preconditioner": "ilu", "solver": "cg"}, "preconditioner"),
        ({"learning_rate": 0.1, "optimizer": optax.sgd(0.1)}, "learning_rate"),
    ]


@pytest.mark.parametrize("bad, match", _bad_cases())
def test_bad_inputs(problem, bad, match):
    theta, theta_val, y, y_val = problem
    kw = dict(theta=theta, y=y, theta_val=theta_val, y_val=y_val, ridge=RIDGE, steps=2)
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        fit_mkl_kernels(kw.pop("theta"), kw.pop("y"), **kw)


@pytest.mark.parametrize("preconditioner", ["cholesky", "nystrom", "none"])
def test_cg_solver_follows_the_dense_path(problem, preconditioner):
    dense = _fit(problem, steps=6, tol=1e-14, solver="dense")
    cg = _fit(
        problem,
        steps=6,
        tol=1e-14,
        solver="cg",
        cg_tol=1e-12,
        preconditioner=preconditioner,
    )
    assert dense.solver == "dense" and cg.solver == "cg"
    assert cg.n_evaluations >= cg.n_steps + 1
    assert_close(cg.omega, dense.omega, rtol=1e-6, atol=1e-8)
    assert_close(cg.history.objective, dense.history.objective, rtol=1e-6)
