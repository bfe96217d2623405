"""The fast closed-form kernel engine against neural-tangents and exact references.

References: neural-tangents' ``kernel_fn`` (``engine='stax'``) everywhere but on
(near-)duplicate pairs, where its ``arccos(1 - eps)`` is the less accurate one; there
an exact diagonal recursion written here in NumPy (closed forms, or Gauss-Hermite
quadrature for GELU) and an extended-precision (``np.longdouble``) recursion.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nftk_jax import MLP, layerwise_kernels, layerwise_matvec
from nftk_jax.kernels._fast import fast_kernel_fn, resolve_engine
from nftk_jax.kernels._special import arccos, atan2, atan2_nonneg

from helpers import assert_close, random_inputs

# (activation, activation_kwargs): every fast activation and its parameters.
FAST_CASES = [
    ("relu", {}),
    ("leaky_relu", {"alpha": 0.2}),
    ("abrelu", {"a": -0.3, "b": 0.7}),
    ("abrelu", {"a": 0.5, "b": 0.5}),  # linear: no angle at all
    ("abs", {}),
    ("erf", {}),
    ("erf", {"a": 1.3, "b": 0.7, "c": 0.2}),
    ("gelu", {}),
]
B_STDS = (None, 0.0, 0.3)
# the exact-diagonal cases run without the slow mark (the others are slow)
QUICK_DIAG = {("relu", np.float32), ("erf", np.float64), ("gelu", np.float32)}
PARAMS = ("ntk", "standard")
# 'fast' runs the compiled CPU kernel here (CPU devices); 'fast_xla' the XLA program
FAST_ENGINES = ("fast", "fast_xla")


def _inputs(seed: int = 0):
    """Rectangular inputs with a shared row, a duplicated row and a zero row."""
    x1, x2 = random_inputs(9, 6, seed=seed), random_inputs(7, 6, seed=seed + 1)
    x2[1] = x1[2]
    x1[5] = x1[7]
    x1[4] = 0.0
    return x1, x2


def _dup_mask(x1, x2):
    return np.all(x1[:, None, :] == x2[None, :, :], axis=-1)


def _check_vs_stax(spec, x1, x2, *, dtype, rtol):
    """Both fast engines (compiled CPU kernel, XLA program) vs stax (float64) on
    every entry but exact-duplicate pairs."""
    fast, fast_xla = (
        layerwise_kernels(
            spec, x1, x2, get=("nngp", "ntk"), engine=e, dtype=dtype, devices=False
        )
        for e in FAST_ENGINES
    )
    ref = layerwise_kernels(
        spec,
        x1,
        x2,
        get=("nngp", "ntk"),
        engine="stax",
        dtype=np.float64,
        devices=False,
    )
    keep = ~_dup_mask(x1, x1 if x2 is None else x2)
    for f, r in zip((*fast, *fast_xla), (*ref, *ref), strict=True):
        assert f.dtype == dtype
        f, r = np.asarray(f, np.float64), np.asarray(r)
        scale = np.abs(r).max(axis=(1, 2), keepdims=True)
        err = np.abs(f - r) / np.where(scale > 0, scale, 1)
        assert err[:, keep].max() <= rtol, err[:, keep].max(axis=1)
    return fast


# Every activation once, cycling through parameterisations and biases; the full
# cross product is the slow test below.
QUICK = [
    (act, kw, PARAMS[i % 2], B_STDS[i % 3]) for i, (act, kw) in enumerate(FAST_CASES)
]
FULL = [
    (act, kw, par, b)
    for act, kw in FAST_CASES
    for par in PARAMS
    for b in B_STDS
    if (act, kw, par, b) not in QUICK
]


@pytest.mark.parametrize("activation,kwargs,parameterization,b_std", QUICK)
def test_fast_equals_stax(activation, kwargs, parameterization, b_std):
    _fast_vs_stax_depth_3(activation, kwargs, parameterization, b_std)


@pytest.mark.slow
@pytest.mark.parametrize("activation,kwargs,parameterization,b_std", FULL)
def test_fast_equals_stax_all_combinations(activation, kwargs, parameterization, b_std):
    _fast_vs_stax_depth_3(activation, kwargs, parameterization, b_std)


def _fast_vs_stax_depth_3(activation, kwargs, parameterization, b_std):
    spec = MLP(
        depth=3,
        width=64,
        activation=activation,
        activation_kwargs=kwargs,
        b_std=b_std,
        parameterization=parameterization,
        readout_W_std=0.8,
    )
    x1, x2 = _inputs()
    _check_vs_stax(spec, x1, x2, dtype=np.float64, rtol=1e-12)
    _check_vs_stax(spec, x1, None, dtype=np.float64, rtol=1e-12)


# Depths 1 to 50 in both dtypes; each case cycles through one parameterisation and
# bias (the full cross product compiled hundreds of stax programs).
PAR_BIAS = (("ntk", 0.1), ("standard", None), ("standard", 0.0))
DEPTH_CASES = [
    (act, kw, dtype, depth, PAR_BIAS[(i + j) % 3])
    for i, (act, kw) in enumerate(FAST_CASES)
    for j, depth in enumerate((1, 2, 10, 50))
    for dtype in (np.float32, np.float64)
    if depth < 50 or act in ("relu", "erf")
]


@pytest.mark.slow
@pytest.mark.parametrize("activation,kwargs,dtype,depth,par_bias", DEPTH_CASES)
def test_fast_equals_stax_depths_dtypes(activation, kwargs, dtype, depth, par_bias):
    x1, x2 = _inputs(seed=3)
    rtol = (1e-12 if depth < 50 else 1e-11) if dtype == np.float64 else 2e-5
    for par, b_std in (par_bias,):
        spec = MLP(
            depth=depth,
            activation=activation,
            activation_kwargs=kwargs,
            parameterization=par,
            b_std=b_std,
        )
        _check_vs_stax(spec, x1, x2, dtype=dtype, rtol=rtol)
        _check_vs_stax(spec, x1, None, dtype=dtype, rtol=rtol)


@pytest.mark.parametrize(
    "activation,w_std,depth",
    [
        ("relu", 5.0, 12),
        pytest.param("relu", 0.5, 30, marks=pytest.mark.slow),
        pytest.param("erf", 5.0, 12, marks=pytest.mark.slow),
        pytest.param("erf", 0.5, 30, marks=pytest.mark.slow),
        pytest.param("gelu", 5.0, 12, marks=pytest.mark.slow),
        pytest.param("gelu", 0.5, 30, marks=pytest.mark.slow),
    ],
)
def test_large_and_small_weights(activation, w_std, depth):
    spec = MLP(depth=depth, activation=activation, W_std=w_std, b_std=0.0)
    x = _inputs(seed=5)[0]
    rtol = 1e-11 if activation != "gelu" else 1e-9  # GELU: nt's cancellation
    _check_vs_stax(spec, x, None, dtype=np.float64, rtol=rtol)


# -- the exact diagonal --------------------------------------------------------------


def _gauss_hermite(fn, q, points: int = 160):
    """E[fn(u)] for u ~ N(0, q), by Gauss-Hermite (probabilists') quadrature."""
    t, w = np.polynomial.hermite_e.hermegauss(points)
    u = np.sqrt(q)[..., None] * t
    return (fn(u) * w).sum(-1) / math.sqrt(2 * math.pi)


def _gelu(u):
    from scipy.special import erf

    return 0.5 * u * (1 + erf(u / math.sqrt(2)))


def _gelu_prime(u):
    from scipy.special import erf

    return 0.5 * (1 + erf(u / math.sqrt(2))) + u * np.exp(-u * u / 2) / math.sqrt(
        2 * math.pi
    )


def _expect_diag(activation, kw, q):
    """E[phi(u)^2] and E[phi'(u)^2], u ~ N(0, q): closed forms or quadrature."""
    if activation in ("relu", "leaky_relu", "abrelu", "abs"):
        a, b = {
            "relu": (0.0, 1.0),
            "leaky_relu": (kw.get("alpha"), 1.0),
            "abs": (-1.0, 1.0),
        }.get(activation, (kw.get("a"), kw.get("b")))
        c = (a * a + b * b) / 2
        return c * q, c + 0 * q
    if activation == "erf":
        a, b, c = kw.get("a", 1.0), kw.get("b", 1.0), kw.get("c", 0.0)
        qb = b * b * q
        k = a * a * 2 / np.pi * np.arcsin(2 * qb / (1 + 2 * qb)) + c * c
        return k, a * a * b * b * 4 / np.pi / np.sqrt(1 + 4 * qb)
    return (
        _gauss_hermite(lambda u: _gelu(u) ** 2, q),
        _gauss_hermite(lambda u: _gelu_prime(u) ** 2, q),
    )


def _diag_reference(spec, x):
    """NNGP and NTK diagonals of every head, in float64, from the angle-0 recursion."""
    kw = dict(spec.activation_kwargs)
    m = x.shape[1]
    w2, b2 = spec.W_std**2, (spec.b_std or 0.0) ** 2
    k = np.sum(x.astype(np.float64) ** 2, axis=1) / m
    ntk = np.zeros_like(k)
    nngps, ntks = [], []
    for _ in range(spec.depth):
        q = w2 * k + b2
        ntk = q + w2 * ntk  # 'ntk' parameterisation
        k, dot = _expect_diag(spec.activation, kw, q)
        ntk = ntk * dot
        nngps.append(spec.readout_W_std**2 * k)
        ntks.append(spec.readout_W_std**2 * (k + ntk))
    return np.stack(nngps), np.stack(ntks)


# gelu's diagonal map has more rounding steps than the ReLU family's (exp, erf and
# their products at every layer); in float32 at depth 10 it reached 1.09e-6 of
# float64 on an AVX-512 host (below 1e-6 on others), so it gets twice the target.
DIAG_RTOL32 = {"gelu": 2e-6}

DIAG_CASES = [
    pytest.param(
        act, kw, dt, rtol, marks=() if (act, dt) in QUICK_DIAG else pytest.mark.slow
    )
    for act, kw in FAST_CASES
    for dt, rtol in (
        (np.float32, DIAG_RTOL32.get(act, 1e-6)),
        (np.float64, 1e-13),
    )
]


@pytest.mark.parametrize("activation,kwargs,dtype,rtol", DIAG_CASES)
def test_exact_diagonal_depth_10(activation, kwargs, dtype, rtol):
    spec = MLP(depth=10, activation=activation, activation_kwargs=kwargs)
    x = random_inputs(12, 20, seed=6).astype(dtype)
    x[3] = x[8]  # a duplicate pair is a diagonal entry too
    nngp, ntk = layerwise_kernels(
        spec, x, get=("nngp", "ntk"), dtype=dtype, devices=False, block_size=5
    )
    ref_nngp, ref_ntk = _diag_reference(spec, x)
    for got, ref in ((nngp, ref_nngp), (ntk, ref_ntk)):
        got = np.asarray(got, np.float64)
        diag = np.diagonal(got, axis1=1, axis2=2)
        assert_close(diag, ref, rtol=rtol, atol=0)
        assert_close(got[:, 3, 8], ref[:, 3], rtol=rtol, atol=0)
    # rectangular: a row of x2 equal to a row of x1 gets its diagonal entry (to the
    # diagonal's tolerance: XLA may round rows at different positions of a tile
    # differently, e.g. a vectorised loop body vs its remainder, as JAX 0.12 does
    # for gelu in float32)
    rect = np.asarray(layerwise_kernels(spec, x, x[[8, 0]], dtype=dtype, devices=False))
    assert_close(rect[:, 3, 0], rect[:, 8, 0], rtol=rtol, atol=0)
    assert_close(rect[:, 3, 0], ref_ntk[:, 3], rtol=rtol, atol=0)


def _relu_longdouble(x1, x2, depth, w_std, b_std):
    """The ReLU NTK recursion in extended precision (np.longdouble)."""
    ld = np.longdouble
    x1, x2 = x1.astype(ld), x2.astype(ld)
    m = x1.shape[1]
    w2, b2 = ld(w_std) ** 2, ld(b_std) ** 2
    k12, k1, k2 = x1 @ x2.T / m, (x1 * x1).sum(1) / m, (x2 * x2).sum(1) / m
    ntk = np.zeros_like(k12)
    out = []
    for _ in range(depth):
        c12, q1, q2 = w2 * k12 + b2, w2 * k1 + b2, w2 * k2 + b2
        ntk = c12 + w2 * ntk
        norm = np.sqrt(np.outer(q1, q2))
        theta = np.arccos(np.clip(c12 / norm, -1, 1))
        pi = np.arccos(ld(-1))
        k12 = norm / (2 * pi) * (np.sin(theta) + (pi - theta) * np.cos(theta))
        ntk = ntk * (pi - theta) / (2 * pi)
        k1, k2 = q1 / 2, q2 / 2
        out.append(k12 + ntk)
    return np.stack(out)


def test_near_duplicates_stay_accurate():
    """Pairs at angle 1e-5: the fast float64 engine within 1e-10 of 80-bit."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 16))
    y = x + 1e-5 * rng.normal(size=x.shape) * np.linalg.norm(x, axis=1)[:, None] / 4
    spec = MLP(depth=10)
    fast = np.asarray(layerwise_kernels(spec, x, y, engine="fast", devices=False))
    stax = np.asarray(layerwise_kernels(spec, x, y, engine="stax", devices=False))
    ref = _relu_longdouble(x, y, 10, spec.W_std, spec.b_std).astype(np.float64)
    err_fast = np.abs(fast - ref).max() / np.abs(ref).max()
    err_stax = np.abs(stax - ref).max() / np.abs(ref).max()
    assert err_fast < 1e-10, (err_fast, err_stax)


def test_float32_error_per_depth_fast():
    """float32 error of the fast engine stays near the input Gram's round-off."""
    rng = np.random.default_rng(23)
    x = (rng.uniform(size=(60, 784)) < 0.2) * rng.uniform(0.5, 1.0, size=(60, 784))
    x = x - x.mean(axis=0)
    spec = MLP(depth=20)
    k32 = np.asarray(
        layerwise_kernels(spec, x, dtype=np.float32, engine="fast"), np.float64
    )
    k64 = np.asarray(layerwise_kernels(spec, x, dtype=np.float64, engine="fast"))
    err = np.abs(k32 - k64).max(axis=(1, 2)) / np.abs(k64).max(axis=(1, 2))
    assert err.max() <= 5e-6, err
    assert err[-1] > 1e-9  # really float32


# -- duplicated and zero rows --------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_duplicate_rows_give_identical_kernel_rows(dtype):
    x = _inputs(seed=8)[0].astype(dtype)
    for spec in (MLP(depth=6), MLP(depth=6, activation="gelu", b_std=0.0)):
        k = np.asarray(layerwise_kernels(spec, x, dtype=dtype, block_size=4))
        assert np.array_equal(k[:, 5], k[:, 7])
        assert np.all(np.isfinite(k))
        if spec.activation == "gelu":  # phi(0) = 0 and no bias: zero row is zero
            assert np.all(k[:, 4] == 0)


# -- gradients with respect to the inputs ---------------------------------------------


@pytest.mark.parametrize(
    "activation",
    ["relu", "gelu", pytest.param("abs", marks=pytest.mark.slow), "erf"],
)
def test_input_gradients_match_stax(activation):
    spec = MLP(depth=3, activation=activation, b_std=0.2)
    x1, x2 = random_inputs(5, 4, seed=9), random_inputs(3, 4, seed=10)
    w = random_inputs(5, 3, seed=11)
    fast_fn, stax_fn = fast_kernel_fn(spec), spec.network().kernel_fn

    def loss(fn, a, b):
        k = fn(a, b, ("nngp", "ntk"))
        return jnp.sum(k[0][-1] * w) + jnp.sum(k[1] * w)

    for argnums in (0, 1):
        g_fast = jax.grad(lambda a, b: loss(fast_fn, a, b), argnums)(x1, x2)
        g_stax = jax.grad(lambda a, b: loss(stax_fn, a, b), argnums)(x1, x2)
        assert_close(g_fast, g_stax, rtol=1e-9, atol=1e-12)

    # self-kernel (exact diagonal): central finite differences
    def f(a):
        return jnp.sum(fast_fn(a, None, "ntk")[-1] * w[:, :1])

    g = np.asarray(jax.grad(f)(x1))
    h, e = 1e-6, np.zeros_like(x1)
    e[1, 2] = h
    fd = (float(f(x1 + e)) - float(f(x1 - e))) / (2 * h)
    assert abs(g[1, 2] - fd) <= 1e-6 * max(1.0, abs(fd)), (g[1, 2], fd)


# -- the switch ------------------------------------------------------------------------


def test_engine_switch():
    assert resolve_engine(MLP(depth=2, activation="gelu"), "auto") == "fast"
    assert resolve_engine(MLP(depth=2, activation="sin"), "auto") == "stax"
    x = random_inputs(4, 3, seed=12)
    with pytest.raises(ValueError, match="engine"):
        layerwise_kernels(MLP(depth=2, activation="sin"), x, engine="fast")
    with pytest.raises(ValueError, match="engine"):
        layerwise_kernels(MLP(depth=2), x, engine="numpy")
    v = random_inputs(4, 2, seed=13)
    fast = layerwise_matvec(MLP(depth=2), x, v, engine="fast", devices=False)
    stax = layerwise_matvec(MLP(depth=2), x, v, engine="stax", devices=False)
    assert_close(fast, stax, rtol=1e-6)  # diagonal entries: stax's sqrt(eps)


def test_chunked_tile_equals_whole_tile(monkeypatch):
    from nftk_jax.kernels import _layerwise

    x1, x2 = random_inputs(24, 5, seed=14), random_inputs(10, 5, seed=15)
    spec = MLP(depth=4, b_std=0.3)
    kw = {"engine": "fast_xla"}
    whole = np.asarray(layerwise_kernels(spec, x1, x2, devices=False, **kw))
    monkeypatch.setattr(_layerwise, "FAST_CHUNK_ENTRIES", 30)  # 3-row chunks
    chunked = np.asarray(layerwise_kernels(spec, x1, x2, devices=False, **kw))
    sharded = np.asarray(layerwise_kernels(spec, x1, x2, block_size=8, **kw))
    assert_close(chunked, whole, rtol=1e-15, atol=0)
    assert_close(sharded, whole, rtol=1e-15, atol=0)


# -- the special functions ---------------------------------------------------------


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 5e-7), (np.float64, 1e-14)])
def test_special_functions(dtype, rtol):
    rng = np.random.default_rng(16)
    y = np.concatenate([rng.standard_cauchy(20000), np.logspace(-30, 30, 601)])
    x = np.concatenate([rng.standard_cauchy(20000), np.ones(601)])
    y, x = y.astype(dtype), x.astype(dtype)
    y64, x64 = y.astype(np.float64), x.astype(np.float64)

    def rel(a, b):
        a = np.asarray(a, np.float64)
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))

    assert rel(jax.jit(atan2)(y, x), np.arctan2(y64, x64)) <= rtol
    ay, ax = np.abs(y), np.abs(x)
    ref = np.arctan2(ay.astype(np.float64), ax.astype(np.float64))
    assert rel(jax.jit(atan2_nonneg)(ay, ax), ref) <= rtol
    c = np.linspace(-1, 1, 20001).astype(dtype)
    assert rel(jax.jit(arccos)(c), np.arccos(c.astype(np.float64))) <= rtol
