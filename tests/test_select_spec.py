"""Kernel hyperparameters chosen by closed-form leave-one-out: brute-force refits,
a planted choice, sequences, errors."""

from __future__ import annotations

import numpy as np
import pytest

from nftk_jax import MLP, RNN, layerwise_kernels
from nftk_jax.core import NFTKInputError
from nftk_jax.data import resample_sequences
from nftk_jax.mkl import default_ridge_grid, select_spec

from helpers import assert_close

N = 30


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return x, y


def loo_refits(k, targets, ridge):
    """Leave-one-out predictions by ``n`` explicit refits without point ``i``."""
    n = k.shape[0]
    preds = np.empty_like(targets)
    for i in range(n):
        keep = np.arange(n) != i
        alpha = np.linalg.solve(
            k[np.ix_(keep, keep)] + ridge * np.eye(n - 1), targets[keep]
        )
        preds[i] = k[i, keep] @ alpha
    return preds


def test_scores_and_accuracy_equal_brute_force_refits():
    x, y = data()
    candidates = [MLP(2, b_std=0.1), MLP(2, activation="erf", W_std=1.0)]
    targets = np.eye(2)[y] - 0.5  # float targets: scored as given
    sel = select_spec(candidates, x, targets)
    for s, spec in enumerate(candidates):
        k = np.asarray(layerwise_kernels(spec, x)).mean(axis=0)
        grid = default_ridge_grid(float(np.mean(np.diag(k))))
        brute = [
            np.sum(np.mean((targets - loo_refits(k, targets, r)) ** 2, axis=0))
            for r in grid
        ]
        assert_close(sel.scores[s], min(brute), rtol=1e-7)
        assert_close(sel.ridges[s], grid[int(np.argmin(brute))])
    assert np.all(np.isnan(sel.loo_accuracy))  # float targets: no accuracy
    assert sel.spec is candidates[int(np.argmin(sel.scores))]

    labelled = select_spec(candidates, x, y)
    for s, spec in enumerate(candidates):
        k = np.asarray(layerwise_kernels(spec, x)).mean(axis=0)
        preds = loo_refits(k, np.eye(2)[y], labelled.ridges[s])
        assert_close(labelled.loo_accuracy[s], np.mean(preds.argmax(axis=1) == y))


def test_loo_accuracy_from_the_eigenvectors_equals_the_explicit_inverse():
    """The leave-one-out predictions select_spec takes from the selection's
    eigendecomposition equal those of an explicit n x n inverse, with three classes
    (one of them absent from the label range's start) and a relative ridge."""
    import jax.numpy as jnp

    from nftk_jax.mkl._ridge import _loo_predictions, select_ridge_and_loo_accuracy

    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, 6))
    y = 1 + np.digitize(x[:, 0] + 0.3 * x[:, 2], [-0.4, 0.4])  # labels 1, 2, 3
    theta = np.asarray(layerwise_kernels(MLP(3, b_std=0.2), x))
    k = theta.mean(axis=0)
    onehot = (y[:, None] == np.unique(y)[None, :]).astype(np.float64)
    sel, acc = select_ridge_and_loo_accuracy(theta, y, "loo")
    for ridge in (sel.ridge, 1e-3 * np.mean(np.diag(k))):
        inv = np.linalg.inv(k + ridge * np.eye(N))
        explicit = onehot - (inv @ onehot) / np.diag(inv)[:, None]
        s, u = np.linalg.eigh(k)
        eig = _loo_predictions(jnp.asarray(u), jnp.maximum(jnp.asarray(s), 0), onehot,
                               ridge)  # fmt: skip
        assert_close(np.asarray(eig), explicit, rtol=1e-8, atol=1e-10)
        if ridge == sel.ridge:
            want = np.mean(np.unique(y)[explicit.argmax(axis=1)] == y)
            assert acc == want
    assert select_spec([MLP(3, b_std=0.2)], x, y).loo_accuracy[0] == acc


def test_planted_memoryless_candidate_is_not_chosen():
    """The label is the sign of each sequence's first step. An RNN with recurrent
    scale 1e-3 carries that step into the last state only as (1e-3)^7, below
    float64 resolution, so its kernels hold no information about the label and
    leave-one-out must prefer the RNN that remembers (recurrent scale 1); the
    later steps are small noise."""
    rng = np.random.default_rng(1)
    seqs = rng.normal(size=(N, 8, 1)) * np.r_[1.0, np.full(7, 0.05)][:, None]
    y = (seqs[:, 0, 0] > 0).astype(int)
    candidates = [RNN(1, sigma_w=1e-3), RNN(1, sigma_w=1.0)]
    sel = select_spec(candidates, list(seqs), y)
    assert sel.index == 1 and sel.spec is candidates[1]
    assert sel.scores[0] > 1.2 * sel.scores[1]
    assert sel.loo_accuracy[1] > sel.loo_accuracy[0]


def test_rnn_candidates_on_sequences_of_different_lengths():
    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(int(t), 1)) for t in rng.integers(4, 9, size=20)]
    y = np.array([int(s[-1, 0] > 0) for s in seqs])  # the last step decides
    candidates = [RNN(2, sigma_w=1.0), RNN(2, sigma_w=1.4)]
    sel = select_spec(candidates, seqs, y)
    assert sel.scores.shape == (2,) and np.all(np.isfinite(sel.scores))
    assert sel.spec is candidates[sel.index]


def test_no_candidates_is_a_clear_error():
    x, y = data()
    with pytest.raises(NFTKInputError, match="candidates must hold at least one spec"):
        select_spec([], x, y)


def test_views_are_scored_like_separate_calls_and_the_best_pair_wins():
    """With a mapping of views, every (view, spec) pair gets the score a call on
    that view alone gives, view-major, and the winner names its view."""
    rng = np.random.default_rng(3)
    seqs = [rng.normal(size=(int(t), 1)) for t in rng.integers(6, 14, size=24)]
    y = np.array([int(s[-1, 0] > 0) for s in seqs])
    views = {"raw": seqs, "8 steps": resample_sequences(seqs, 8, flatten=False)}
    candidates = [RNN(2, sigma_w=1.0), RNN(2, activation="erf", sigma_w=1.4)]
    sel = select_spec(candidates, views, y)
    alone = [select_spec(candidates, v, y) for v in views.values()]
    assert sel.scores.shape == (4,)
    assert_close(sel.scores, np.concatenate([a.scores for a in alone]), rtol=1e-10)
    assert_close(sel.ridges, np.concatenate([a.ridges for a in alone]))
    best = int(np.argmin(sel.scores))
    assert sel.index == best and sel.spec is candidates[best % 2]
    assert sel.input == list(views)[best // 2]
    assert select_spec(candidates, seqs, y).input is None


@pytest.mark.parametrize(
    ("views", "match"),
    [
        ({}, "mapping of input views is empty"),
        ({"short": np.zeros((N - 1, 6))}, "view 'short' have 29 rows but y has 30"),
    ],
)
def test_bad_views_are_clear_errors(views, match):
    _, y = data()
    with pytest.raises(NFTKInputError, match=match):
        select_spec([MLP(2)], views, y)


def test_accuracy_criterion_takes_the_best_loo_accuracy_ties_by_score():
    x, y = data()
    specs = [MLP(2, b_std=b, activation=a) for a in ("relu", "erf") for b in (0.1, 1.0)]
    by_error = select_spec(specs, x, y)
    by_acc = select_spec(specs, x, y, criterion="accuracy")
    assert_close(by_acc.scores, by_error.scores, rtol=0)
    top = np.flatnonzero(by_acc.loo_accuracy == by_acc.loo_accuracy.max())
    assert by_acc.index == top[np.argmin(by_acc.scores[top])]
    assert by_error.index == int(np.argmin(by_error.scores))


def test_learn_omega_loo_lowers_the_brute_force_loo_error():
    from nftk_jax.linalg import encode_targets
    from nftk_jax.mkl import learn_omega_loo

    x, y = data(3)
    y = y + (x[:, 2] > 1)  # three classes
    th = np.asarray(layerwise_kernels(MLP(3), x))
    th = np.concatenate([th, np.eye(N)[None]])  # a useless layer
    res = learn_omega_loo(th, y, ridge=0.1, steps=60)
    assert_close(res.omega.sum(axis=1), np.ones(3), rtol=1e-12)
    assert np.all(res.omega >= 0) and np.all(np.diff(res.values) <= 1e-15)
    Y, _ = encode_targets(y, N)

    def refit_figures(omega):
        preds = np.stack(
            [
                loo_refits(np.einsum("l,lij->ij", omega[c], th), Y[:, c], 0.1)
                for c in range(3)
            ],
            axis=1,
        )
        return np.mean((Y - preds) ** 2), np.mean(np.argmax(preds, axis=1) == y)

    mse, acc = refit_figures(res.omega)
    assert_close(res.loo_mse, mse, rtol=1e-8)
    assert res.loo_accuracy == acc
    assert_close(res.values[0], refit_figures(np.full((3, 4), 0.25))[0], rtol=1e-8)
    assert res.loo_mse < 0.95 * res.values[0]
