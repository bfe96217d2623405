"""Learning Omega without cached kernels: layer operators give the cached result."""

from __future__ import annotations

import numpy as np
import pytest

from nftk_jax import MLP, fit_mkl, fit_mkl_kernels, layerwise_kernels
from nftk_jax.kernels._operators import (
    ArrayLayerOperator,
    DiskLayerOperator,
    StreamedLayerOperator,
)
from nftk_jax.linalg import cholesky_preconditioner, solve_cg, solve_dense

from helpers import assert_close

SPEC = MLP(depth=3, activation="relu")


def _data(n=60, m=5, d=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % d
    centres = rng.normal(size=(d, m))
    x = centres[y] + 0.8 * rng.normal(size=(n, m))
    return x, y


@pytest.fixture(scope="module")
def kernels():
    x, y = _data()
    fit, val = np.arange(40), np.arange(40, 60)
    theta = np.asarray(layerwise_kernels(SPEC, x[fit], devices=False))
    theta_val = np.asarray(layerwise_kernels(SPEC, x[val], x[fit], devices=False))
    return x, y, fit, val, theta, theta_val


@pytest.mark.parametrize("preconditioner", ["cholesky", "none"])
def test_operator_cg_matches_dense_solve(kernels, preconditioner):
    _, _, _, _, theta, _ = kernels
    rng = np.random.default_rng(1)
    omega, Y = rng.random((3, 3)), rng.normal(size=(40, 3))
    ref = solve_dense(theta, Y, omega, ridge=1e-3)
    op = StreamedLayerOperator(SPEC, _data()[0][:40], devices=False)
    pre = None
    if preconditioner == "cholesky":
        pre = cholesky_preconditioner(op, omega, ridge=1e-3)
        assert_close(
            pre.apply(np.eye(40)),
            cholesky_preconditioner(theta, omega, ridge=1e-3).apply(np.eye(40)),
            rtol=1e-8,
            atol=1e-10,
        )
    res = solve_cg(op, Y, omega, ridge=1e-3, tol=1e-11, preconditioner=pre)
    assert np.all(res.residual < 1e-10) and res.iterations > 0
    assert_close(res.alpha, ref.alpha, rtol=1e-6, atol=1e-8)


def _learn(theta, theta_val, y, fit, val, **kw):
    return fit_mkl_kernels(
        theta, y[fit], theta_val=theta_val, y_val=y[val], ridge=1e-2, steps=5,
        tol=1e-14, cg_tol=1e-12, n_classes=3, **kw,
    )  # fmt: skip


def test_learner_on_operators_follows_cached_kernels(kernels):
    x, y, fit, val, theta, theta_val = kernels
    dense = _learn(theta, theta_val, y, fit, val, solver="dense")
    arr = _learn(ArrayLayerOperator(theta), ArrayLayerOperator(theta_val), y, fit, val)
    streamed = _learn(
        StreamedLayerOperator(SPEC, x[fit], devices=False),
        StreamedLayerOperator(SPEC, x[val], x[fit], devices=False),
        y, fit, val,
    )  # fmt: skip
    for res in (arr, streamed):
        assert res.solver == "matrix_free"
        assert res.n_steps == dense.n_steps
        assert_close(res.omega, dense.omega, rtol=1e-6, atol=1e-8)
        assert_close(res.history.objective, dense.history.objective, rtol=1e-6)
        assert_close(res.alpha, dense.alpha, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("objective", ["train_mse", "krr_dual"])
def test_operator_objectives_match_cached(kernels, objective):
    _, y, fit, _, theta, _ = kernels
    kw = dict(ridge=1e-2, steps=3, tol=1e-14, cg_tol=1e-12, n_classes=3,
              objective=objective, constraint="simplex")  # fmt: skip
    dense = fit_mkl_kernels(theta, y[fit], solver="dense", **kw)
    op = fit_mkl_kernels(ArrayLayerOperator(theta), y[fit], **kw)
    assert_close(op.omega, dense.omega, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("storage", ["recompute", "disk"])
def test_fit_mkl_kernel_storage_matches_memory(tmp_path, storage):
    x, y = _data()
    kw = dict(ridge=1e-2, relative_ridge=True, steps=4, tol=1e-14, cg_tol=1e-12,
              dtype=np.float64)  # fmt: skip
    ref = fit_mkl(SPEC, x, y, solver="cg", **kw)
    kdir = tmp_path / "kernels"
    res = fit_mkl(SPEC, x, y, kernel_storage=storage, kernel_dir=kdir, **kw)
    assert res.solver == "matrix_free"
    tol = 1e-6 if storage == "recompute" else 1e-4  # disk stores float32 kernels
    assert_close(res.ridge, ref.ridge, rtol=tol / 100)
    assert_close(res.omega, ref.omega, rtol=tol, atol=tol)
    x_new = _data(seed=3)[0][:7]
    assert_close(res.predict(x_new), ref.predict(x_new), rtol=10 * tol, atol=tol)
    if storage == "disk":
        files = sorted(p.name for p in kdir.iterdir())
        assert "fit.bin" in files and "val.bin" in files and "train.bin" in files
        # A rerun reuses the stores instead of recomputing them.
        stamp = (kdir / "fit.bin").stat().st_mtime_ns
        again = fit_mkl(SPEC, x, y, kernel_storage=storage, kernel_dir=kdir, **kw)
        assert (kdir / "fit.bin").stat().st_mtime_ns == stamp
        assert_close(again.omega, res.omega, rtol=0, atol=0)


def test_matrix_free_checkpoint_resumes(tmp_path):
    x, y = _data()
    op = StreamedLayerOperator(SPEC, x[:40], devices=False)
    op_val = StreamedLayerOperator(SPEC, x[40:], x[:40], devices=False)
    kw = dict(theta_val=op_val, y_val=y[40:], ridge=1e-2, tol=1e-14,
              cg_tol=1e-12, n_classes=3)  # fmt: skip
    full = fit_mkl_kernels(op, y[:40], steps=4, **kw)
    ck = str(tmp_path / "ck.npz")
    fit_mkl_kernels(op, y[:40], steps=2, checkpoint=ck, **kw)
    resumed = fit_mkl_kernels(op, y[:40], steps=4, checkpoint=ck, **kw)
    assert_close(resumed.omega, full.omega, rtol=0, atol=0)


def test_matrix_free_bad_inputs(kernels, tmp_path):
    x, y, fit, val, theta, theta_val = kernels
    op = ArrayLayerOperator(theta)
    with pytest.raises(ValueError, match="solver"):
        _learn(op, ArrayLayerOperator(theta_val), y, fit, val, solver="dense")
    with pytest.raises(ValueError, match="matrix_free"):
        _learn(theta, theta_val, y, fit, val, solver="matrix_free")
    with pytest.raises(ValueError, match="theta_val"):
        _learn(op, theta_val, y, fit, val)
    with pytest.raises(ValueError, match="compute_cond"):
        _learn(op, ArrayLayerOperator(theta_val), y, fit, val, compute_cond=True)
    with pytest.raises(ValueError, match="kernel_storage"):
        fit_mkl(SPEC, x, y, ridge=1e-2, kernel_storage="ssd")
    with pytest.raises(ValueError, match="kernel_dir"):
        fit_mkl(SPEC, x, y, ridge=1e-2, kernel_storage="disk")
    assert DiskLayerOperator is not None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_operator_preconditioner_factorises_in_place(kernels, dtype):
    _, _, _, _, theta, _ = kernels
    omega = np.random.default_rng(2).random((3, 3))
    op = ArrayLayerOperator(theta)
    pre = cholesky_preconditioner(op, omega, ridge=1e-3, invert=False, dtype=dtype)
    assert not pre.inverted and pre.factor.dtype == dtype and pre.jitter == 0.0
    kbar = np.einsum("l,lij->ij", omega.mean(axis=0), theta) + 1e-3 * np.eye(40)
    r = np.random.default_rng(3).normal(size=(40, 2))
    tol = 1e-8 if dtype == np.float64 else 1e-2
    assert_close(pre.apply(r), np.linalg.solve(kbar, r), rtol=tol, atol=tol)


def test_operator_preconditioner_jitter_on_singular_kernel():
    rng = np.random.default_rng(4)
    low = rng.normal(size=(30, 3))
    theta = np.stack([low @ low.T, 2 * low @ low.T])  # rank 3, 30 x 30
    with pytest.warns(RuntimeWarning, match="jitter"):
        pre = cholesky_preconditioner(
            ArrayLayerOperator(theta), np.ones((1, 2)), ridge=1e-300, invert=False
        )
    assert pre.jitter > 0 and np.all(np.isfinite(np.asarray(pre.factor)))
