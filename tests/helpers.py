"""Shared test helpers: one tolerance helper and small case tables."""

from __future__ import annotations

import numpy as np

#: Activations with closed-form kernels exercised across the suite.
ACTIVATIONS = (
    "relu",
    "erf",
    "leaky_relu",
    "abrelu",
    "gelu",
    "sigmoid_like",
    "sin",
    "rbf",
)
PARAMETERIZATIONS = ("ntk", "standard")


def assert_close(actual, expected, *, rtol: float = 1e-10, atol: float = 1e-12, msg=""):
    """The one tolerance helper: compares as float64 numpy arrays."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, msg)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=msg)


def rel_err(a, b) -> float:
    """Relative Frobenius error ||a - b|| / ||b||."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def random_inputs(n: int, m: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, m))
