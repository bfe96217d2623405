"""Layerwise recurrent NTKs (RNTK) of an RNN spec against independent references.

References: a closed-form recursion for length-1 sequences written out here with
numpy, neural-tangents' MLP kernels (a length-1 RNN with no initial state is an
MLP), and empirical NTKs of wide finite RNNs.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import nftk_jax as nk
from nftk_jax.finite import head_empirical_ntks
from nftk_jax.finite._rnn_network import rnn_heads
from nftk_jax.model import pack_sequences, unpack_sequences

from helpers import assert_close, rel_err

RNG = np.random.default_rng(0)
SEQS = [RNG.normal(size=(t, 3)) for t in (1, 4, 7, 7, 2, 5)]


def _dual(activation, q1, q2, c):
    """E[phi(u) phi(v)], E[phi'(u) phi'(v)] for (u, v) ~ N(0, [[q1, c], [c, q2]])."""
    if activation == "relu":
        norm = np.sqrt(np.outer(q1, q2))
        cos = np.clip(c / norm, -1, 1)
        th = np.arccos(cos)
        k = norm * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
        return k, (np.pi - th) / (2 * np.pi)
    d = np.sqrt(np.outer(1 + 2 * q1, 1 + 2 * q2))
    k = 2 / np.pi * np.arcsin(2 * c / d)
    return k, 4 / np.pi / np.sqrt(d**2 - 4 * c**2)


def _length_one_reference(spec, x):
    """Heads for length-1 sequences: an MLP-like recursion with sigma_u on the input
    and the initial state's sigma_w^2 sigma_h^2 in every layer."""
    init = spec.sigma_w**2 * spec.sigma_h**2
    c = spec.sigma_u**2 * x @ x.T / x.shape[1] + spec.sigma_b**2 + init
    theta = c.copy()
    heads_ntk, heads_nngp = [], []
    for _ in range(spec.depth):
        q = np.diag(c).copy()
        k, kd = _dual(spec.activation, q, q, c)
        heads_nngp.append(spec.sigma_v**2 * k)
        heads_ntk.append(spec.sigma_v**2 * (k + kd * theta))
        c = spec.sigma_u**2 * k + spec.sigma_b**2 + init
        theta = c + spec.sigma_u**2 * kd * theta
    return np.stack(heads_ntk), np.stack(heads_nngp)


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("sigma_h", [0.0, 0.7])
def test_length_one_equals_closed_form(activation, sigma_h):
    spec = nk.RNN(
        depth=4, activation=activation, sigma_w=1.3, sigma_u=1.1, sigma_b=0.2,
        sigma_h=sigma_h, sigma_v=0.9,
    )  # fmt: skip
    x = RNG.normal(size=(6, 3))
    ntk, nngp = nk.layerwise_kernels(spec, list(x[:, None, :]), get=("ntk", "nngp"))
    ref_ntk, ref_nngp = _length_one_reference(spec, x)
    # arccos near 1 (a sequence with itself) amplifies round-off to ~1e-8.
    assert_close(ntk, ref_ntk, rtol=1e-7)
    assert_close(nngp, ref_nngp, rtol=1e-7)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_length_one_equals_neural_tangents_mlp(activation):
    spec = nk.RNN(depth=3, activation=activation, sigma_u=1.4, sigma_b=0.3)
    mlp = nk.MLP(depth=3, activation=activation, W_std=1.4, b_std=0.3)
    x = RNG.normal(size=(5, 4))
    ref = mlp.network().kernel_fn(x, None, "ntk")
    assert_close(nk.layerwise_kernels(spec, list(x[:, None, :])), ref, rtol=1e-7)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_symmetric_psd_and_cross_consistent(activation):
    spec = nk.RNN(depth=3, activation=activation, sigma_h=0.5)
    k = np.asarray(nk.layerwise_kernels(spec, SEQS))
    assert_close(k, np.swapaxes(k, 1, 2), rtol=0, atol=0)
    for kl in k:
        assert np.linalg.eigvalsh(kl).min() > -1e-10 * np.abs(kl).max()
    cross = nk.layerwise_kernels(spec, SEQS[:3], SEQS)
    assert_close(cross, k[:, :3], rtol=1e-12)


@pytest.mark.parametrize("block_size", [2, 4])
def test_tiled_and_sharded_equal_one_tile(block_size):
    spec = nk.RNN(depth=2, activation="erf", sigma_h=0.3)
    full = nk.layerwise_kernels(spec, SEQS, devices=False)
    tiled = nk.layerwise_kernels(spec, SEQS, block_size=block_size)
    assert_close(tiled, full, rtol=1e-12)
    v = RNG.normal(size=(len(SEQS), 2))
    mv = nk.layerwise_matvec(spec, SEQS, v, block_size=block_size)
    assert_close(mv, np.asarray(full) @ v, rtol=1e-10)


def test_padding_invariance():
    spec = nk.RNN(depth=2, activation="relu", sigma_h=0.4)
    t_max = 9
    padded = RNG.normal(size=(len(SEQS), t_max, 3)) * 100  # junk past each length
    lengths = np.array([len(s) for s in SEQS])
    for i, s in enumerate(SEQS):
        padded[i, : len(s)] = s
    ref = nk.layerwise_kernels(spec, SEQS)
    assert_close(nk.layerwise_kernels(spec, (padded, lengths)), ref, rtol=1e-12)
    assert_close(nk.layerwise_kernels(spec, pack_sequences(padded, lengths)), ref)
    # One sequence against itself, inside sets of different padded lengths.
    longer = [*SEQS[1:2], RNG.normal(size=(30, 3))]
    k_short = nk.layerwise_kernels(spec, SEQS[1:2], SEQS[1:2])
    k_long = nk.layerwise_kernels(spec, SEQS[1:2], longer)
    assert_close(k_long[:, :, :1], k_short, rtol=1e-12)
    assert_close(unpack_sequences(pack_sequences(SEQS))[3], SEQS[3], rtol=0)


def test_end_alignment_and_initial_state():
    """Sequences are compared from their last step: a common prefix does not
    matter, a common suffix does; with sigma_h = 0 a sequence of zeros padded in
    front (with sigma_b = 0) is the same sequence."""
    spec = nk.RNN(depth=2, activation="relu", sigma_b=0.0, sigma_h=0.0)
    s = RNG.normal(size=(4, 2))
    front = np.concatenate([np.zeros((3, 2)), s])
    other = [RNG.normal(size=(5, 2))]
    assert_close(
        nk.layerwise_kernels(spec, [front], other),
        nk.layerwise_kernels(spec, [s], other),
        rtol=1e-12,
    )


def _empirical_heads(spec, packed, seeds):
    heads = rnn_heads(spec)

    @jax.jit
    def ntk(params):
        jac = jax.jacrev(lambda p: heads(p, packed)[:, :, 0])(params)
        out = 0.0
        for j in jax.tree_util.tree_leaves(jac):
            j = j.reshape(j.shape[0], j.shape[1], -1)
            out = out + jax.numpy.einsum("lia,lja->lij", j, j)
        return out

    net = nk.nftk_network(spec, 1)
    m = int(packed[0, 1])
    return [np.asarray(ntk(net.init_fn(jax.random.key(s), m))) for s in seeds]


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_empirical_ntk_converges_to_heads(activation):
    """Error of wide finite RNNs falls roughly like width^-1/2 (unequal lengths).

    The sequences come from their own seeded generator (not the module's, whose
    state depends on which tests ran before in the same worker) and the error is
    averaged over 8 initialisations: with 4, the width-64 error is heavy-tailed
    enough that the fitted slope left the band for some sequence draws."""
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(t, 2)) for t in (1, 3, 3, 5)]
    packed = pack_sequences(seqs)
    widths = (64, 256, 1024)
    errs = []
    for width in widths:
        spec = nk.RNN(
            depth=2, activation=activation, sigma_w=1.2, sigma_b=0.3, sigma_h=0.5,
            width=width,
        )  # fmt: skip
        ref = np.asarray(nk.layerwise_kernels(spec, seqs))
        emp = _empirical_heads(spec, packed, seeds=range(8))
        errs.append(np.mean([rel_err(e, ref) for e in emp]))
    slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
    assert -0.8 < slope < -0.3, (errs, slope)
    assert errs[-1] < 0.15, errs
    # The library's own empirical NTK agrees with the direct Jacobian product.
    spec = nk.RNN(depth=2, activation=activation, width=64, sigma_h=0.5)
    params = nk.nftk_network(spec, 1).init_fn(jax.random.key(0), 2)
    lib = head_empirical_ntks(spec, params, seqs, implementation=1)
    assert_close(lib, _empirical_heads(spec, packed, [0])[0], rtol=1e-8)


def _bad(seqs=None, x2=None, **kw):
    spec = nk.RNN(depth=2)
    return nk.layerwise_kernels(spec, SEQS if seqs is None else seqs, x2, **kw)


@pytest.mark.parametrize(
    ("call", "exc", "fragment"),
    [
        (lambda: _bad([]), ValueError, "x1 is empty"),
        (lambda: _bad([np.ones((2, 3)), np.ones((0, 3))]), ValueError, "x1[1] is an"),
        (lambda: _bad([np.ones((2, 3)), np.ones((2, 4))]), ValueError, "x1[1] has 4"),
        (lambda: _bad(x2=[np.ones((2, 4))]), ValueError, "x2 has 4 features"),
        (lambda: _bad([np.array([[1.0, math.nan, 0.0]])]), ValueError, "NaN"),
        (
            lambda: _bad((np.ones((2, 3, 3)), np.array([1, 4]))),
            ValueError,
            "lengths of x1 must be integers in [1, 3]",
        ),
        (
            lambda: _bad((np.ones((2, 3, 3)), np.array([1, 2, 3]))),
            ValueError,
            "lengths of x1 must have shape (2,)",
        ),
        (lambda: _bad(np.full((3, 5), 0.5)), ValueError, "not a valid packed sequence"),
        (lambda: nk.RNN(depth=2, activation="gelu"), ValueError, "activation='gelu'"),
    ],
)
def test_bad_input_is_named(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value)


def test_fit_mkl_and_predict_take_sequences():
    """fit_mkl on an RNN spec: streamed predictions equal the dense kernel path,
    also with a separately given validation set of another padded length."""
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(int(t), 2)) for t in rng.integers(1, 6, size=16)]
    y = np.array([int(s[-1, 0] > 0) for s in seqs])
    test = [rng.normal(size=(int(t), 2)) for t in (2, 9, 4)]
    spec = nk.RNN(depth=2, activation="erf")
    res = nk.fit_mkl(spec, seqs, y, ridge=1e-2, relative_ridge=True, steps=5)
    dense = res.predict_kernels(nk.layerwise_kernels(spec, test, seqs))
    assert_close(res.predict(test), dense, rtol=1e-8)
    res_val = nk.fit_mkl(
        spec, seqs[:10], y[:10], x_val=test + seqs[10:], y_val=np.r_[0, 1, 0, y[10:]],
        ridge=1e-2, steps=3,
    )  # fmt: skip
    assert res_val.omega.shape == (2, 2)


def test_train_network_on_sequences_fits():
    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(int(t), 2)) for t in rng.integers(1, 5, size=12)]
    y = np.array([int(s[-1, 0] > 0) for s in seqs])
    spec = nk.RNN(depth=2, activation="relu", width=64)
    out = nk.train_network(
        spec, seqs, y, omega=np.full((2, 2), 0.5), steps=40, learning_rate=0.5
    )
    assert out.history.loss[-1] < 0.5 * out.history.loss[0]
    assert out.predict(seqs).shape == (12, 2)


@pytest.mark.slow
def test_compare_widths_and_estimator_take_an_rnn():
    rng = np.random.default_rng(3)
    seqs = [rng.normal(size=(int(t), 1)) for t in rng.integers(2, 6, size=14)]
    y = np.array([int(s[-1, 0] > 0) for s in seqs])
    spec = nk.RNN(depth=2, activation="erf")
    study = nk.compare_widths(
        spec, np.full((2, 2), 0.5), seqs[:10], y[:10], seqs[10:], y[10:],
        ridge=0.1, widths=(16, 256), steps=100,
    )  # fmt: skip
    assert study.pred_gap[1, 0] < study.pred_gap[0, 0]
    clf = nk.NFTKClassifier(spec, steps=3, ridge=1e-2).fit(seqs, y)
    assert clf.n_features_in_ == 1
    assert clf.predict(seqs[:3]).shape == (3,)
