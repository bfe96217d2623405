"""Determinism: the same inputs and seed give identical results; the number of
devices changes results only to rounding."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from nftk_jax import MLP, fit_mkl, fit_mkl_kernels, layerwise_kernels

from helpers import assert_close, random_inputs

SPEC = MLP(depth=3)


def test_kernels_bitwise_reproducible():
    x = random_inputs(23, 5, seed=1)
    a = np.asarray(layerwise_kernels(SPEC, x, block_size=8))
    b = np.asarray(layerwise_kernels(SPEC, x, block_size=8))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_devices", [1, 2, 3, 4])
def test_kernels_agree_across_device_counts(n_devices):
    assert len(jax.local_devices()) >= 4, "conftest simulates 4 CPU devices"
    x1 = random_inputs(21, 5, seed=2)
    x2 = random_inputs(10, 5, seed=3)
    ref = np.asarray(layerwise_kernels(SPEC, x1, x2, devices=False))
    got = np.asarray(
        layerwise_kernels(SPEC, x1, x2, devices=jax.local_devices()[:n_devices])
    )
    assert_close(got, ref, rtol=1e-12, atol=1e-14)


def _problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    return x, y


def test_fit_mkl_bitwise_reproducible():
    x, y = _problem()
    a = fit_mkl(SPEC, x, y, ridge=1e-2, steps=8, seed=3)
    b = fit_mkl(SPEC, x, y, ridge=1e-2, steps=8, seed=3)
    np.testing.assert_array_equal(a.omega, b.omega)
    np.testing.assert_array_equal(np.asarray(a.alpha), np.asarray(b.alpha))
    np.testing.assert_array_equal(a.history.objective, b.history.objective)


def test_fit_mkl_kernels_agree_across_device_counts():
    x, y = _problem()
    results = []
    for devices in (False, jax.local_devices()[:4]):
        theta = layerwise_kernels(SPEC, x, devices=devices)
        results.append(
            fit_mkl_kernels(theta, y, ridge=1e-2, objective="krr_dual", steps=8)
        )
    assert_close(results[0].omega, results[1].omega, rtol=1e-8, atol=1e-10)
