"""The one dense SPD factorisation: both implementations against numpy, the same
jitter ladder and messages, and a clear failure."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from nftk_jax.linalg import JITTERS, cholesky_with_jitter, host_cholesky

from helpers import assert_close


def spd(n=6, seed=0):
    a = np.random.default_rng(seed).normal(size=(n, n))
    return a @ a.T + n * np.eye(n)


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_factors_equal_numpy(shift):
    a = spd()
    ref = np.linalg.cholesky(a + shift * np.eye(len(a)))
    chol, jitter = cholesky_with_jitter(jnp.asarray(a)[None], shift)
    assert jitter == 0.0
    assert_close(chol[0], ref, rtol=1e-12)
    host, jitter = host_cholesky(lambda: a.copy(), shift, what="A", remedy="r")
    assert jitter == 0.0
    assert_close(host, ref, rtol=1e-12)
    assert np.all(np.triu(host, 1) == 0)


def test_singular_matrix_gets_the_first_jitter_that_works_with_one_warning():
    """A rank-one PSD matrix is singular: both implementations escalate the same
    ladder, stop at the same rung and warn with the matrix's name and remedy."""
    v = np.arange(1.0, 6.0)
    a = np.outer(v, v)
    with pytest.warns(
        RuntimeWarning, match=r"^B was not numerically positive .* Do X\.$"
    ):
        host, j_host = host_cholesky(lambda: a.copy(), 0.0, what="B", remedy="Do X")
    with pytest.warns(RuntimeWarning, match=r"^B was not numerically positive"):
        dev, j_dev = cholesky_with_jitter(jnp.asarray(a)[None], 0.0, what="B")
    scale = np.mean(np.diag(a))
    assert j_host > 0 and j_host / scale in JITTERS
    assert j_dev > 0 and j_dev / scale in JITTERS
    for chol, jitter in ((host, j_host), (dev[0], j_dev)):
        assert_close(np.asarray(chol) @ np.asarray(chol).T, a + jitter * np.eye(5),
                     rtol=1e-8, atol=1e-8 * scale)  # fmt: skip


def test_indefinite_matrix_fails_with_a_clear_error():
    a = -np.eye(4)
    with pytest.raises(np.linalg.LinAlgError, match=r"^Cholesky of C failed even"):
        host_cholesky(lambda: a.copy(), 0.0, what="C", remedy="r")
    with pytest.raises(np.linalg.LinAlgError, match=r"^Cholesky of C failed even"):
        cholesky_with_jitter(jnp.asarray(a)[None], 0.0, what="C")
