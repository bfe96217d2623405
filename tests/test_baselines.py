"""Honest baselines: validation-selected depth, intervals and paired tests."""

import numpy as np
import pytest
from scipy.stats import binom, t

from nftk_jax.experiment._baselines import (
    honest_baselines,
    mcnemar_test,
    paired_bootstrap,
    select_depth_on_validation,
    t_interval,
)
from nftk_jax.mkl._stability import resample_splits

from helpers import assert_close


def test_t_interval_matches_scipy():
    v = np.array([0.91, 0.93, 0.92, 0.95, 0.90])
    m, lo, hi = t_interval(v, 0.9)
    ref = t.interval(0.9, len(v) - 1, loc=v.mean(), scale=v.std(ddof=1) / np.sqrt(5))
    assert_close([m, lo, hi], [v.mean(), *ref], rtol=1e-12)
    assert t_interval([0.5]) == (0.5, 0.5, 0.5)


def test_mcnemar_exact_p_value():
    a = np.array([1] * 7 + [0] * 2 + [1] * 10, dtype=bool)
    b = np.array([0] * 7 + [1] * 2 + [1] * 10, dtype=bool)
    res = mcnemar_test(a, b)
    assert (res["a_only"], res["b_only"]) == (7, 2)
    assert_close(res["p_value"], min(1.0, 2 * binom.cdf(2, 9, 0.5)), rtol=1e-12)
    assert mcnemar_test(a, a)["p_value"] == 1.0


def test_paired_bootstrap_agrees_with_normal_approximation():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=2000) < 0.9
    b = rng.uniform(size=2000) < 0.85
    est, lo, hi = paired_bootstrap(a, b, n_boot=4000)
    diff = a.astype(float) - b
    se = diff.std() / np.sqrt(len(diff))
    assert_close(est, diff.mean(), rtol=1e-12)
    assert_close([lo, hi], [est - 1.96 * se, est + 1.96 * se], rtol=0, atol=0.3 * se)


def _kernels(n, m, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n + m)
    centres = rng.normal(size=(3, 4))
    x = centres[y] + 0.8 * rng.normal(size=(n + m, 4))
    layers = []
    for scale in (0.3, 1.0, 3.0):  # layer 1 informative, layer 3 washed out
        z = x + rng.normal(size=x.shape) * scale
        layers.append(np.exp(-0.1 * np.sum((z[:, None] - z[None]) ** 2, axis=-1)))
    th = np.stack(layers)
    return th[:, :n, :n], th[:, n:, :n], y[:n], y[n:]


def _val_accuracy_reference(theta, y, fit, val, ridge):
    Y = np.eye(3)[y] - 1 / 3
    out = []
    for k in theta:
        a = np.linalg.solve(k[np.ix_(fit, fit)] + ridge * np.eye(len(fit)), Y[fit])
        out.append(np.mean(np.argmax(k[np.ix_(val, fit)] @ a, 1) == y[val]))
    return np.array(out)


def test_depth_is_selected_on_validation_not_test():
    th_tr, th_te, y_tr, y_te = _kernels(90, 60)
    fit, val = resample_splits(y_tr, 2, validation_fraction=0.3, seed=0)[0]
    best, acc = select_depth_on_validation(th_tr, y_tr, fit, val, ridge=0.1)
    ref = _val_accuracy_reference(th_tr, y_tr, fit, val, 0.1)
    assert_close(acc, ref, rtol=0, atol=0)
    assert acc[best] == ref.max()
    splits = resample_splits(y_tr, 3, validation_fraction=0.3, seed=0)
    omegas = np.stack([np.full((3, 3), 1 / 3)] * 3)
    res = honest_baselines(
        th_tr, th_te, y_tr, y_te, ridge=0.1, omegas=omegas, splits=splits
    )
    names = [r["name"] for r in res["rows"]]
    assert names[1] == "validation-selected single depth" and "oracle" in names[3]
    assert res["rows"][1]["depth"] == best + 1
    # Test accuracies are the dense references; the oracle is their maximum.
    Y = np.eye(3)[y_tr] - 1 / 3
    test_acc = [
        np.mean(np.argmax(k_te @ np.linalg.solve(k + 0.1 * np.eye(90), Y), 1) == y_te)
        for k, k_te in zip(th_tr, th_te, strict=True)
    ]
    assert_close(res["single_depth_test_accuracy"], test_acc, rtol=1e-12)
    assert res["rows"][3]["test_accuracy"] == max(test_acc)
    assert res["rows"][1]["test_accuracy"] == test_acc[best]
    # the learned Omega here is the uniform mix: identical predictions, p = 1
    assert res["paired_tests"]["vs_uniform"]["p_value"] == 1.0
    assert res["rows"][0]["test_accuracy"] == res["rows"][2]["test_accuracy"]
    assert len(res["rows"][0]["per_split"]) == 3


@pytest.mark.parametrize("confidence", [0.8, 0.99])
def test_intervals_widen_with_confidence(confidence):
    a = np.random.default_rng(3).uniform(size=500) < 0.8
    _, lo, hi = paired_bootstrap(a, confidence=confidence, seed=1)
    _, lo9, hi9 = paired_bootstrap(a, confidence=0.9, seed=1)
    assert (hi - lo > hi9 - lo9) == (confidence > 0.9)
