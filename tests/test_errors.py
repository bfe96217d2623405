"""The bad-input table of docs/errors.md, one case per row.

Each case names the public entry point, the bad input, the exact exception type and
a fragment of the message that names the argument. A second test keeps this table
and the documented one in step.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import nftk_jax as nk
import nftk_jax.data
from nftk_jax import CheckpointError
from nftk_jax.cli import main
from nftk_jax.experiment import ExactOptions

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 5))
Y = np.arange(12) % 3
TH = np.stack([X @ X.T, (X @ X.T) ** 2 / 10, np.eye(12)])  # (3, 12, 12), PSD
SPEC = nk.MLP(depth=2)
RNN2 = nk.RNN(depth=2)


def _fit(**kw):
    args = dict(ridge=1e-2, objective="krr_dual", constraint="simplex", steps=2)
    args.update(kw)
    y = args.pop("y", Y)
    theta = args.pop("theta", TH)
    return nk.fit_mkl_kernels(theta, y, **args)


def _corrupt_checkpoint(tmp_path):
    bad = tmp_path / "ckpt.npz"
    bad.write_bytes(b"definitely not a zip file")
    return _fit(checkpoint=bad)


def _foreign_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt.npz"
    _fit(checkpoint=ckpt)
    return _fit(checkpoint=ckpt, y=(Y + 1) % 3)


def _changed_optimizer(tmp_path):
    import optax

    ckpt = tmp_path / "ckpt.npz"
    _fit(checkpoint=ckpt, optimizer=optax.adam(0.05))
    return _fit(checkpoint=ckpt, optimizer=optax.adam(5.0))


def _cli(argv):
    def run(tmp_path):
        code = main([a.replace("TMP", str(tmp_path)) for a in argv])
        if code != 0:
            raise SystemExit(code)

    return run


def _blocked_out(tmp_path):
    (tmp_path / "file").write_text("x")
    return _cli(["fit", "--dataset", "digits", "--out", "TMP/file"])(tmp_path)


def _foreign_run(tmp_path):
    run = tmp_path / "fit-digits-L2"
    run.mkdir()
    (run / "config.json").write_text('{"ridge": "loo"}')
    argv = ["fit", "--dataset", "digits", "--depth", "2", "--out", "TMP"]
    return _cli([*argv, "--ridge", "0.01"])(tmp_path)


def _without_aeon(call):
    """``call`` run as if the timeseries extra were not installed."""

    def run(tmp_path):
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(sys.modules, "aeon", None)
            mp.setitem(sys.modules, "aeon.datasets", None)
            return call(tmp_path)

    return run


# id -> (call taking tmp_path, exception type, message fragment)
CASES = {
    "x-rank": (lambda t: nk.layerwise_kernels(SPEC, X[0]), ValueError, "x1"),
    "x-feature-mismatch": (
        lambda t: nk.layerwise_kernels(SPEC, X, X[:, :3]),
        ValueError,
        "x2",
    ),
    "x-nan": (
        lambda t: nk.layerwise_kernels(SPEC, np.where(X > 1, np.nan, X)),
        ValueError,
        "x1",
    ),
    "x-empty": (lambda t: nk.layerwise_kernels(SPEC, X[:0]), ValueError, "x1"),
    "seq-empty-list": (
        lambda t: nk.layerwise_kernels(RNN2, []),
        ValueError,
        "x1 is empty",
    ),
    "seq-empty-sequence": (
        lambda t: nk.layerwise_kernels(RNN2, [np.ones((2, 3)), np.ones((0, 3))]),
        ValueError,
        "x1[1] is an empty sequence",
    ),
    "seq-feature-mismatch": (
        lambda t: nk.layerwise_kernels(RNN2, [np.ones((2, 3))], [np.ones((2, 4))]),
        ValueError,
        "x2 has 4 features per step",
    ),
    "seq-nan": (
        lambda t: nk.layerwise_kernels(RNN2, [np.array([[np.nan, 1.0]])]),
        ValueError,
        "x1[0] contains 1 NaN",
    ),
    "seq-lengths-past-padding": (
        lambda t: nk.layerwise_kernels(RNN2, (np.ones((2, 3, 3)), np.array([1, 4]))),
        ValueError,
        "lengths of x1 must be integers in [1, 3]",
    ),
    "depth-zero": (lambda t: nk.MLP(depth=0), ValueError, "depth"),
    "width-zero": (lambda t: nk.MLP(depth=2, width=0), ValueError, "width"),
    "unknown-activation": (
        lambda t: nk.MLP(depth=2, activation="swishy"),
        ValueError,
        "activation",
    ),
    "block-size-zero": (
        lambda t: nk.layerwise_kernels(SPEC, X, block_size=0),
        ValueError,
        "block_size",
    ),
    "memory-budget-too-small": (
        lambda t: nk.layerwise_kernels(SPEC, X, memory_budget=10),
        ValueError,
        "memory_budget",
    ),
    "engine-without-closed-form": (
        lambda t: nk.layerwise_kernels(
            nk.MLP(depth=2, activation="sin"), X, engine="fast"
        ),
        ValueError,
        "engine='fast'",
    ),
    "unknown-engine": (
        lambda t: nk.layerwise_kernels(SPEC, X, engine="numpy"),
        ValueError,
        "engine='numpy'",
    ),
    "labels-out-of-range": (
        lambda t: _fit(y=Y, n_classes=2),
        ValueError,
        "y",
    ),
    "labels-non-integer": (
        lambda t: _fit(y=Y + 0.5),
        ValueError,
        "y is 1-D with non-integer values",
    ),
    "y-length-mismatch": (
        lambda t: _fit(y=Y[:-1]),
        ValueError,
        "y must have one entry per example",
    ),
    "y-nan": (
        lambda t: _fit(y=np.full((12, 2), np.nan)),
        ValueError,
        "y contains NaN or inf",
    ),
    "theta-not-square": (lambda t: _fit(theta=TH[:, :, :5]), ValueError, "theta"),
    "ridge-zero": (lambda t: _fit(ridge=0.0), ValueError, "ridge"),
    "ridge-negative": (lambda t: _fit(ridge=-1.0), ValueError, "ridge"),
    "omega-negative": (
        lambda t: _fit(omega_init=-np.ones((3, 3))),
        ValueError,
        "omega_init",
    ),
    "omega-wrong-shape": (
        lambda t: _fit(omega_init=np.ones((3, 4))),
        ValueError,
        "omega_init",
    ),
    "omega-all-zero": (
        lambda t: nk.krr_fit(TH, np.ones((12, 3)), np.zeros((3, 3)), ridge=1.0),
        ValueError,
        "omega",
    ),
    "unknown-objective": (lambda t: _fit(objective="hinge"), ValueError, "objective"),
    "unknown-constraint": (
        lambda t: _fit(constraint="sphere"),
        ValueError,
        "constraint",
    ),
    "val-mse-without-validation": (
        lambda t: _fit(objective="val_mse"),
        ValueError,
        "theta_val",
    ),
    "steps-zero": (lambda t: _fit(steps=0), ValueError, "steps"),
    "kernels-exceed-memory": (
        lambda t: nk.fit_mkl(
            nk.MLP(depth=10), np.ones((60_000, 1)), np.arange(60_000) % 2, ridge=1.0
        ),
        ValueError,
        "x has n=60000",
    ),
    "unknown-kernel-storage": (
        lambda t: nk.fit_mkl(SPEC, X, Y, ridge=1e-2, kernel_storage="ssd"),
        ValueError,
        "kernel_storage",
    ),
    "disk-without-kernel-dir": (
        lambda t: nk.fit_mkl(SPEC, X, Y, ridge=1e-2, kernel_storage="disk"),
        ValueError,
        "kernel_dir",
    ),
    "matrix-free-with-arrays": (
        lambda t: _fit(solver="matrix_free"),
        ValueError,
        "solver='matrix_free'",
    ),
    "unknown-preconditioner": (
        lambda t: _fit(solver="cg", preconditioner="ilu"),
        ValueError,
        "preconditioner",
    ),
    "nystrom-rank-zero": (
        lambda t: _fit(solver="cg", preconditioner="nystrom", precondition_rank=0),
        ValueError,
        "precondition_rank must be >= 1",
    ),
    "optimizer-changed": (
        _changed_optimizer,
        CheckpointError,
        "other settings: optimizer",
    ),
    "corrupt-checkpoint": (_corrupt_checkpoint, CheckpointError, "checkpoint"),
    "foreign-checkpoint": (_foreign_checkpoint, CheckpointError, "checkpoint"),
    "cli-unknown-dataset": (
        _cli(["fit", "--dataset", "cifar"]),
        SystemExit,
        "--dataset",
    ),
    "cli-depth-zero": (
        _cli(["fit", "--dataset", "digits", "--depth", "0"]),
        SystemExit,
        "depth",
    ),
    "cli-missing-data-dir": (
        _cli(["fit", "--dataset", "idx", "--data-dir", "TMP/none"]),
        SystemExit,
        "directory",
    ),
    "cli-fashion-mnist-missing": (
        _cli(["fit", "--dataset", "fashion_mnist", "--data-dir", "TMP"]),
        SystemExit,
        "apt-get install dataset-fashion-mnist",
    ),
    "cli-scalable-too-big": (
        _cli(
            [
                "fit",
                "--dataset",
                "digits",
                "--scalable",
                "--landmarks",
                "1000",
                "--memory-gb",
                "0.01",
                "--out",
                "TMP",
            ]
        ),
        SystemExit,
        "lower --landmarks",
    ),
    "cli-exact-cg-tol": (
        _cli(
            [
                "fit",
                "--dataset",
                "digits",
                "--scalable",
                "--exact",
                "--cg-tol",
                "2",
                "--out",
                "TMP",
            ]
        ),
        SystemExit,
        "--cg-tol of nftk fit) must be in (0, 1)",
    ),  # fmt: skip
    "cli-exact-only-alone": (
        _cli(
            ["fit", "--dataset", "digits", "--scalable", "--exact-only", "--out", "TMP"]
        ),
        SystemExit,
        "--exact-only needs --exact",
    ),  # fmt: skip
    "exact-options-rank": (
        lambda _: ExactOptions(rank=0).check(),
        ValueError,
        "ExactOptions.rank (--cg-rank of nftk fit) must be an integer >= 1",
    ),
    "cli-out-not-writable": (_blocked_out, SystemExit, "--out"),
    "stability-one-resample": (
        lambda _: nk.omega_stability(TH, Y, ridge=1e-2, n_resamples=1),
        ValueError,
        "n_resamples must be >= 2",
    ),
    "return-std-without-inputs": (
        lambda _: _fit().predict(X, return_std=True),
        ValueError,
        "return_std=True needs a result from fit_mkl",
    ),
    "variance-diagonal-shape": (
        lambda _: nk.posterior_variance(
            TH, TH[:, :4], TH[:, 0, :3], [[1, 0, 0]], ridge=1
        ),
        ValueError,
        "theta_diag must have shape (L, m)",
    ),
    "cli-foreign-run": (_foreign_run, SystemExit, "pass --overwrite"),
    "labels-integer-column": (
        lambda t: _fit(y=Y[:, None]),
        ValueError,
        "y has shape (12, 1) with integer values",
    ),
    "ridge-method-unknown": (
        lambda t: nk.fit_mkl(SPEC, X, Y, ridge="lo"),
        ValueError,
        "ridge='lo' is unknown",
    ),
    "cli-kernels-too-big": (
        _cli(["fit", "--dataset", "digits", "--depth", "5000", "--out", "TMP"]),
        SystemExit,
        "--n-train",
    ),
    "seq-bad-shape": (
        lambda t: nk.layerwise_kernels(RNN2, [np.ones((2, 3, 1))]),
        ValueError,
        "x1[0] must have shape (T, features) or (T,)",
    ),
    "seq-zero-features": (
        lambda t: nk.layerwise_kernels(RNN2, [np.ones((2, 0))]),
        ValueError,
        "x1[0] has 0 features per step",
    ),
    "seq-features-differ-within": (
        lambda t: nk.layerwise_kernels(RNN2, [np.ones((2, 3)), np.ones((2, 4))]),
        ValueError,
        "x1[1] has 4 features per step but x1[0] has 3",
    ),
    "seq-none": (
        lambda t: nk.layerwise_kernels(RNN2, None),
        ValueError,
        "x1 is None",
    ),
    "seq-padded-empty": (
        lambda t: nk.layerwise_kernels(RNN2, np.ones((0, 3, 2))),
        ValueError,
        "x1 is empty (shape (0, 3, 2))",
    ),
    "seq-lengths-shape": (
        lambda t: nk.layerwise_kernels(RNN2, (np.ones((2, 3, 3)), np.array([1]))),
        ValueError,
        "lengths of x1 must have shape (2,)",
    ),
    "seq-lengths-without-padding": (
        lambda t: nk.model.pack_sequences([np.ones((2, 1))], lengths=[2]),
        ValueError,
        "lengths was given but x is not a padded",
    ),
    "seq-array-not-sequences": (
        lambda t: nk.model.pack_sequences(np.ones(4)),
        ValueError,
        "x must be a list of (T_i, features) arrays or a padded",
    ),
    "seq-not-packed": (
        lambda t: nk.layerwise_kernels(RNN2, np.ones((3, 2))),
        ValueError,
        "x1 of shape (3, 2) is not a packed sequence array",
    ),
    "seq-packed-corrupt": (
        lambda t: nk.layerwise_kernels(RNN2, np.array([[5.0, 1.0, 1.0, 2.0]])),
        ValueError,
        "x1 is not a valid packed sequence array",
    ),
    "rnn-unknown-activation": (
        lambda t: nk.RNN(2, activation="tanh"),
        ValueError,
        "activation='tanh' has no closed-form recurrent kernel",
    ),
    "rnn-negative-scale": (
        lambda t: nk.RNN(2, sigma_u=-1.0),
        ValueError,
        "sigma_u",
    ),
    "rnn-engine-fast": (
        lambda t: nk.layerwise_kernels(RNN2, [np.ones((2, 1))], engine="fast"),
        ValueError,
        "engine='fast' has no fast path for an RNN",
    ),
    "rnn-memory-budget-too-small": (
        lambda t: nk.layerwise_kernels(RNN2, [np.ones((2, 1))], memory_budget=10),
        ValueError,
        "memory_budget=10 bytes is too small for depth=2",
    ),
    "rnn-kernels-not-finite": (
        lambda t: nk.layerwise_kernels(
            nk.RNN(2, sigma_w=100.0), [np.ones((40, 1))], dtype=np.float32
        ),
        ValueError,
        "the layerwise kernels are not finite in dtype=float32",
    ),
    "rnn-init-standard": (
        lambda t: nk.nftk_network(RNN2, 2, init="xavier_normal"),
        ValueError,
        "an RNN spec has only init='ntk'",
    ),
    "spec-not-a-spec": (
        lambda t: nk.layerwise_kernels("rnn", X),
        TypeError,
        "spec must be an nftk_jax.MLP or RNN",
    ),
    "ucr-without-aeon": (
        _without_aeon(lambda t: nk.data.load_ucr("GunPoint")),
        ImportError,
        "load_ucr needs aeon, the optional 'timeseries' extra",
    ),
    "ucr-unknown-set": (
        lambda t: nk.data.load_ucr("NoSuchSet"),
        ValueError,
        "name='NoSuchSet' is not a classification set shipped with aeon",
    ),
    "resample-length-zero": (
        lambda t: nk.data.resample_sequences([np.ones(3)], 0),
        ValueError,
        "length must be >= 1",
    ),
    "resample-length-not-integer": (
        lambda t: nk.data.length_view([np.ones(3)], 2.5),
        ValueError,
        "length must be an integer >= 1",
    ),
    "resample-empty-sequence": (
        lambda t: nk.data.resample_sequences([np.ones((0, 1))], 4),
        ValueError,
        "resample_sequences takes non-empty",
    ),
    "resample-no-sequences": (
        lambda t: nk.data.resample_sequences([], 4),
        ValueError,
        "resample_sequences needs at least one sequence",
    ),
    "resample-feature-mismatch": (
        lambda t: nk.data.resample_sequences([np.ones((3, 1)), np.ones((3, 2))], 4),
        ValueError,
        "every sequence needs the same number of features",
    ),
    "select-spec-no-candidates": (
        lambda t: nk.mkl.select_spec([], X, Y),
        ValueError,
        "candidates must hold at least one spec",
    ),
    "select-spec-no-views": (
        lambda t: nk.mkl.select_spec([RNN2], {}, Y),
        ValueError,
        "the mapping of input views is empty",
    ),
    "select-spec-rows-mismatch": (
        lambda t: nk.mkl.select_spec([RNN2], {16: [np.ones((2, 1))] * 5}, Y),
        ValueError,
        "the inputs of view 16 have 5 rows but y has 12",
    ),
    "select-spec-unknown-criterion": (
        lambda t: nk.mkl.select_spec([SPEC], X, Y, criterion="f1"),
        ValueError,
        "criterion='f1' is unknown",
    ),
    "select-spec-accuracy-for-targets": (
        lambda t: nk.mkl.select_spec([SPEC], X, X[:, :2], criterion="accuracy"),
        ValueError,
        "criterion='accuracy' needs integer class labels",
    ),
    "loo-omega-not-square": (
        lambda t: nk.mkl.learn_omega_loo(TH[:, :, :5], Y, ridge=1.0),
        ValueError,
        "theta must be (L, n, n) square",
    ),
    "loo-omega-ridge-zero": (
        lambda t: nk.mkl.learn_omega_loo(TH, Y, ridge=0.0),
        ValueError,
        "ridge must be finite and > 0",
    ),
    "cli-length-without-ucr": (
        _cli(["fit", "--dataset", "digits", "--length", "16"]),
        SystemExit,
        "--length resamples the series of a ucr:NAME set",
    ),
    "cli-ucr-without-aeon": (
        _without_aeon(_cli(["fit", "--dataset", "ucr:GunPoint", "--arch", "rnn"])),
        SystemExit,
        "load_ucr needs aeon",
    ),
    "cli-ucr-unknown-set": (
        _cli(["fit", "--dataset", "ucr:NoSuchSet", "--arch", "rnn"]),
        SystemExit,
        "is not a classification set shipped with aeon",
    ),
}


NEEDS_AEON = {"ucr-unknown-set", "cli-ucr-unknown-set"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, tmp_path, capsys):
    if case in NEEDS_AEON and importlib.util.find_spec("aeon") is None:
        pytest.skip("the set names are checked against aeon's, which is not installed")
    call, exc_type, fragment = CASES[case]
    with pytest.raises(exc_type) as info:
        call(tmp_path)
    if exc_type is SystemExit:
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("nftk: error:") and err.count("\n") == 1, err
        assert fragment in err and "Traceback" not in err
    else:
        assert re.search(re.escape(fragment), str(info.value)), str(info.value)


def test_table_matches_docs():
    doc = (ROOT / "docs" / "errors.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", doc, flags=re.MULTILINE))
    assert documented == set(CASES), (
        sorted(documented - set(CASES)),
        sorted(set(CASES) - documented),
    )
    assert len(CASES) >= 15
