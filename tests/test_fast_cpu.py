"""The compiled CPU kernel of the fast engine against its XLA program and stax.

``engine='fast'`` on CPU devices runs :mod:`nftk_jax.kernels._fast_cpu`;
``engine='fast_xla'`` runs the same recursion as one XLA program (the path on
accelerators). Here they are compared entry by entry, their symmetry and
duplicate handling checked exactly, and the compiled kernel's own finiteness
check exercised; the streamed products, which multiply each tile's heads as
they are computed, are compared with products of the dense kernels. Agreement
with neural-tangents over every activation, parameterisation and bias is in
tests/test_fast_kernels.py, which runs both.
"""

from __future__ import annotations

import numpy as np
import pytest

from nftk_jax import MLP, layerwise_kernels, layerwise_matvec
from nftk_jax.kernels import _layerwise
from nftk_jax.kernels._fast_cpu import cpu_kernel_available

from helpers import random_inputs

pytestmark = pytest.mark.skipif(
    not cpu_kernel_available(), reason="numba is not importable"
)

CASES = [
    ("relu", {}, "ntk", 0.1),
    ("leaky_relu", {"alpha": 0.2}, "standard", None),
    ("abrelu", {"a": 0.5, "b": 0.5}, "ntk", 0.0),  # linear
    ("abs", {}, "standard", 0.3),
    ("gelu", {}, "standard", 0.0),
]
# float32: the two implementations round differently (FMA contraction, the
# order of the vectorised loop); float64 keeps them within a few ulp
RTOL = {np.float32: 3e-6, np.float64: 1e-13}


def _inputs(n1=11, n2=8, m=6, seed=0):
    x1, x2 = random_inputs(n1, m, seed=seed), random_inputs(n2, m, seed=seed + 1)
    x1[4] = 0.0  # a zero row
    x1[6] = x1[2]  # a duplicate within x1
    x2[3] = x1[2]  # and across x1 and x2
    return x1, x2


def _spec(activation, kwargs, par, b_std, depth=10):
    return MLP(
        depth=depth,
        activation=activation,
        activation_kwargs=kwargs,
        parameterization=par,
        b_std=b_std,
        width=32,
        readout_W_std=0.9,
    )


def test_compiled_kernel_runs_on_cpu_devices():
    spec = MLP(depth=3)
    x = random_inputs(5, 4)
    for engine, host in (("auto", True), ("fast", True), ("fast_xla", False)):
        plan = _layerwise._TileOptions(None, None, None, False, engine).plan(
            spec, x, None
        )
        assert plan.host is host, engine
    for activation in ("sin", "erf"):  # no closed form; erf: see cpu_kernel_available
        plan = _layerwise._TileOptions(None, None, None, False, "auto").plan(
            MLP(depth=3, activation=activation), x, None
        )
        assert not plan.host


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation,kwargs,par,b_std", CASES)
def test_compiled_equals_xla_program(activation, kwargs, par, b_std, dtype):
    spec = _spec(activation, kwargs, par, b_std)
    x1, x2 = _inputs()
    for args in ((x1, x2), (x1, None)):
        got = {
            e: layerwise_kernels(
                spec, *args, get=("ntk", "nngp"), engine=e, dtype=dtype, devices=False
            )
            for e in ("fast", "fast_xla")
        }
        for a, b in zip(got["fast"], got["fast_xla"], strict=True):
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype == dtype
            scale = np.abs(b).max(axis=(1, 2), keepdims=True)
            err = np.abs(a.astype(np.float64) - b) / np.where(scale > 0, scale, 1)
            assert err.max() <= RTOL[dtype], err.max(axis=(1, 2))
        ntk = np.asarray(got["fast"][0])
        assert np.array_equal(ntk[:, 2], ntk[:, 6])  # duplicate rows, bit for bit
        if args[1] is not None:  # x2[3] is x1[2]: their entry is the diagonal one
            self_k = np.asarray(
                layerwise_kernels(spec, x1[2:3], get="ntk", dtype=dtype, devices=False)
            )
            np.testing.assert_allclose(ntk[:, 2, 3], self_k[:, 0, 0], rtol=RTOL[dtype])


@pytest.mark.parametrize("block_size", [None, 5])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu"])
def test_compiled_kernel_is_exactly_symmetric(activation, block_size):
    spec = MLP(depth=6, activation=activation)
    x = random_inputs(13, 9, seed=4).astype(np.float32)
    k = np.asarray(
        layerwise_kernels(
            spec, x, dtype=np.float32, devices=False, block_size=block_size
        )
    )
    assert np.array_equal(k, np.swapaxes(k, 1, 2))


def test_get_order_and_single_get():
    spec = MLP(depth=4)
    x1, x2 = _inputs(seed=5)
    both = layerwise_kernels(spec, x1, x2, get=("nngp", "ntk"), devices=False)
    rev = layerwise_kernels(spec, x1, x2, get=("ntk", "nngp"), devices=False)
    ntk = layerwise_kernels(spec, x1, x2, get="ntk", devices=False)
    np.testing.assert_array_equal(np.asarray(both[1]), np.asarray(rev[0]))
    np.testing.assert_array_equal(np.asarray(both[0]), np.asarray(rev[1]))
    np.testing.assert_array_equal(np.asarray(ntk), np.asarray(both[1]))


def test_compiled_kernel_reports_non_finite_values():
    spec = MLP(depth=40, W_std=5.0)  # grows 12.5x a layer: past float32's range
    x = random_inputs(6, 4, seed=6)
    with pytest.raises(ValueError, match="not finite in dtype=float32"):
        layerwise_kernels(spec, x, dtype=np.float32, devices=False, engine="fast")
    k = layerwise_kernels(spec, x, dtype=np.float64, devices=False, engine="fast")
    assert np.all(np.isfinite(np.asarray(k)))


def _dense_products(theta, v, omega):
    theta = np.asarray(theta, np.float64)
    if omega is None:
        return np.einsum("lij,jk->lik", theta, v)
    return np.einsum("cl,lij,jc->ic", omega, theta, v)


def _count_host_tiles(monkeypatch) -> list:
    calls = []
    real = _layerwise._host_tile_product

    def counting(plan, spec, i0, j0, *args):
        calls.append((i0, j0))
        return real(plan, spec, i0, j0, *args)

    monkeypatch.setattr(_layerwise, "_host_tile_product", counting)
    return calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("square", [True, False])
@pytest.mark.parametrize("activation,kwargs,par,b_std", CASES[:2] + CASES[4:])
def test_fused_products_equal_dense(
    activation, kwargs, par, b_std, square, weighted, dtype, monkeypatch
):
    # 23 rows in blocks of 7: padded tiles, three diagonal ones; zero and
    # duplicated rows within and across the inputs
    spec = _spec(activation, kwargs, par, b_std, depth=5)
    x1, x2 = _inputs(n1=23, n2=17, seed=7)
    x2 = None if square else x2
    rng = np.random.default_rng(8)
    v = rng.normal(size=(23 if square else 17, 3))
    omega = rng.uniform(size=(3, spec.depth)) if weighted else None
    theta = layerwise_kernels(spec, x1, x2, dtype=dtype, devices=False)
    calls = _count_host_tiles(monkeypatch)
    got = layerwise_matvec(
        spec, x1, v, x2=x2, omega=omega, block_size=7, dtype=dtype,
        product_dtype=np.float64, devices=False,
    )  # fmt: skip
    expected = _dense_products(theta, v, omega)
    # float32: the tiles' Gram matrices are other GEMMs than the dense one's
    tol = 1e-12 if dtype == np.float64 else 3e-6
    scale = np.abs(expected).max()
    np.testing.assert_allclose(np.asarray(got), expected, rtol=tol, atol=tol * scale)
    n_blocks = len({i0 for i0, _ in calls})
    if square:  # the tiles on and above the diagonal only
        assert all(j0 >= i0 for i0, j0 in calls)
        assert len(calls) == n_blocks * (n_blocks + 1) // 2 and n_blocks == 4
    else:
        assert len(calls) == 4 * 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_square_products_are_exactly_symmetric(dtype):
    x = random_inputs(29, 6, seed=9)
    x[5] = x[11]
    mv = layerwise_matvec(
        MLP(depth=4), x, np.eye(29), block_size=8, dtype=dtype, devices=False
    )
    mv = np.asarray(mv)  # the columns of every layer's kernel
    assert mv.dtype == dtype
    assert np.array_equal(mv, np.swapaxes(mv, -1, -2))
    dense = np.asarray(layerwise_kernels(MLP(depth=4), x, dtype=dtype, devices=False))
    tol = 3e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(mv, dense, rtol=tol, atol=tol * np.abs(dense).max())


def test_fused_products_report_non_finite_values():
    spec = MLP(depth=40, W_std=5.0)
    x = random_inputs(6, 4, seed=6)
    with pytest.raises(ValueError, match="not finite in dtype=float32"):
        layerwise_matvec(spec, x, np.ones((6, 1)), dtype=np.float32, devices=False)
