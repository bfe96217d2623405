"""UCR/UEA sets read offline from aeon's wheel (skipped without the extra)."""

from __future__ import annotations

import numpy as np
import pytest

from nftk_jax import RNN, layerwise_kernels
from nftk_jax.core import NFTKInputError
from nftk_jax.data import UCR_DATASETS, length_view, load_ucr, resample_sequences

from helpers import assert_close

aeon = pytest.importorskip("aeon")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "n_train", "n_test", "n_classes", "features"),
    [
        ("GunPoint", 50, 150, 2, 1),
        ("ItalyPowerDemand", 67, 1029, 2, 1),
        ("JapaneseVowels", 270, 370, 9, 12),
        ("PickupGestureWiimoteZ", 50, 50, 10, 1),
    ],
)
def test_official_splits_offline(
    name, n_train, n_test, n_classes, features, monkeypatch
):
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    ds = load_ucr(name)
    assert (len(ds.x_train), len(ds.x_test), len(ds.classes)) == (
        n_train,
        n_test,
        n_classes,
    )
    assert set(np.unique(ds.y_train)) | set(np.unique(ds.y_test)) <= set(
        range(n_classes)
    )
    lengths = {len(s) for s in ds.x_train + ds.x_test}
    for s in ds.x_train[:10] + ds.x_test[:10]:
        assert s.shape[1] == features and np.all(np.isfinite(s))
        assert_close(s.mean(axis=0), np.zeros(features), atol=1e-10)
        assert_close(s.std(axis=0), np.ones(features), rtol=1e-10)
    variable = name in ("JapaneseVowels", "PickupGestureWiimoteZ")
    assert (len(lengths) > 1) == variable


def test_all_listed_sets_are_shipped():
    import os

    import aeon.datasets

    base = os.path.join(os.path.dirname(aeon.datasets.__file__), "data")
    for name in UCR_DATASETS:
        assert os.path.isfile(os.path.join(base, name, f"{name}_TRAIN.ts")), name


def test_unknown_set_is_named():
    with pytest.raises(ValueError, match="name='NoSuchSet' is not a classification"):
        load_ucr("NoSuchSet")


def test_resample_sequences_linear():
    out = resample_sequences([np.array([[0.0, 1.0], [4.0, 1.0]]), np.ones((3, 2))], 5)
    assert out.shape == (2, 10)
    assert_close(out[0].reshape(5, 2)[:, 0], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert_close(out[1], np.ones(10))


def test_resampling_keeps_the_ends_and_maps_each_series_alone():
    """Invariants of the length views: the first and last steps are kept, a
    series already of the target length is unchanged, the unflattened form is
    the flattened one reshaped, and the view of a set is the stack of the views
    of its series (nothing of one series, e.g. a test series, leaks into another)."""
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(int(t), 2)) for t in (1, 5, 12, 40)]
    out = resample_sequences(seqs, 9, flatten=False)
    assert out.shape == (4, 9, 2)
    assert_close(out.reshape(4, -1), resample_sequences(seqs, 9))
    for s, row in zip(seqs, out, strict=True):
        assert_close(row[0], s[0])
        assert_close(row[-1], s[-1])
    assert_close(resample_sequences(seqs[1:2], 5, flatten=False)[0], seqs[1])
    alone = np.concatenate([length_view([s], 9) for s in seqs])
    assert_close(length_view(seqs, 9), alone)
    raw = length_view(seqs, None)
    assert [r.shape for r in raw] == [s.shape for s in seqs]
    univariate = resample_sequences([np.arange(6.0)], 3, flatten=False)
    assert_close(univariate[:, :, 0], [[0.0, 2.5, 5.0]])


def test_resampled_view_is_an_rnn_input_of_one_length():
    """A resampled view gives the same kernels as the list of its rows."""
    rng = np.random.default_rng(1)
    view = length_view([rng.normal(size=(int(t), 1)) for t in (4, 7, 11)], 6)
    spec = RNN(2, activation="erf")
    assert_close(
        layerwise_kernels(spec, view), layerwise_kernels(spec, list(view)), rtol=1e-12
    )


@pytest.mark.parametrize(
    ("seqs", "length", "match"),
    [
        ([np.ones(3)], 0, "length must be >= 1"),
        ([np.ones(3)], 2.5, "length must be an integer"),
        ([np.ones(3)], True, "length must be an integer"),
        ([], 4, "at least one sequence"),
        ([np.ones((0, 1))], 4, "non-empty"),
        ([np.ones((3, 1)), np.ones((3, 2))], 4, "same number of features"),
    ],
)
def test_resample_bad_input_is_named(seqs, length, match):
    with pytest.raises(NFTKInputError, match=match):
        resample_sequences(seqs, length)


@pytest.mark.parametrize(("arch", "length"), [("rnn", None), ("rnn", 8), ("mlp", 8)])
def test_cli_length_resamples_each_series(arch, length):
    from nftk_jax.cli._commands import _load_ucr
    from nftk_jax.model import pack_sequences

    ds = _load_ucr("ItalyPowerDemand", arch, length)
    seq = load_ucr("ItalyPowerDemand")
    if arch == "mlp":
        assert_close(ds.x_test, resample_sequences(seq.x_test, 8), rtol=0)
        assert ds.name == "ItalyPowerDemand (resampled to 8 steps)"
        return
    # the RNN reads what length_view gives, test series through the same map
    for x, raw in ((ds.x_train, seq.x_train), (ds.x_test, seq.x_test)):
        assert_close(x, pack_sequences(length_view(raw, length)), rtol=0)
    assert ds.name == (
        "ItalyPowerDemand"
        if length is None
        else "ItalyPowerDemand (resampled to 8 steps)"
    )


@pytest.mark.slow
def test_cli_fit_ucr_rnn_writes_fig2(tmp_path):
    from nftk_jax.cli import main

    code = main(
        [
            "fit", "--dataset", "ucr:ItalyPowerDemand", "--arch", "rnn",
            "--depth", "2", "--steps", "3", "--n-test", "60",
            "--out", str(tmp_path), "--name", "run",
        ]
    )  # fmt: skip
    assert code == 0
    run = tmp_path / "run"
    assert (run / "fig2_omega.png").is_file()
    config = (run / "config.json").read_text()
    assert '"arch": "rnn"' in config and "ItalyPowerDemand" in config
