"""Numerical safety of the kernel engine: deep nets, large weights, degenerate rows.

The engine must never hand back a NaN or infinite kernel: either every entry is
finite or it raises a ValueError naming ``dtype``. The grid below records the only
settings whose true kernels cannot be represented (they outgrow the dtype, or
neural-tangents' GELU formula cancels catastrophically at huge variances).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nftk_jax import MLP, layerwise_kernels

from helpers import ACTIVATIONS, assert_close, random_inputs

DTYPES = (np.float32, np.float64)
# (W_std, b_std) pairs; depth 100 throughout.
WEIGHTS = [(0.5, 0.0), (math.sqrt(2.0), None), (5.0, 0.0)]
# (activation, W_std, dtype) whose depth-100 kernels leave the dtype's range:
# ReLU-like nets grow by W_std**2 / 2 = 12.5 per layer at W_std=5 (1e109 at depth
# 100, past float32's 3e38); the NTK diagonal of Erf at W_std=5 (chaotic phase)
# grows ~3.4x per layer (1e53); RBF's NTK grows faster still; GELU's
# closed form subtracts (q+1)**2 - c**2 and loses everything once q ~ 1/eps.
MAY_RAISE = {
    *((a, 5.0, np.float32) for a in ("relu", "leaky_relu", "abrelu", "erf", "rbf")),
    ("rbf", math.sqrt(2.0), np.float32),
    ("gelu", 5.0, np.float32),
    ("gelu", 5.0, np.float64),
}


def _degenerate_inputs() -> np.ndarray:
    x = random_inputs(7, 5, seed=20)
    x[1] = 0.0  # a zero row: 0/0 correlations when b_std == 0
    x[3] = x[2]  # duplicated rows: correlation exactly 1
    x[6] = 1e-3 * x[4]  # a nearly-zero row, parallel to another
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_depth_100_is_finite_or_raises(activation, dtype):
    x = _degenerate_inputs()
    for w_std, b_std in WEIGHTS:
        spec = MLP(depth=100, activation=activation, W_std=w_std, b_std=b_std)
        try:
            nngp, ntk = layerwise_kernels(
                spec, x, get=("nngp", "ntk"), dtype=dtype, devices=False
            )
        except ValueError as e:
            assert (activation, w_std, dtype) in MAY_RAISE, str(e)
            assert "dtype" in str(e)
            continue
        assert nngp.dtype == dtype and ntk.dtype == dtype
        assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk))
        if dtype == np.float64 or (activation, w_std, dtype) not in MAY_RAISE:
            # duplicated rows give identical kernel rows, to round-off
            k = np.asarray(ntk, np.float64)
            scale = np.abs(k).max(axis=(1, 2))[:, None]
            # small W_std shrinks the kernel layer by layer, down to 0 (underflow)
            gap = np.abs(k[:, 2] - k[:, 3]) / np.where(scale > 0, scale, 1.0)
            assert gap.max() < (1e-3 if dtype == np.float32 else 1e-8), gap.max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "erf", "gelu", "sin"])
def test_zero_rows_without_bias(activation, dtype):
    """A zero input with b_std=0 has zero pre-activations at every layer."""
    x = random_inputs(5, 4, seed=21)
    x_with_zero = np.concatenate([x, np.zeros((1, 4))])
    spec = MLP(depth=6, activation=activation, b_std=0.0)
    k = np.asarray(layerwise_kernels(spec, x_with_zero, dtype=dtype))
    ref = np.asarray(layerwise_kernels(spec, x, dtype=dtype))
    assert np.all(np.isfinite(k))
    rtol = 1e-5 if dtype == np.float32 else 1e-6  # diagonal entries, see test_kernels
    assert_close(k[:, :5, :5], ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    # phi(0) == 0 for all four, so the zero row's features vanish at every layer.
    assert_close(k[:, 5, :], 0.0 * k[:, 5, :], atol=1e-30)


def test_no_bias_at_all_zero_row():
    x = np.concatenate([random_inputs(3, 4, seed=22), np.zeros((1, 4))])
    k = np.asarray(layerwise_kernels(MLP(depth=50, b_std=None), x))
    assert np.all(np.isfinite(k)) and np.all(k[:, 3] == 0)


def _mnist_like(n: int) -> np.ndarray:
    """Centred rows of norm sqrt(784), the scale of standardised MNIST pixels."""
    rng = np.random.default_rng(23)
    x = (rng.uniform(size=(n, 784)) < 0.2) * rng.uniform(0.5, 1.0, size=(n, 784))
    x = x - x.mean(axis=0)
    return x / np.linalg.norm(x, axis=1, keepdims=True) * math.sqrt(784)


def test_float32_error_bound_per_depth():
    """Documented in docs/kernels.md: stax's float32 error <= 2.5e-4 * depth (ReLU).

    neural-tangents' arc-cosine step loses half the digits on (near-)diagonal
    entries, where sqrt(prod - nngp**2) cancels: about sqrt(eps_32) ~ 2e-4, once
    per layer. (The fast engine's bound is in tests/test_fast_kernels.py.)
    """
    x = _mnist_like(60)
    spec = MLP(depth=20)
    kw = {"engine": "stax"}
    k32 = np.asarray(layerwise_kernels(spec, x, dtype=np.float32, **kw), np.float64)
    k64 = np.asarray(layerwise_kernels(spec, x, dtype=np.float64, **kw))
    err = np.abs(k32 - k64).max(axis=(1, 2)) / np.abs(k64).max(axis=(1, 2))
    depths = np.arange(1, 21)
    assert np.all(err <= 2.5e-4 * depths), err
    assert err[-1] > 1e-6  # the float32 path really ran in float32
