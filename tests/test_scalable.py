"""Nystrom KRR for fixed Omega, the full-scale planner and the resumable staged run."""

from __future__ import annotations

import numpy as np
import pytest

from nftk_jax import MLP, layerwise_kernels
from nftk_jax.data import Dataset
from nftk_jax.experiment._plan import free_memory_bytes, plan_scalable
from nftk_jax.experiment._run_scalable import run_scalable_fit
from nftk_jax.linalg._nystrom_krr import (
    accumulate_normal_equations,
    nystrom_predict,
    solve_normal_equations,
)

from helpers import assert_close

SPEC = MLP(depth=3)
WEIGHTS = np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])


def _problem(n=30, n_test=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    xt = rng.normal(size=(n_test, 4))
    y = np.eye(3)[rng.integers(0, 3, n)] - 1 / 3
    k = np.asarray(layerwise_kernels(SPEC, np.concatenate([x, xt]), dtype=np.float64))
    scale = np.diagonal(k[:, :n, :n], axis1=1, axis2=2).mean(axis=1)
    return x, xt, y, k / scale[:, None, None], scale


def test_normal_equations_match_numpy_subset_of_regressors():
    x, xt, y, k, scale = _problem()
    n, m, ridge = len(x), 11, 1e-2
    z = x[:m]
    eq = accumulate_normal_equations(
        SPEC, x, y, z, WEIGHTS, scale=scale, chunk_rows=8, dtype=np.float64
    )
    assert eq.rows_done == n
    alpha, jitter = solve_normal_equations(eq, k[:, :m, :m], WEIGHTS, ridge=ridge)
    scores = nystrom_predict(
        SPEC, xt, z, WEIGHTS, alpha, scale=scale, chunk_rows=4, dtype=np.float64
    )
    for g, w in enumerate(WEIGHTS):
        kc = np.tensordot(w, k, axes=1)  # (n + n_test, n + n_test)
        knm, kmm = kc[:n, :m], kc[:m, :m]
        assert_close(np.tril(eq.gram[g]), np.tril(knm.T @ knm), rtol=1e-7, atol=1e-9)
        assert_close(eq.rhs[g], knm.T @ y, rtol=1e-7, atol=1e-9)
        # Subset of regressors: minimise ||y - K_nm a||^2 + ridge a^T K_mm a.
        root = np.linalg.cholesky(kmm + 1e-13 * np.eye(m))
        stacked = np.vstack([knm, np.sqrt(ridge) * root.T])
        target = np.vstack([y, np.zeros((m, 3))])
        expected = np.linalg.lstsq(stacked, target, rcond=None)[0]
        assert_close(kc[n:, :m] @ alpha[g], kc[n:, :m] @ expected, rtol=1e-6)
        assert_close(scores[g], kc[n:, :m] @ alpha[g], rtol=1e-9, atol=1e-11)
    assert np.all(jitter == 0)


def test_all_landmarks_is_exact_krr():
    x, xt, y, k, scale = _problem()
    n, ridge = len(x), 1e-2
    eq = accumulate_normal_equations(
        SPEC, x, y, x, WEIGHTS, scale=scale, chunk_rows=16, dtype=np.float64
    )
    alpha, _ = solve_normal_equations(eq, k[:, :n, :n], WEIGHTS, ridge=ridge)
    for g, w in enumerate(WEIGHTS):
        kc = np.tensordot(w, k, axes=1)
        exact = np.linalg.solve(kc[:n, :n] + ridge * np.eye(n), y)
        assert_close(kc[n:, :n] @ alpha[g], kc[n:, :n] @ exact, rtol=1e-6, atol=1e-8)


def test_planner_sizes_and_errors(tmp_path):
    big = plan_scalable(
        60000, 10000, 784, 10, 10, out_dir=tmp_path, memory_budget=8 * 2**30,
        time_budget_s=None,
    )  # fmt: skip
    assert big.memory_bytes <= 8 * 2**30 and big.landmarks % 250 == 0
    more = plan_scalable(
        60000, 10000, 784, 10, 10, out_dir=tmp_path, memory_budget=16 * 2**30,
        time_budget_s=None,
    )  # fmt: skip
    assert more.landmarks > big.landmarks
    quick = plan_scalable(
        60000, 10000, 784, 10, 10, out_dir=tmp_path, memory_budget=16 * 2**30,
        time_budget_s=600, kernel_rate=5e7, flop_rate=2e10,
    )  # fmt: skip
    assert quick.expected_s <= 600 and quick.landmarks < more.landmarks
    assert "m=" in quick.line() and "GiB" in quick.line()
    with pytest.raises(ValueError, match="lower --landmarks") as info:
        plan_scalable(
            60000, 10000, 784, 10, 10, out_dir=tmp_path, landmarks=20000,
            memory_budget=8 * 2**30,
        )  # fmt: skip
    assert "8.0 GiB of memory" in str(info.value)
    with pytest.raises(ValueError, match="needs about"):
        plan_scalable(60000, 10000, 784, 10, 10, out_dir=tmp_path, memory_budget=1)
    assert free_memory_bytes() > 0


def _toy_dataset(n=48, n_test=40):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 5))
    y = np.arange(n + n_test) % 3
    x = (centres[y] + 0.8 * rng.normal(size=(n + n_test, 5))).astype(np.float32)
    return Dataset(x[:n], y[:n], x[n:], y[n:], ("a", "b", "c"), "toy")


class _Kill(Exception):
    pass


def _killer(event_name: str, occurrence: int = 1):
    seen = {"n": 0}

    def callback(event):
        if event == event_name:
            seen["n"] += 1
            if seen["n"] == occurrence:
                raise _Kill(event)

    return callback


@pytest.mark.slow
def test_staged_run_resumes_to_the_same_result(tmp_path):
    ds = _toy_dataset()
    kw = dict(
        landmarks=24, steps=5, chunk_rows=16, checkpoint_seconds=0.0,
        progress=False, log=lambda line: None,
    )  # fmt: skip
    ref = run_scalable_fit(SPEC, ds, tmp_path / "ref", **kw)
    ref_scores = np.load(tmp_path / "ref" / "stage_predict.npz")["scores"]
    assert set(ref["stages"].values()) == {"computed"}
    # Kill between stages and inside the chunked stages, then resume each time.
    run = tmp_path / "run"
    for event, k in (
        ("omega", 1),
        ("normal_chunk", 2),
        ("solve", 1),
        ("predict_chunk", 1),
    ):
        with pytest.raises(_Kill):
            run_scalable_fit(SPEC, ds, run, callback=_killer(event, k), **kw)
    final = run_scalable_fit(SPEC, ds, run, **kw)
    assert final["stages"] == {
        "kernels": "resumed",
        "omega": "resumed",
        "normal": "resumed",
        "solve": "resumed",
        "predict": "continued from row 16",
    }
    assert final["accuracy"] == ref["accuracy"]
    assert_close(np.load(run / "stage_predict.npz")["scores"], ref_scores, rtol=1e-12)
    # A run killed inside the normal equations continues from its last chunk.
    part = tmp_path / "part"
    with pytest.raises(_Kill):
        run_scalable_fit(SPEC, ds, part, callback=_killer("normal_chunk", 2), **kw)
    resumed = run_scalable_fit(SPEC, ds, part, **kw)
    assert resumed["stages"]["kernels"] == "resumed"
    assert resumed["stages"]["omega"] == "resumed"
    assert resumed["stages"]["normal"] == "continued from row 32"
    assert resumed["accuracy"] == ref["accuracy"]
    assert_close(np.load(part / "stage_predict.npz")["scores"], ref_scores, rtol=1e-12)
    # Accuracies agree with the stored scores and Omega.
    assert 0.0 <= ref["accuracy"]["learned_omega"] <= 1.0
    assert np.load(tmp_path / "ref" / "omega.npy").shape == (3, 3)


def test_exact_stage_matches_dense_theorem_1_and_resumes_mid_cg(tmp_path):
    """The exact stage's scores equal a dense Cholesky solve of the learned-Omega
    systems on all training rows; a run killed after two CG iterations continues
    from its checkpoint to the same scores, reusing the Nystrom stages."""
    import scipy.linalg

    from nftk_jax.experiment import ExactOptions
    from nftk_jax.linalg import encode_targets

    ds = _toy_dataset()
    exact = ExactOptions(rank=10, tol=1e-10, maxiter=200)
    kw = dict(landmarks=24, steps=3, chunk_rows=16, progress=False,
              log=lambda line: None, exact=exact)  # fmt: skip
    ref = run_scalable_fit(SPEC, ds, tmp_path / "ref", **kw)
    scores = np.load(tmp_path / "ref" / "stage_exact.npz")["scores"]
    # Dense reference: float64 kernels, one Cholesky per class.
    raw = np.load(tmp_path / "ref" / "omega_raw.npy")
    x = np.asarray(ds.x_train, np.float64)
    k = np.asarray(layerwise_kernels(SPEC, np.concatenate([x, ds.x_test])))
    n = len(x)
    y, _ = encode_targets(ds.y_train, n, n_classes=3)
    expected = np.empty_like(scores)
    for c in range(3):
        kc = np.tensordot(raw[c], k, axes=1)
        a = scipy.linalg.solve(kc[:n, :n] + ref["ridge"] * np.eye(n), y[:, c])
        expected[:, c] = kc[n:, :n] @ a
    assert_close(scores, expected, rtol=1e-5, atol=1e-5)  # float32 kernel tiles
    hits = np.argmax(expected, axis=1) == ds.y_test
    assert ref["exact"]["learned_omega"] == pytest.approx(np.mean(hits))
    assert ref["exact"]["cg_residual"] <= 1e-10
    # Killed mid-CG, then resumed: the Nystrom stages are reused, CG continues.
    run = tmp_path / "run"
    with pytest.raises(_Kill):
        run_scalable_fit(SPEC, ds, run, callback=_killer("exact_iteration", 2), **kw)
    assert (run / "stage_exact_cg.npz").exists()
    final = run_scalable_fit(SPEC, ds, run, **kw)
    assert final["stages"]["predict"] == "resumed"
    assert final["stages"]["exact"] == "continued from CG iteration 2"
    assert final["exact"]["cg_iterations"] == ref["exact"]["cg_iterations"]
    assert_close(np.load(run / "stage_exact.npz")["scores"], scores, rtol=1e-9)
    # A tighter tol continues the finished iteration; the preconditioner's options
    # are another problem, named in the error.
    tighter = run_scalable_fit(
        SPEC, ds, run, **{**kw, "exact": exact._replace(tol=1e-12)}
    )
    k = ref["exact"]["cg_iterations"]
    assert tighter["stages"]["exact"] == f"continued from CG iteration {k}"
    assert tighter["exact"]["cg_iterations"] >= k
    assert tighter["exact"]["cg_residual"] <= 1e-12
    from nftk_jax.core import CheckpointError

    with pytest.raises(CheckpointError, match="rank"):
        run_scalable_fit(SPEC, ds, run, **{**kw, "exact": exact._replace(rank=9)})


def test_exact_only_skips_nystrom_and_matches_with_either_preconditioner(tmp_path):
    """``nystrom=False`` goes from Omega to the exact stage (no Nystrom stage file);
    its scores, with the shared or the per-class preconditioner, equal those of a
    full run; switching the preconditioner is another CG problem, named."""
    from nftk_jax.core import CheckpointError
    from nftk_jax.experiment import ExactOptions

    ds = _toy_dataset()
    exact = ExactOptions(rank=10, tol=1e-10, maxiter=200)
    kw = dict(landmarks=24, steps=3, chunk_rows=16, progress=False,
              log=lambda line: None)  # fmt: skip
    ref = run_scalable_fit(SPEC, ds, tmp_path / "ref", exact=exact, **kw)
    want = np.load(tmp_path / "ref" / "stage_exact.npz")["scores"]
    for per_class in (True, False):
        run = tmp_path / f"only_{per_class}"
        opts = exact._replace(per_class=per_class)
        lines = []
        got = run_scalable_fit(SPEC, ds, run, exact=opts, nystrom=False,
                               **{**kw, "log": lines.append})  # fmt: skip
        plan = [line for line in lines if line.startswith("exact stage: at most")]
        assert len(plan) == 1 and plan[0].endswith("Nystrom stages skipped"), lines
        assert not (run / "stage_normal.npz").exists()
        assert set(got["accuracy"]) == {"selected_depth"}
        assert got["accuracy"]["selected_depth"] == ref["accuracy"]["selected_depth"]
        assert got["exact"]["cg_residual"] <= 1e-10
        assert_close(np.load(run / "stage_exact.npz")["scores"], want, rtol=1e-6,
                     atol=1e-7)  # fmt: skip
    with pytest.raises(CheckpointError, match="per_class"):
        run_scalable_fit(SPEC, ds, tmp_path / "only_True", nystrom=False, **kw,
                         exact=exact._replace(per_class=False, tol=1e-11))  # fmt: skip
    with pytest.raises(ValueError, match="exact"):
        run_scalable_fit(SPEC, ds, tmp_path / "none", nystrom=False, **kw)
