"""A new user's first hour: run directories, resume, messages, help, progress, repr.

Run directories are checked by their files, messages by their exact text.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

import nftk_jax as nk
from nftk_jax.cli import build_parser, main
from nftk_jax.core import NFTKInputError
from nftk_jax.core._io import write_json, write_npy

SMALL = ["--dataset", "digits", "--n-train", "120", "--n-test", "40", "--depth", "2"]
SMALL_FIT = ["fit", *SMALL, "--steps", "3", "--no-progress"]


# -- file modes ---------------------------------------------------------------------
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        write_npy(tmp_path / "a.npy", np.zeros(3))
    finally:
        os.umask(old)
    for name in ("a.json", "a.npy"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


# -- run directories ----------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main([*SMALL_FIT, "--out", str(out), "--name", "r"]) == 0
    return out / "r"


def _snapshot(run):
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def test_other_settings_are_refused_before_any_work(small_run, capsys, monkeypatch):
    import nftk_jax.kernels as lw

    def no_kernels(*a, **k):
        raise AssertionError("kernels computed before the run directory was checked")

    monkeypatch.setattr(lw, "layerwise_kernels", no_kernels)
    before = _snapshot(small_run)
    capsys.readouterr()
    argv = [*SMALL_FIT, "--ridge", "0.01", "--out", str(small_run.parent), "--name"]
    assert main([*argv, "r"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"nftk: error: out_dir={str(small_run)!r} holds a run with other settings "
        "(ridge None -> 0.01); nothing was computed or changed; pass --overwrite to "
        "replace it, or another --name\n"
    )
    assert _snapshot(small_run) == before


def test_finished_run_returns_at_once(small_run, capsys, monkeypatch):
    import nftk_jax.kernels as lw

    monkeypatch.setattr(lw, "layerwise_kernels", None)  # any call would fail
    before = _snapshot(small_run)
    capsys.readouterr()
    assert main([*SMALL_FIT, "--out", str(small_run.parent), "--name", "r"]) == 0
    cap = capsys.readouterr()
    assert (
        f"[nftk] {small_run} holds this finished run (same configuration): nothing "
        "is recomputed; pass --overwrite (overwrite=True) to run it again\n"
    ) in cap.err
    assert "the run had finished, nothing was recomputed" in cap.out
    assert _snapshot(small_run) == before


def test_more_steps_resume_from_the_checkpoint(
    small_run, tmp_path, capsys, monkeypatch
):
    import nftk_jax.experiment._fit_stages as rf

    run = tmp_path / "r"
    for p in small_run.iterdir():
        (run / p.name).parent.mkdir(exist_ok=True)
        (run / p.name).write_bytes(p.read_bytes())
    steps_before = json.loads((run / "metrics.json").read_text())["n_steps"]

    def no_baselines(*a, **k):
        raise AssertionError("baselines recomputed")

    monkeypatch.setattr(rf, "_baselines", no_baselines)
    capsys.readouterr()
    argv = ["fit", *SMALL, "--steps", "5", "--tol", "1e-14", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path), "--name", "r"]) == 2  # tol differs
    argv = ["fit", *SMALL, "--steps", "5", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path), "--name", "r"]) == 0
    err = capsys.readouterr().err
    assert (
        f"[nftk] resuming from step {steps_before}: the layerwise kernels are "
        "recomputed (they are not stored), the ridge and baselines are reused from "
        "baselines.json\n"
    ) in err
    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert config["steps"] == 5 and metrics["n_steps"] >= steps_before
    # the reused baselines are the ones the first run reported
    first = json.loads((small_run / "metrics.json").read_text())["baselines"]["rows"]
    assert metrics["baselines"]["rows"][1:] == first[1:]


def test_a_failed_run_leaves_no_directory(tmp_path, capsys, monkeypatch):
    import nftk_jax.mkl as fit

    def broken(*a, **k):
        raise NFTKInputError("solver exploded")

    monkeypatch.setattr(fit, "learn_and_refit", broken)
    out = tmp_path / "new" / "runs"
    assert main([*SMALL_FIT, "--out", str(out), "--name", "x"]) == 2
    assert "solver exploded" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_bad_compare_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--omega", "/does/not/exist.npy", "--no-progress"]) == 2
    assert "--omega" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- labels, ridge vocabulary, repr ---------------------------------------------------
def test_integer_column_labels_are_refused():
    y = (np.arange(12) % 3)[:, None]
    with pytest.raises(ValueError) as info:
        nk.fit_mkl(nk.MLP(depth=2), np.eye(12, 4), y, ridge=1e-2, steps=1)
    assert str(info.value) == (
        "y has shape (12, 1) with integer values: class labels must be 1-D, so pass "
        "y.ravel() for classification, or y.astype(float) for single-output "
        "regression."
    )


def _brute_force_loo(theta, Y, grid):
    """Mean squared leave-one-out residual by n explicit refits per ridge."""
    k = theta.mean(axis=0)
    n = k.shape[0]
    scores = []
    for rho in grid:
        err = 0.0
        for i in range(n):
            keep = np.arange(n) != i
            a = np.linalg.solve(k[np.ix_(keep, keep)] + rho * np.eye(n - 1), Y[keep])
            err += np.sum((k[i, keep] @ a - Y[i]) ** 2)
        scores.append(err / n)
    return np.asarray(scores)


def test_fit_mkl_accepts_ridge_loo_like_the_cli():
    from nftk_jax.data import load_digits
    from nftk_jax.mkl import validation_split
    from nftk_jax.mkl._ridge import default_ridge_grid

    ds = load_digits(seed=0)
    x, y = ds.x_train[:40], ds.y_train[:40]
    spec = nk.MLP(depth=2)
    res = nk.fit_mkl(spec, x, y, ridge="loo", steps=1, n_classes=10)
    tr, _ = validation_split(y, 0.2, 0, stratify=True)
    theta = np.asarray(nk.layerwise_kernels(spec, x[tr]))
    Y = np.eye(10)[y[tr]] - 0.1
    grid = default_ridge_grid(float(np.mean(np.diagonal(theta.mean(0)))))
    expected = grid[np.argmin(_brute_force_loo(theta, Y, grid))]
    assert res.ridge == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"ridge='lo' is unknown; pass a number > 0"):
        nk.fit_mkl(spec, x, y, ridge="lo", steps=1)


def test_ridge_on_the_grid_edge_warns():
    from nftk_jax.experiment._run_ridge import choose_ridge as _choose_ridge
    from nftk_jax.mkl._ridge import RidgeGridEdgeWarning, select_ridge

    t = np.linspace(0, 3, 25)
    theta = np.exp(-((t[:, None] - t[None, :]) ** 2))[None]  # smooth, noise-free
    Y = np.stack([np.sin(t), np.cos(t)], axis=1)
    with pytest.warns(RidgeGridEdgeWarning) as rec:
        sel = select_ridge(theta, Y, np.ones((2, 1)), method="loo")
    assert sel.ridge == sel.grid.min()
    assert str(rec[0].message) == (
        "select_ridge: 'loo' picked ridge=1e-06, the lower edge of its grid [1e-06, "
        "10]; the best ridge may lie below it. Extend the grid, e.g. "
        "grid=np.geomspace(1e-09, 10, 40), or pass a ridge value."
    )
    lines = []
    info = _choose_ridge(theta, Y, "loo", None, lines.append)
    assert info["grid_edge"] == "lower"
    assert lines == [
        "warning: --ridge loo picked 1e-06, the lower edge of its grid [1e-06, 10] "
        "(x the mean kernel diagonal 1); the best ridge may lie below it: extend the "
        "grid with --ridge-grid 1e-09 10 (ridge_grid=(1e-09, 10) in run_fit), or give "
        "--ridge a number"
    ]
    lines.clear()
    info = _choose_ridge(theta, Y, "loo", (1e-9, 10), lines.append)
    assert info["value"] < 1e-6 and len(info["grid"]) == 41


def test_result_repr_shows_shapes_not_arrays():
    x = np.random.default_rng(0).normal(size=(30, 5))
    y = np.arange(30) % 3
    res = nk.fit_mkl(nk.MLP(depth=2), x, y, ridge=1e-2, steps=2)
    text = repr(res)
    assert len(text) < 400 and "\n" not in text and "array(" not in text
    assert text.startswith("NFTKResult(omega 3x2, alpha 30x3, classification, ")
    assert f"after {res.n_steps} step(s)" in text and "x_train 30x5" in text


# -- help -----------------------------------------------------------------------------
def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_every_option_has_help():
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help and len(action.help) > 10, (name, action.dest)


def test_help_lists_activations_and_per_command_defaults(capsys):
    from nftk_jax.cli._parser import ACTIVATION_NAMES
    from nftk_jax.model._spec import ACTIVATIONS

    assert tuple(sorted(ACTIVATIONS)) == ACTIVATION_NAMES
    text = {}
    for cmd in ("fit", "compare", "interpret"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text[cmd] = " ".join(capsys.readouterr().out.split())
    assert "compare" not in text["fit"].split("usage:")[1].replace("nftk fit", "")
    assert "(default: 4000 for mnist5k" in text["fit"]
    for cmd in ("compare", "interpret"):
        assert "(default: 500)" in text[cmd] and "(default: 200)" in text[cmd]
        assert "4000 for mnist5k" not in text[cmd]
        assert "(default: mnist5k)" not in text[cmd]
    assert "lambda = RIDGE x the mean kernel diagonal" in text["interpret"]
    assert "(default: 0.1 x their mean diagonal" in text["compare"]
    assert "0.1 x" not in text["fit"] and "0.1 x" not in text["interpret"]
    assert ", ".join(ACTIVATION_NAMES) in text["fit"]
    assert "absolute" in text["fit"] and "absolute" in text["compare"]
    assert "relative objective change" in text["fit"]
    assert "projected-gradient norm drops below TOL" in text["fit"]


# -- progress and time ---------------------------------------------------------------
def test_labelled_bars_and_a_time_line_that_adds_up(tmp_path, capsys):
    argv = ["fit", *SMALL, "--steps", "4", "--out", str(tmp_path), "--name", "p"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "baselines (single depths, uniform mix, depth selection)" in cap.err
    assert "[nftk] evaluating: test predictions of the learned Omega," in cap.err
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    n, reason = metrics["n_steps"], metrics["stop_reason"]
    assert f"Omega steps ({reason}): {n} [" in cap.err  # its closing state
    line = next(s for s in cap.out.splitlines() if s.startswith("time"))
    total = float(re.search(r"([\d.]+) s total", line).group(1))
    parts = [float(v) for v in re.findall(r" ([\d.]+) s(?:,|$)", line)]
    assert len(parts) == 8  # data, 6 stages, other
    assert sum(parts) == pytest.approx(total, abs=0.05 * len(parts))
    assert set(metrics["timings_s"]) == {
        "kernels_s", "ridge_s", "baselines_s", "omega_learning_s", "evaluation_s",
        "files_s",
    }  # fmt: skip


def test_kernel_bars_are_labelled(capsys):
    x = np.random.default_rng(0).normal(size=(12, 3))
    nk.layerwise_kernels(nk.MLP(depth=2), x, block_size=4, progress="train kernels")
    assert "train kernels" in capsys.readouterr().err


# -- the width study's optimisation floor --------------------------------------------
def test_gradient_descent_gap_matches_explicit_descent():
    """Closed form against t explicit gradient steps of a linear model whose
    features give the kernel: K = A A^T, K_* = B A^T."""
    from nftk_jax.finite._width_study import gradient_descent_gap

    rng = np.random.default_rng(0)
    n, m, p, d, rho, lr, steps = 12, 5, 40, 2, 0.3, 0.2, 7
    A, B = rng.normal(size=(n, p)), rng.normal(size=(m, p))
    Y = rng.normal(size=(n, d))
    theta, theta_x = (A @ A.T)[None], (B @ A.T)[None]
    omega = np.ones((d, 1))
    th = np.zeros((p, d))
    for _ in range(steps):  # (1/n)|A th - Y|^2 + (rho/n)|th|^2
        th -= lr * (2 / n) * (A.T @ (A @ th - Y) + rho * th)
    th_inf = np.linalg.solve(A.T @ A + rho * np.eye(p), A.T @ Y)
    expected = np.linalg.norm(B @ th - B @ th_inf) / np.linalg.norm(B @ th_inf)
    gap = gradient_descent_gap(
        theta, theta_x, Y, omega, ridge=rho, learning_rate=lr, steps=steps
    )
    assert gap == pytest.approx(expected, rel=1e-9)


# -- numbers that agree -------------------------------------------------------------
def test_readme_quotes_the_measured_default_job_time():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    results = (root / "benchmarks" / "RESULTS.md").read_text()
    readme = (root / "README.md").read_text()
    job = re.search(r"the\s+job itself \*\*([\d.]+) s\*\*", results).group(1)
    start = readme.index("The first command prints")
    quick = readme[start : readme.index("\n\n", start)]  # that paragraph
    table = next(s for s in readme.splitlines() if s.startswith("| `nftk fit` wall"))
    for text in (quick, table):
        assert f"{job} s" in text
        assert "idle" in text  # the load it was measured under
    # every duration quoted in the quick start is one RESULTS measured
    for value in re.findall(r"(\d+(?:\.\d+)?) s\b", quick):
        assert f"{value} s" in results, value
