"""The memory estimate of ``nftk fit`` against measured peaks; the guard using it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nftk_jax.experiment._memory import BASE_BYTES, fit_peak_bytes, fit_stage_floats


def test_guard_uses_the_estimate(monkeypatch):
    import nftk_jax.linalg as solvers
    from nftk_jax.experiment._run_fit import _check_memory

    monkeypatch.setattr(solvers, "default_memory_budget", lambda: 2**30)  # 2 GiB RAM
    need = fit_peak_bytes(3000, 500, 10, 10)
    with pytest.raises(ValueError) as info:
        _check_memory(3000, 500, 10, 10, None)
    assert str(info.value) == (
        f"n_train=3000 with 10 layers needs about {need / 2**30:.1f} GiB at its peak "
        "(cached kernels, their copies and the per-class solves), more than this "
        "machine's 2.0 GiB; lower n_train (--n-train)."
    )
    _check_memory(300, 100, 10, 10, None)  # 0.34 GiB: fits


def test_stage_model_counts_every_array():
    """Dense solves (fit split <= 2000): the Omega stage holds the training kernels
    (L n^2, which JAX takes without a copy) and the larger of learning (float64
    fit and validation blocks, then per class a kernel, its shifted copy and its
    factor) and the refit on all n inputs; the test kernels (L n m) come after."""
    n, m, L, d = 100, 30, 4, 3
    nf = 0.8 * n
    s = fit_stage_floats(n, m, L, d)
    learn = 0.8 * L * n * n + 3 * d * nf * nf
    assert s["omega"] == pytest.approx(L * n * n + max(learn, 3 * d * n * n))
    assert s["baselines"] == L * n * n + L * n * m + 6 * n * n
    assert s["evaluation"] == L * n * m
    assert fit_peak_bytes(n, m, L, d, dtype=np.float32) < fit_peak_bytes(n, m, L, d)


def test_stage_model_counts_the_learners_float64_arrays_of_float32_kernels():
    """With float32 kernels and x64 enabled the learner's blocks and solves are
    still float64: each counts as two floats of the kernel dtype; the kernels and
    the refit stay float32."""
    n, m, L, d = 3000, 500, 10, 10  # CG: fit split of 2400
    nf = 0.8 * n
    s64 = fit_stage_floats(n, m, L, d)
    s32 = fit_stage_floats(n, m, L, d, itemsize=4)
    learn64 = 0.8 * L * n * n + 3 * nf * nf
    assert s64["omega"] == pytest.approx(L * n * n + learn64)
    assert s32["omega"] == pytest.approx(L * n * n + 2 * learn64)
    for stage in ("baselines", "evaluation"):
        assert s32[stage] == s64[stage]
    omega_bytes = {4: 4 * s32["omega"], 8: 8 * s64["omega"]}
    assert omega_bytes[4] == pytest.approx(4 * L * n * n + 8 * learn64)
    assert fit_peak_bytes(n, m, L, d, dtype=np.float32) == int(
        BASE_BYTES + 4 * max(s32.values())
    )
    # `nftk fit --float32` runs without x64: the learner computes in float32 too
    x32 = fit_stage_floats(n, m, L, d, itemsize=4, learner_itemsize=4)
    assert x32["omega"] == pytest.approx(s64["omega"])
    assert fit_peak_bytes(
        n, m, L, d, dtype=np.float32, learner_dtype=np.float32
    ) == int(BASE_BYTES + 4 * max(x32.values()))


def test_stage_model_follows_the_learners_solver():
    """Past a fit split of 2000 the learner and the refit use CG with one shared
    preconditioner instead of per-class factors."""
    n, m, L, d = 2600, 650, 10, 10
    nf = 0.8 * n
    s = fit_stage_floats(n, m, L, d)
    assert s["omega"] == pytest.approx(L * n * n + 0.8 * L * n * n + 3 * nf * nf)
    dense = fit_stage_floats(2500, m, L, d)  # fit split of 2000: dense
    assert dense["omega"] == L * 2500**2 + 3 * d * 2500**2  # the refit dominates


def test_array_kernels_give_the_learner_blocks_it_takes_without_a_copy():
    """Float32 kernels are converted while their blocks are copied out (to
    float64 with x64 enabled), so the learner's check does not copy them again."""
    import jax

    from nftk_jax.mkl import array_kernels
    from nftk_jax.mkl._problem import _check_theta

    theta = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5)
    rows, cols = np.array([4, 1, 2]), np.array([0, 2, 3])
    for x64, dtype in ((True, np.float64), (False, np.float32)):
        with jax.enable_x64(x64):
            block = array_kernels(theta)("fit", rows, cols)
            assert block.dtype == dtype
            assert _check_theta(block) is block
    assert np.array_equal(block, theta[:, rows][:, :, cols])
    assert array_kernels(theta)("all", None, None) is theta


def _env() -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"
    return env


@pytest.mark.slow
@pytest.mark.parametrize(
    "n", [1600, 2600], ids=["dense-fit-split-1280", "cg-fit-split-2080"]
)
def test_estimate_within_20_percent_of_the_measured_peak(n, tmp_path):
    """Peak resident memory of a real ``nftk fit`` (VmHWM, recorded after every
    stage in metrics.json) against :func:`fit_peak_bytes`, on each solver path.

    Three steps, as benchmarks/RESULTS.md measured."""
    argv = ["fit", "--n-train", str(n), "--n-test", str(n // 4), "--steps", "3"]
    argv += ["--no-progress", "--out", str(tmp_path), "--name", "m"]
    proc = subprocess.run(
        [sys.executable, "-m", "nftk_jax.cli", *argv],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    measured = max(metrics["peak_rss_gib"].values())
    estimate = fit_peak_bytes(n, n // 4, 10, 10) / 2**30
    assert abs(estimate - measured) <= 0.2 * measured, (estimate, measured)


def test_peak_rss_is_the_runs_own_not_its_parents():
    """A run started by a large process must not report the parent's peak
    (``ru_maxrss`` is kept across ``exec``; the test suite's workers grow to GiBs)."""
    parent = (
        "import subprocess, sys\n"
        "import numpy as np\n"
        "big = np.ones(2**27)  # 1 GiB, touched\n"
        "code = 'from nftk_jax.experiment._fit_stages import peak_rss_gib; "
        "print(peak_rss_gib())'\n"
        "out = subprocess.run([sys.executable, '-c', code], capture_output=True,"
        " text=True, check=True)\n"
        "print(out.stdout.strip(), big[-1])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", parent], env=_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    child_peak = float(proc.stdout.split()[0])
    assert child_peak < 0.9, child_peak  # the child alone: imports only
