"""The memory estimate of ``nftk fit`` against measured peaks; the guard using it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nftk_jax.experiment._memory import fit_peak_bytes, fit_stage_floats


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
    """Evaluation with dense solves (fit split <= 2000): the kernels (L n^2 and
    L n m, which JAX takes without a copy), then per class a kernel, its shifted
    copy and its factor."""
    n, m, L, d = 100, 30, 4, 3
    s = fit_stage_floats(n, m, L, d)
    assert s["evaluation"] == L * n * n + L * n * m + 3 * d * n * n
    assert fit_peak_bytes(n, m, L, d, dtype=np.float32) < fit_peak_bytes(n, m, L, d)


def test_stage_model_follows_the_learners_solver():
    """Past a fit split of 2000 the learner and the refit use CG with one shared
    preconditioner instead of per-class factors."""
    n, m, L, d = 2600, 650, 10, 10
    nf = 0.8 * n
    held = L * n * n + L * n * m
    s = fit_stage_floats(n, m, L, d)
    assert s["evaluation"] == held + 3 * n * n
    assert s["omega"] == pytest.approx(held + 0.8 * L * n * n + 3 * nf * nf)
    dense = fit_stage_floats(2500, m, L, d)  # fit split of 2000: dense
    assert dense["evaluation"] == L * 2500**2 + L * 2500 * m + 3 * d * 2500**2


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
