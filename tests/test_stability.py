"""Stability of Omega over resampled validation splits."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from nftk_jax.mkl._stability import (
    omega_stability,
    rank_correlation,
    resample_splits,
    summarise_omegas,
)

from helpers import assert_close


def _planted(n, seed):
    """Two informative rank-1 layers (their sum is the label) and three noise ones."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    e = rng.normal(size=n)
    s = 2.0 * y - 1
    u1, u2 = 0.5 * s + e, 0.5 * s - e  # each alone is noisy, u1 + u2 = s
    layers = [rng.normal(size=n), u1, rng.normal(size=n), u2, rng.normal(size=n)]
    return np.stack([np.outer(v, v) for v in layers]), y


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_planted_problem_selects_informative_layers(seed):
    theta, y = _planted(60, seed)
    st = omega_stability(
        theta, y, ridge=0.1, n_resamples=5, steps=60, tol=1e-9,
        validation_fraction=0.3, threshold=0.01,
    )  # fmt: skip
    assert st.omegas.shape == (5, 2, 5)
    freq = st.selection_frequency
    assert np.all(freq[:, [1, 3]] == 1.0), freq
    assert np.all(freq[:, [0, 2, 4]] <= 0.2), freq
    assert np.all(st.lower <= st.mean) and np.all(st.mean <= st.upper)
    assert np.all(st.mean[:, [1, 3]] > 0.3)
    assert st.mean_rank_correlation > 0.6
    # Run 0 is fit_mkl's split: every run holds out a different stratified part.
    vals = [set(v.tolist()) for _, v in st.splits]
    assert len({frozenset(v) for v in vals}) == 5


def test_rank_correlation_matches_scipy():
    rng = np.random.default_rng(0)
    om = rng.uniform(size=(4, 3, 6))
    om[om < 0.4] = 0.0  # ties at zero
    got = rank_correlation(om)
    for c in range(3):
        ref = np.mean(
            [
                spearmanr(om[a, c], om[b, c])[0]
                for a in range(4)
                for b in range(a + 1, 4)
            ]
        )
        assert_close(got[c], ref, rtol=1e-12)


def test_summary_statistics():
    rng = np.random.default_rng(1)
    om = rng.uniform(size=(7, 2, 3))
    om[0, 0, 1] = 0.0
    st = summarise_omegas(om, confidence=0.9)
    assert_close(st.mean, om.mean(axis=0))
    assert_close(st.lower, np.quantile(om, 0.05, axis=0))
    assert_close(st.upper, np.quantile(om, 0.95, axis=0))
    assert st.selection_frequency[0, 1] == pytest.approx(6 / 7)
    big = summarise_omegas(om, threshold=0.5).selection_frequency
    assert np.all(big <= st.selection_frequency)


def test_resampled_splits_are_stratified_and_bootstrap():
    y = np.repeat([0, 1, 2], 20)
    splits = resample_splits(y, 3, validation_fraction=0.25, seed=4)
    for fit, val in splits:
        assert np.bincount(y[val]).tolist() == [5, 5, 5]
        assert not set(fit) & set(val)
    boot = resample_splits(y, 3, validation_fraction=0.25, seed=4, bootstrap=True)
    for (fit, val), (bfit, bval) in zip(splits, boot, strict=True):
        assert np.array_equal(val, bval) and set(bfit) <= set(fit)
        assert len(bfit) == len(fit) and len(set(bfit)) < len(fit)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_resamples": 1}, "n_resamples"),
        ({"confidence": 1.5}, "confidence"),
        ({"objective": "krr_dual"}, "val_mse"),
    ],
)
def test_bad_arguments(kwargs, match):
    theta, y = _planted(20, 0)
    with pytest.raises(ValueError, match=match):
        omega_stability(theta, y, ridge=0.1, **kwargs)
    with pytest.raises(ValueError, match="integer labels"):
        omega_stability(theta, y.astype(float), ridge=0.1)


def test_omega_agreement_against_scipy():
    from nftk_jax.experiment._agreement import omega_agreement

    rng = np.random.default_rng(2)
    a, b = rng.uniform(size=(2, 4, 5))
    res = omega_agreement(a, b)
    ref = [spearmanr(u, v)[0] for u, v in zip(a, b, strict=True)]
    assert_close(res["rank_correlation"], ref, rtol=1e-12)
    top = np.mean(np.argmax(a, 1) == np.argmax(b, 1))
    assert res["top_layer_agreement"] == top
    with pytest.raises(ValueError, match="both be"):
        omega_agreement(a, b[:, :3])
