"""The layerwise kernel engine against independent references.

References: neural-tangents' stand-alone depth-l networks, a closed-form NNGP/NTK
recursion written here in NumPy, the empirical NTK of the finite network, and dense
evaluation for the tiled, sharded and streamed paths.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from nftk_jax import MLP, layerwise_kernels, layerwise_matvec
from nftk_jax.kernels import _layerwise as _kernels
from nftk_jax.kernels import kernel_tiles
from nftk_jax.model._compat import nt

from helpers import ACTIVATIONS, PARAMETERIZATIONS, assert_close, random_inputs, rel_err

# neural-tangents computes sqrt(prod - nngp**2) in the arc-cosine formulas. On the
# diagonal of an x-vs-x kernel that difference is a cancellation to ~0, so jitted and
# non-jitted (or differently fused) evaluations of the same diagonal entry agree only
# to ~1e-7 relative in float64; off-diagonal entries agree to ~1e-15.
DIAG_RTOL = 1e-6
X64_RTOL = 1e-10


def _assert_kernel_close(actual, expected, *, rtol=X64_RTOL, diag_rtol=DIAG_RTOL):
    """Off-diagonals to ``rtol``; diagonals of square blocks to ``diag_rtol``."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = np.abs(expected).max()
    n = min(actual.shape[-2:])
    off = ~np.eye(actual.shape[-2], actual.shape[-1], dtype=bool)
    assert_close(actual[..., off], expected[..., off], rtol=rtol, atol=rtol * scale)
    diag = np.arange(n)
    assert_close(
        actual[..., diag, diag],
        expected[..., diag, diag],
        rtol=diag_rtol,
        atol=diag_rtol * scale,
    )


# -- (a) every head equals the stand-alone depth-l network ------------------------


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_heads_equal_standalone_depth_kernels(activation, parameterization):
    spec = MLP(depth=3, activation=activation, parameterization=parameterization)
    x1, x2 = random_inputs(5, 4, seed=1), random_inputs(3, 4, seed=2)
    nngp, ntk = layerwise_kernels(spec, x1, x2, get=("nngp", "ntk"), devices=False)
    self_ntk = layerwise_kernels(spec, x1, devices=False)
    for depth in range(1, spec.depth + 1):
        ref_fn = jax.jit(spec.single_depth(depth)[2], static_argnums=2)
        ref = ref_fn(x1, x2, ("nngp", "ntk"))
        assert_close(nngp[depth - 1], ref.nngp, rtol=X64_RTOL)
        assert_close(ntk[depth - 1], ref.ntk, rtol=X64_RTOL)
    _assert_kernel_close(self_ntk[-1], ref_fn(x1, None, "ntk"))


# -- (b) closed-form arc-cosine / arcsine recursions -------------------------------


def _relu_expectations(q1, q2, c12):
    """E[relu(u) relu(v)], E[relu'(u) relu'(v)]; (u, v) ~ N(0, [[q1, c], [c, q2]])."""
    norm = np.sqrt(np.outer(q1, q2))
    theta = np.arccos(np.clip(c12 / norm, -1.0, 1.0))
    k = norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
    kdot = (np.pi - theta) / (2 * np.pi)
    return k, kdot


def _erf_expectations(q1, q2, c12):
    """E[erf(u) erf(v)] and E[erf'(u) erf'(v)] (Williams 1997 arcsine kernel)."""
    prod = np.outer(1 + 2 * q1, 1 + 2 * q2)
    k = 2 / np.pi * np.arcsin(2 * c12 / np.sqrt(prod))
    kdot = 4 / np.pi / np.sqrt(prod - 4 * c12**2)
    return k, kdot


def _closed_form(x1, x2, depth, expectations, *, W_std, b_std, readout_W_std):
    """NTK-parameterised NNGP/NTK of every head, with stax.Dense's conventions.

    Dense with fan-in m: pre-activation covariance W_std**2 * K / m-normalised input
    kernel + b_std**2 (the input kernel is x1 x2^T / m); NTK of the layer adds the
    new covariance to W_std**2 times the incoming NTK. The bias-free readout gives
    Theta_l = readout_W_std**2 * (K_l + Theta_post_l).
    """
    m = x1.shape[1]
    b2 = 0.0 if b_std is None else b_std**2
    k12, k1, k2 = x1 @ x2.T / m, np.sum(x1**2, 1) / m, np.sum(x2**2, 1) / m
    ntk = np.zeros_like(k12)
    nngps, ntks = [], []
    for _ in range(depth):
        c12, q1, q2 = W_std**2 * k12 + b2, W_std**2 * k1 + b2, W_std**2 * k2 + b2
        pre_ntk = c12 + W_std**2 * ntk
        k12, kdot = expectations(q1, q2, c12)
        k1 = np.diag(expectations(q1, q1, np.diag(q1))[0])
        k2 = np.diag(expectations(q2, q2, np.diag(q2))[0])
        ntk = pre_ntk * kdot
        nngps.append(readout_W_std**2 * k12)
        ntks.append(readout_W_std**2 * (k12 + ntk))
    return np.stack(nngps), np.stack(ntks)


CLOSED_FORMS = [("relu", _relu_expectations), ("erf", _erf_expectations)]
HYPERS = [
    {"W_std": math.sqrt(2.0), "b_std": 0.1, "readout_W_std": 1.0},
    {"W_std": 1.3, "b_std": None, "readout_W_std": 0.7},
    {"W_std": 0.8, "b_std": 0.5, "readout_W_std": 2.0},
]


@pytest.mark.parametrize("hyper", HYPERS)
@pytest.mark.parametrize("activation,expectations", CLOSED_FORMS)
def test_closed_form_recursion(activation, expectations, hyper):
    spec = MLP(depth=4, activation=activation, **hyper)
    x1, x2 = random_inputs(6, 5, seed=3), random_inputs(4, 5, seed=4)
    nngp, ntk = layerwise_kernels(spec, x1, x2, get=("nngp", "ntk"), devices=False)
    ref_nngp, ref_ntk = _closed_form(x1, x2, 4, expectations, **hyper)
    assert_close(nngp, ref_nngp, rtol=1e-10)
    assert_close(ntk, ref_ntk, rtol=1e-10)


# -- (c) the finite network's empirical NTK converges to Theta_l --------------------


def _empirical_error(width: int, seeds, x) -> float:
    spec = MLP(depth=3, width=width, W_std=math.sqrt(2.0), b_std=0.1)
    net = spec.network(out_dim=1)
    theta = np.asarray(layerwise_kernels(spec, x, devices=False))
    errs = []
    for seed in seeds:
        _, params = net.init_fn(jax.random.PRNGKey(seed), x.shape)
        for head in range(spec.depth):

            def f(p, z, head=head):
                return net.apply_fn(p, z)[head]

            emp = nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0)(x, None, params)
            errs.append(rel_err(emp, theta[head]))
    return float(np.mean(errs))


def test_empirical_ntk_converges_with_width():
    x = random_inputs(4, 3, seed=5)
    narrow = _empirical_error(128, seeds=(0, 1, 2), x=x)
    wide = _empirical_error(1024, seeds=(0, 1, 2), x=x)
    # Fluctuations shrink like 1/sqrt(width): expect about sqrt(8) ~ 2.8x.
    assert wide < narrow / 1.5, (narrow, wide)
    assert wide < 0.1, wide


# -- (d) tiling, sharding, symmetry, dtype, gets, matvec ---------------------------

SPEC = MLP(depth=3, activation="erf", b_std=0.2)


@pytest.mark.parametrize("block_size", [3, 7, 16, 64])
@pytest.mark.parametrize("symmetric", [True, False])
def test_tiled_equals_untiled(block_size, symmetric):
    x1 = random_inputs(23, 4, seed=6)
    x2 = None if symmetric else random_inputs(17, 4, seed=7)
    full = layerwise_kernels(SPEC, x1, x2, block_size=10_000, devices=False)
    tiled = layerwise_kernels(SPEC, x1, x2, block_size=block_size, devices=False)
    _assert_kernel_close(tiled, full, rtol=1e-13)
    streamed = np.zeros_like(np.asarray(full))
    for tile in kernel_tiles(SPEC, x1, x2, block_size=block_size, devices=False):
        streamed[:, tile.rows, tile.cols] = np.asarray(tile.values)
    _assert_kernel_close(streamed, full, rtol=1e-13)


@pytest.mark.parametrize("block_size", [None, 8, 9])
def test_sharded_equals_unsharded(block_size):
    assert len(jax.local_devices()) == 4
    x1, x2 = random_inputs(21, 4, seed=8), random_inputs(10, 4, seed=9)
    for x_other in (x2, None):
        sharded = layerwise_kernels(SPEC, x1, x_other, block_size=block_size)
        plain = layerwise_kernels(
            SPEC, x1, x_other, block_size=block_size, devices=False
        )
        _assert_kernel_close(sharded, plain, rtol=1e-13)


@pytest.mark.parametrize("activation", ["relu", "erf", "gelu"])
def test_self_kernel_symmetric_psd(activation):
    x = random_inputs(30, 6, seed=10)
    k = np.asarray(
        layerwise_kernels(MLP(depth=4, activation=activation), x, block_size=8)
    )
    assert np.array_equal(k, np.swapaxes(k, -1, -2))
    for layer in k:
        eig = np.linalg.eigvalsh(layer)
        assert eig.min() >= -1e-10 * eig.max(), eig.min()


def test_float32_path():
    x = random_inputs(12, 5, seed=11)
    k32 = layerwise_kernels(SPEC, x, dtype=np.float32, block_size=5)
    k64 = layerwise_kernels(SPEC, x, dtype=np.float64)
    assert k32.dtype == np.float32
    assert 1e-9 < rel_err(k32, k64) < 1e-5  # really float32, and accurate as such
    mv = layerwise_matvec(SPEC, x, np.ones((12, 2)), dtype=np.float32)
    assert mv.dtype == np.float32


def test_get_tuple_matches_single_gets():
    x1, x2 = random_inputs(7, 3, seed=12), random_inputs(5, 3, seed=13)
    both = layerwise_kernels(SPEC, x1, x2, get=("ntk", "nngp"), block_size=4)
    assert isinstance(both, tuple) and len(both) == 2
    assert_close(both[0], layerwise_kernels(SPEC, x1, x2, get="ntk"))
    assert_close(both[1], layerwise_kernels(SPEC, x1, x2, get="nngp"))
    assert rel_err(both[0], both[1]) > 0.1


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block_size", [4, 7, 100])
def test_matvec_equals_dense(weighted, block_size):
    rng = np.random.default_rng(14)
    x1, x2 = random_inputs(13, 4, seed=15), random_inputs(11, 4, seed=16)
    v = rng.normal(size=(11, 3))
    omega = rng.uniform(size=(3, SPEC.depth)) if weighted else None
    theta = np.asarray(layerwise_kernels(SPEC, x1, x2, devices=False))
    got = layerwise_matvec(
        SPEC, x1, v, x2=x2, omega=omega, block_size=block_size, progress=True
    )
    if weighted:
        expected = np.einsum("cl,lij,jc->ic", omega, theta, v)
    else:
        expected = np.einsum("lij,jk->lik", theta, v)
    assert_close(got, expected, rtol=1e-12)


def _count_tiles(monkeypatch) -> list:
    """Record every kernel tile evaluation ``(i0, j0)`` the engine makes."""
    calls = []
    real = _kernels._padded_tile

    def counting(plan, i0, j0):
        calls.append((i0, j0))
        return real(plan, i0, j0)

    monkeypatch.setattr(_kernels, "_padded_tile", counting)
    return calls


@pytest.mark.parametrize("devices", [False, None])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block_size", [4, 7, 9])
def test_symmetric_matvec_equals_dense(weighted, block_size, devices, monkeypatch):
    # n = 23 is a multiple of no block size (nor of the 4 devices): padded tiles.
    rng = np.random.default_rng(18)
    x = random_inputs(23, 4, seed=19)
    v = rng.normal(size=(23, 3))
    omega = rng.uniform(size=(3, SPEC.depth)) if weighted else None
    theta = np.asarray(layerwise_kernels(SPEC, x, devices=False))
    calls = _count_tiles(monkeypatch)
    got = layerwise_matvec(
        SPEC, x, v, omega=omega, block_size=block_size, devices=devices
    )
    if weighted:
        expected = np.einsum("cl,lij,jc->ic", omega, theta, v)
    else:
        expected = np.einsum("lij,jk->lik", theta, v)
    scale = np.abs(expected).max()
    assert_close(got, expected, rtol=1e-10, atol=1e-10 * scale)
    # Only the tiles on and above the diagonal: B (B + 1) / 2 of B**2.
    assert all(j0 >= i0 for i0, j0 in calls)
    n_blocks = len({i0 for i0, _ in calls})
    assert len(calls) == n_blocks * (n_blocks + 1) // 2 and n_blocks >= 3


def test_symmetric_matvec_is_exactly_symmetric():
    x = random_inputs(19, 4, seed=20)
    eye = np.eye(19)
    mv = np.asarray(layerwise_matvec(SPEC, x, eye, block_size=5))  # columns of Theta
    assert np.array_equal(mv, np.swapaxes(mv, -1, -2))


def test_float32_tiles_float64_products():
    rng = np.random.default_rng(21)
    x1, x2 = random_inputs(13, 4, seed=22), random_inputs(11, 4, seed=23)
    v = rng.normal(size=(11, 2))
    theta32 = layerwise_kernels(SPEC, x1, x2, block_size=5, dtype=np.float32)
    got = layerwise_matvec(
        SPEC, x1, v, x2=x2, block_size=5, dtype=np.float32, product_dtype=np.float64
    )
    assert got.dtype == np.float64
    expected = np.einsum("lij,jk->lik", np.asarray(theta32, np.float64), v)
    assert_close(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


def test_progress_bar(capsys):
    x = random_inputs(10, 3, seed=17)
    with_bar = layerwise_kernels(SPEC, x, block_size=4, progress=True)
    assert "kernel tiles" in capsys.readouterr().err
    assert_close(with_bar, layerwise_kernels(SPEC, x, block_size=4))


# -- (e) input validation names the argument ----------------------------------------

X = random_inputs(4, 3)
BAD_CALLS = [
    # (call, argument name the message must contain)
    (lambda: layerwise_kernels(SPEC, X[0]), "x1"),
    (lambda: layerwise_kernels(SPEC, X[None]), "x1"),
    (lambda: layerwise_kernels(SPEC, X, random_inputs(4, 5)), "x2"),
    (lambda: layerwise_kernels(SPEC, np.where(X > 0, np.nan, X)), "x1"),
    (lambda: layerwise_kernels(SPEC, X, np.full((2, 3), np.inf)), "x2"),
    (lambda: layerwise_kernels(SPEC, np.zeros((0, 3))), "x1"),
    (lambda: layerwise_kernels(SPEC, np.zeros((3, 0))), "x1"),
    (lambda: layerwise_kernels(MLP(depth=0), X), "depth"),
    (lambda: layerwise_kernels(MLP(depth=2, width=0), X), "width"),
    (lambda: layerwise_kernels(MLP(depth=2, activation="tanh"), X), "activation"),
    (lambda: layerwise_kernels(SPEC, X, block_size=0), "block_size"),
    (lambda: layerwise_kernels(SPEC, X, block_size=-4), "block_size"),
    (lambda: layerwise_kernels(SPEC, X, memory_budget=100), "memory_budget"),
    (lambda: layerwise_kernels(SPEC, X, memory_budget=0), "memory_budget"),
    (lambda: layerwise_kernels(SPEC, X, get="cov"), "get"),
    (lambda: layerwise_kernels(SPEC, X, devices=[]), "devices"),
    (lambda: layerwise_kernels(SPEC, X, dtype=np.float16), "dtype"),
    (
        lambda: layerwise_matvec(SPEC, X, np.ones((5, 2))),
        r"^v must have shape \(4, k\)",
    ),
    (
        lambda: layerwise_matvec(SPEC, X, np.ones((4, 2)), product_dtype=np.int32),
        "product_dtype",
    ),
    (
        lambda: layerwise_matvec(SPEC, X, np.ones((4, 2)), omega=np.ones((2, 2))),
        "omega",
    ),
    (lambda: next(kernel_tiles(SPEC, X, block_size=0)), "block_size"),
]


@pytest.mark.parametrize("call,name", BAD_CALLS)
def test_invalid_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_depth_one_has_a_layer_axis(get):
    spec = MLP(depth=1)
    x1, x2 = random_inputs(4, 3, seed=1), random_inputs(2, 3, seed=2)
    k = layerwise_kernels(spec, x1, x2, get=get)
    assert k.shape == (1, 4, 2)
    # x1 != x2: no diagonal entries, so the float64 tolerance of the head test holds.
    assert_close(k[0], spec.single_depth(1)[2](x1, x2, get), rtol=X64_RTOL)
    assert layerwise_kernels(spec, x1, get=get).shape == (1, 4, 4)
