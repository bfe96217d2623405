"""The ``nftk`` command line, end to end on small slices."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from nftk_jax.cli import main

SMALL_FIT = [
    "fit",
    "--dataset",
    "digits",
    "--n-train",
    "160",
    "--n-test",
    "80",
    "--depth",
    "3",
    "--steps",
    "6",
    "--no-progress",
]


def _png_has_content(path: Path) -> None:
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(np.std(img[..., :3])) > 0.01, f"{path} looks blank"


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    rc = main([*SMALL_FIT, "--out", str(out), "--name", "small"])
    return rc, out / "small"


def test_fit_end_to_end(fit_run, capsys):
    rc, run = fit_run
    assert rc == 0
    for name in (
        "config.json",
        "metrics.json",
        "omega.npy",
        "omega_raw.npy",
        "omega_trajectory.npy",
        "fig2_omega.png",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    acc = metrics["accuracy"]
    assert set(acc) >= {
        "learned_omega",
        "uniform_omega",
        "validation_selected_single_depth",
        "oracle_best_single_depth",
    }
    assert len(acc["single_depth"]) == 3
    assert acc["oracle_best_single_depth"] == max(acc["single_depth"])
    val_depth = acc["validation_selected_depth"]
    assert acc["validation_selected_single_depth"] == acc["single_depth"][val_depth - 1]
    rows = metrics["baselines"]["rows"]
    assert [r["name"].split(":")[0] for r in rows][-1] == "oracle"
    for r in rows:
        lo, hi = r["test_bootstrap_interval"]
        assert lo <= r["test_accuracy"] <= hi

    assert all(0.5 < a <= 1.0 for a in acc["single_depth"])  # 10 classes: chance 0.1
    assert 0.0 <= metrics["sparsity"] <= 1.0
    omega = np.load(run / "omega.npy", allow_pickle=False)
    assert omega.shape == (10, 3) and np.all(omega >= 0)
    assert np.allclose(omega.sum(axis=1), 1.0)  # default constraint: simplex
    config = json.loads((run / "config.json").read_text())
    assert config["spec"]["depth"] == 3 and len(config["data_sha256"]) == 64
    _png_has_content(run / "fig2_omega.png")


def test_fit_with_resamples_reports_stability(tmp_path, capsys):
    argv = ["fit", "--dataset", "digits", "--n-train", "120", "--n-test", "60"]
    argv += ["--depth", "3", "--steps", "4", "--resamples", "3", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path), "--name", "rs"]) == 0
    run = tmp_path / "rs"
    out = capsys.readouterr().out
    assert "validation-selected single depth" in out and "McNemar" in out
    assert "oracle" in out and "rank correlation" in out
    omegas = np.load(run / "omega_resamples.npy", allow_pickle=False)
    assert omegas.shape == (3, 10, 3)
    np.testing.assert_array_equal(omegas[0], np.load(run / "omega.npy"))
    m = json.loads((run / "metrics.json").read_text())
    st = m["stability"]
    np.testing.assert_allclose(st["mean"], omegas.mean(axis=0))
    np.testing.assert_allclose(st["selection_frequency"], np.mean(omegas > 0, axis=0))
    learned = m["baselines"]["rows"][0]
    assert len(learned["per_split"]) == 3
    assert learned["per_split"][0] == m["accuracy"]["learned_omega"]
    lo, hi = learned["split_interval"]
    assert lo <= learned["split_mean"] <= hi
    assert len(m["baselines"]["rows"][1]["depth_per_split"]) == 3
    _png_has_content(run / "fig2_omega_stability.png")


def test_figures_from_saved_run(fit_run, capsys):
    _, run = fit_run
    (run / "fig2_omega.png").unlink()
    assert main(["figures", str(run)]) == 0
    _png_has_content(run / "fig2_omega.png")
    _png_has_content(run / "omega_trajectory.png")
    assert "wrote" in capsys.readouterr().out


def test_rerun_resumes_from_finished_checkpoint(fit_run, tmp_path):
    _, run = fit_run
    before = np.load(run / "omega.npy", allow_pickle=False)
    out = run.parent
    t0 = time.perf_counter()
    assert main([*SMALL_FIT, "--out", str(out), "--name", "small"]) == 0
    np.testing.assert_array_equal(np.load(run / "omega.npy"), before)
    assert time.perf_counter() - t0 < 120


def test_compare_end_to_end(fit_run, tmp_path, capsys):
    _, run = fit_run
    argv = ["compare", "--dataset", "digits", "--depth", "3", "--widths", "16", "64"]
    argv += ["--train-steps", "20", "--n-train", "40", "--n-test", "20"]
    argv += ["--omega", str(run), "--no-progress", "--out", str(tmp_path)]
    assert main([*argv, "--name", "cmp"]) == 0
    study = json.loads((tmp_path / "cmp" / "width_study.json").read_text())
    assert study["widths"] == [16, 64]
    for key in ("pred_gap", "ntk_gap", "acc_finite"):
        assert np.asarray(study[key]).shape == (2, 1)
    assert np.isfinite(study["slope_ntk"]) and study["ridge"] > 0
    assert_omega = np.asarray(study["omega"])
    np.testing.assert_allclose(
        assert_omega, np.load(run / "omega_raw.npy", allow_pickle=False)
    )
    _png_has_content(tmp_path / "cmp" / "width_study.png")
    config = json.loads((tmp_path / "cmp" / "config.json").read_text())
    metrics = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert config["widths"] == [16, 64] and config["train_steps"] == 20
    assert config["omega_source"] == str(run) and len(config["data_sha256"]) == 64
    assert (
        metrics["widths"] == [16, 64] and metrics["slope_pred"] == study["slope_pred"]
    )
    assert set(metrics["timings_s"]) == {"setup_s", "networks_s", "files_s"}
    out = capsys.readouterr().out
    assert "slopes" in out
    # 20 steps are far from convergence: the output says why the slope is off
    assert study["opt_gap"] > 0.25 * np.mean(study["pred_gap"][-1])
    assert "because the networks are not trained to convergence" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["fit", "--dataset", "nope"], "--dataset"),
        (["fit", "--dataset", "digits", "--depth", "0"], "depth"),
        (["fit", "--dataset", "idx", "--data-dir", "/does/not/exist"], "directory"),
        (["fit", "--dataset", "idx"], "--data-dir"),
        (["fit", "--ridge", "-1"], "--ridge"),
        (["fit", "--steps", "0"], "--steps"),
        (["fit", "--dataset", "digits", "--length", "16"], "--length"),
        (["fit", "--dataset", "ucr:GunPoint", "--length", "0"], "--length"),
        (["fit", "--dataset", "digits", "--activation", "swishy"], "activation"),
        (["figures", "/does/not/exist"], "omega.npy"),
        (["compare", "--widths", "0"], "--widths"),
        (["compare", "--omega", "/does/not/exist.npy"], "--omega"),
        ([], "COMMAND"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        sys.exit(main(argv))
    assert list(tmp_path.iterdir()) == []  # no run folder is left behind
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nftk: error:") and needle in lines[0]
    assert "Traceback" not in err


def test_unusable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert main([*SMALL_FIT, "--out", str(blocker)]) == 2
    assert "--out" in capsys.readouterr().err
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if not os.access(ro, os.W_OK):  # permissions are not enforced for root
        assert main([*SMALL_FIT, "--out", str(ro)]) == 2
        assert "not writable" in capsys.readouterr().err


def test_help_for_every_command(capsys):
    for cmd in ("fit", "compare", "figures", "reproduce"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: nftk" in capsys.readouterr().out


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nftk_jax.cli", *args]


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C handled as from a terminal. A shell that
    runs the suite as a background job ignores SIGINT, and an ignored SIGINT is
    inherited, so Python would install no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env() -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"
    return env


KILL_ARGS = [
    "fit",
    "--dataset",
    "digits",
    "--n-train",
    "300",
    "--n-test",
    "50",
    "--depth",
    "4",
    "--steps",
    "40",
    "--tol",
    "1e-12",
    "--no-progress",
]


@pytest.fixture(scope="module")
def uninterrupted_omega(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    ref = subprocess.run(
        _cli(*KILL_ARGS, "--out", str(out), "--name", "ref"),
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert ref.returncode == 0, ref.stderr
    return np.load(out / "ref" / "omega.npy", allow_pickle=False)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_fit_resumes_to_the_same_omega(sig, tmp_path, uninterrupted_omega):
    """Kill ``nftk fit`` once it has checkpointed; rerunning the same command ends
    where an uninterrupted run ends."""
    args = [*KILL_ARGS, "--out", str(tmp_path), "--name", "killed"]
    proc = subprocess.Popen(
        _cli(*args),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    ckpt = tmp_path / "killed" / "checkpoint.npz"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the fit ended before it could be interrupted"
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == (
            "nftk: interrupted; rerun the same command to resume"
        )
        assert "Traceback" not in err and "Exception ignored" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "omega.npy").exists()  # it was mid-run

    again = subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    np.testing.assert_allclose(
        np.load(tmp_path / "killed" / "omega.npy", allow_pickle=False),
        uninterrupted_omega,
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.data
def test_reproduce_mnist_on_mock_data(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    argv = ["reproduce", "--dataset", "mnist", "--data-dir", str(tmp_path / "tfds")]
    argv += ["--n-train", "40", "--n-test", "12", "--steps", "2", "--no-progress"]
    with tfds.testing.mock_data(num_examples=40):
        assert main([*argv, "--out", str(tmp_path / "runs")]) == 0
    table = json.loads(
        (tmp_path / "runs" / "reproduce-mnist" / "table1.json").read_text()
    )
    assert [r["depth"] for r in table["rows"]] == [10, 20]
    assert table["rows"][0]["paper_finite_nftk"] == pytest.approx(0.9725)
    for depth in (10, 20):
        omega = np.load(
            tmp_path / "runs" / "reproduce-mnist" / f"L{depth}" / "omega.npy"
        )
        assert omega.shape == (10, depth)
    assert "paper" in capsys.readouterr().out


@pytest.mark.data
def test_reproduce_without_data_names_the_remedies(tmp_path, capfd):
    pytest.importorskip("tensorflow_datasets")
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["reproduce", "--dataset", "mnist", "--data-dir", str(empty)]
    assert main([*argv, "--out", str(tmp_path / "runs")]) == 2
    err = capfd.readouterr().err
    assert re.fullmatch(
        f"nftk: error: mnist is not prepared in {re.escape(str(empty))}/mnist/"
        r"[0-9.]+; point --data-dir \(or TFDS_DATA_DIR\) at a tensorflow-datasets "
        r"directory holding it, prepared on a machine with network access by "
        r"tfds.builder\('mnist'\).download_and_prepare\(\)\n",
        err,
    ), err
    assert not (tmp_path / "runs").exists()


def _tiny_gpt2(folder: Path) -> None:
    """A character-level tokenizer and a random 'wte' matrix in GPT-2's file names."""
    import safetensors.numpy
    import tokenizers

    chars = list("abcdefghij ")
    vocab = {"[UNK]": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordLevel(vocab=vocab, unk_token="[UNK]")
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(
        tokenizers.Regex("."), behavior="isolated"
    )
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    wte = np.random.default_rng(0).normal(size=(len(vocab), 6)).astype(np.float32)
    safetensors.numpy.save_file({"wte.weight": wte}, str(folder / "model.safetensors"))


@pytest.mark.data
@pytest.mark.slow
def test_reproduce_imdb_end_to_end(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("tokenizers")
    _tiny_gpt2(tmp_path / "gpt2")
    argv = ["reproduce", "--dataset", "imdb", "--gpt2-dir", str(tmp_path / "gpt2")]
    argv += ["--data-dir", str(tmp_path / "tfds"), "--n-train", "30", "--n-test"]
    argv += ["10", "--steps", "2", "--no-progress", "--out", str(tmp_path / "runs")]
    with tfds.testing.mock_data(num_examples=30):
        assert main(argv) == 0
    base = tmp_path / "runs" / "reproduce-imdb"
    table = json.loads((base / "table1.json").read_text())
    assert [r["depth"] for r in table["rows"]] == [5, 10]
    for depth in (5, 10):
        config = json.loads((base / f"L{depth}" / "config.json").read_text())
        assert config["classes"] == ["neg", "pos"] and config["n_train"] == 30
        assert np.load(base / f"L{depth}" / "omega.npy").shape == (2, depth)
    assert "paper" in capsys.readouterr().out


def test_reproduce_imdb_needs_gpt2_dir(tmp_path, capsys):
    argv = ["reproduce", "--dataset", "imdb", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--gpt2-dir" in capsys.readouterr().err


def test_interpret_end_to_end(fit_run, tmp_path, capsys):
    _, run = fit_run
    argv = ["interpret", "--dataset", "digits", "--depth", "3", "--width", "32"]
    argv += ["--train-steps", "30", "--n-train", "60", "--n-test", "30"]
    argv += ["--omega", str(run), "--no-progress", "--out", str(tmp_path)]
    assert main([*argv, "--name", "itp"]) == 0
    res = json.loads((tmp_path / "itp" / "interpret.json").read_text())
    kernel = np.load(run / "omega_raw.npy", allow_pickle=False)
    np.testing.assert_allclose(res["omega_kernel"], kernel)
    finite = np.asarray(res["omega_finite"])
    assert finite.shape == (10, 3) and np.all(finite >= 0)
    from scipy.stats import spearmanr

    ref = [spearmanr(a, b)[0] for a, b in zip(kernel, finite, strict=True)]
    np.testing.assert_allclose(res["rank_correlation"], ref, rtol=1e-10)
    assert 0.0 <= res["finite_test_accuracy"] <= 1.0
    _png_has_content(tmp_path / "itp" / "omega_agreement.png")
    out = capsys.readouterr().out
    assert "mean rank correlation" in out
    # like every run: config.json and metrics.json, and a stage time line
    config = json.loads((tmp_path / "itp" / "config.json").read_text())
    assert config["command"] == "interpret" and config["width"] == 32
    metrics = json.loads((tmp_path / "itp" / "metrics.json").read_text())
    assert metrics["rank_correlation"] == res["rank_correlation"]
    line = next(s for s in out.splitlines() if s.startswith("time"))
    assert "kernel Omega" in line and "finite network" in line
    assert "evaluation, files and figure" in line and line.endswith("other 0.0 s")
    # another setting under the same name is refused before any work
    before = sorted(p.name for p in (tmp_path / "itp").iterdir())
    argv[argv.index("--width") + 1] = "16"
    assert main([*argv, "--name", "itp"]) == 2
    assert "holds a run with other settings" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "itp").iterdir()) == before


def _wait_for(proc, predicate, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not predicate() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the command ended before it could be interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["kernels", "omega"])
def test_ctrl_c_prints_one_line_and_no_traceback(stage, tmp_path):
    """SIGINT in the kernels or in the Omega learning: exit 130, one line, no
    traceback (threads, JAX's atexit hooks), and nothing left to clean up."""
    args = [*KILL_ARGS[:-1], "--out", str(tmp_path), "--name", "c"]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            _cli(*args), env=_env(), stdout=subprocess.DEVNULL, stderr=f,
            preexec_fn=_default_sigint,
        )  # fmt: skip
        if stage == "kernels":
            _wait_for(proc, lambda: "layerwise NTKs" in log.read_text())
        else:
            _wait_for(proc, lambda: (tmp_path / "c" / "checkpoint.npz").exists())
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    err = log.read_text()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last == "nftk: interrupted; rerun the same command to resume"
    if stage == "kernels":  # nothing to resume from: no debris
        assert not (tmp_path / "c").exists()
    else:
        assert (tmp_path / "c" / "config.json").is_file()
