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


@pytest.mark.parametrize("n, block", [(1000, 300), (1501, 512), (64, 64)])
def test_blocked_factorisation_equals_lapack(n, block):
    """The blocked factorisation (diagonal blocks, triangular solves, GEMM
    updates in row panels) equals LAPACK's on sizes that do and do not divide."""
    from nftk_jax.linalg._spd import _blocked_cholesky

    r = np.random.default_rng(n).normal(size=(n, n + 3))
    a = r @ r.T / n
    ref = np.linalg.cholesky(a)
    got = np.tril(_blocked_cholesky(a.copy(), block))
    assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_blocked_factorisation_detects_indefinite_trailing_block():
    """A matrix whose leading blocks are fine but that is indefinite further down
    fails inside a later diagonal block, so host_cholesky escalates its jitter."""
    from nftk_jax.linalg._spd import _blocked_cholesky

    a = spd(40)
    a[35, 35] = -1.0
    with pytest.raises(np.linalg.LinAlgError):
        _blocked_cholesky(a, 16)


@pytest.mark.slow
def test_host_cholesky_of_a_20000_matrix():
    """At n = 20,000 OpenBLAS 0.3.30's multithreaded potrf crashed (SIGSEGV) on
    an AVX-512 host; the blocked path never hands LAPACK more than a block. The
    factor is checked on random rows: (R R^T)[i] = A[i]."""
    n = 20_000
    rng = np.random.default_rng(0)
    g = rng.normal(size=(n, 64)).astype(np.float64)
    rows = rng.choice(n, 5, replace=False)

    def form():
        a = g @ g.T
        a[np.diag_indices_from(a)] += n
        return a

    chol, jitter = host_cholesky(form, 0.0, what="A", remedy="r")
    assert jitter == 0.0
    expected = g[rows] @ g.T
    expected[np.arange(5), rows] += n
    assert_close(chol[rows] @ chol.T, expected, rtol=1e-10, atol=1e-8)
