"""Synthetic MKL problems shared by the Omega-learner tests."""

from __future__ import annotations

import numpy as np


def _normalise(k_full: np.ndarray, n: int) -> np.ndarray:
    return k_full / np.mean(np.diag(k_full)[:n])


def synthetic_problem(n: int = 48, m: int = 24, d: int = 3, seed: int = 0):
    """Three layer kernels: two informative about the labels, one pure noise.

    Returns the four arrays ``theta (3, n, n)``, ``theta_val (3, m, n)``, ``y (n,)``
    and ``y_val (m,)``; tests that need test rows reuse the validation rows.
    """
    rng = np.random.default_rng(seed)
    y_all = np.arange(n + m) % d
    rng.shuffle(y_all)
    onehot = np.eye(d)[y_all]
    # Informative: the label Gram matrix, and noisy label features.
    f1 = onehot + 0.3 * rng.normal(size=onehot.shape)
    f2 = np.concatenate([onehot, 0.8 * rng.normal(size=(n + m, 4))], axis=1)
    z = rng.normal(size=(n + m, 12))  # noise: independent of the labels
    kernels = [_normalise(f @ f.T, n) for f in (f1, f2, z)]
    full = np.stack(kernels)
    theta = full[:, :n, :n]
    theta_val = full[:, n:, :n]
    return theta, theta_val, y_all[:n], y_all[n:]
