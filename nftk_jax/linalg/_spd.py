"""The one dense SPD factorisation: Cholesky with jitter escalation.

Every dense solve of the package (per-class KRR, the Cholesky preconditioner of
CG, the Nystrom normal equations, the reference objective) factorises a symmetric
matrix ``A + shift I`` that is positive definite in exact arithmetic but may not
be numerically. When a factorisation fails, a jitter relative to the mean diagonal
of ``A`` is added, escalating through :data:`JITTERS`, with a warning that names
the matrix and the remedy; when every jitter fails, ``LinAlgError`` says why.

Two implementations share that rule: :func:`cholesky_with_jitter` (JAX, batched,
on device) and :func:`host_cholesky` (SciPy/LAPACK in place, for one large matrix
that must not be copied).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["JITTERS", "cholesky_with_jitter", "host_cholesky"]

#: Relative jitters tried, in order, when a matrix is not numerically positive
#: definite (times the mean diagonal).
JITTERS = (0.0, 1e-12, 1e-10, 1e-8, 1e-6)


def _warn_jitter(what: str, jitter: float, remedy: str) -> None:
    warnings.warn(
        f"{what} was not numerically positive definite; added a jitter of "
        f"{jitter:.3g} to the diagonal. {remedy}.",
        RuntimeWarning,
        stacklevel=4,
    )


def _failure(what: str) -> np.linalg.LinAlgError:
    return np.linalg.LinAlgError(
        f"Cholesky of {what} failed even with jitter; the kernels contain "
        "non-finite values or the ridge is far too small."
    )


@jax.jit
def _cholesky(k: jax.Array, shift: jax.Array):
    # k: (b, n, n) -> lower factors of k + shift I and whether all are finite.
    chol = jnp.linalg.cholesky(k + shift * jnp.eye(k.shape[-1], dtype=k.dtype))
    return chol, jnp.all(jnp.isfinite(chol))


def cholesky_with_jitter(
    k: jax.Array,
    ridge: float,
    *,
    what: str = "K_c + ridge I",
    remedy: str = "Increase ridge or use float64",
) -> tuple[jax.Array, float]:
    """Lower Cholesky factors ``(b, n, n)`` of ``k + ridge I``, with jitter.

    Returns the factors and the absolute jitter added (0 when none was needed).

    Example:
        >>> import jax.numpy as jnp
        >>> chol, jitter = cholesky_with_jitter(4.0 * jnp.eye(3)[None], 5.0)
        >>> float(chol[0, 0, 0]), jitter
        (3.0, 0.0)
    """
    scale = float(jnp.mean(jnp.diagonal(k, axis1=-2, axis2=-1)))
    for rel in JITTERS:
        jit_abs = rel * max(scale, 1e-300)
        chol, ok = _cholesky(k, jnp.asarray(ridge + jit_abs, dtype=k.dtype))
        if bool(ok):
            if rel > 0:
                _warn_jitter(what, jit_abs, remedy)
            return chol, jit_abs
    raise _failure(what)


def host_cholesky(
    form: Callable[[], np.ndarray],
    shift: float,
    *,
    what: str,
    remedy: str,
) -> tuple[np.ndarray, float]:
    """Lower Cholesky factor of ``form() + (shift + jitter) I``, in place.

    ``form`` returns the symmetric matrix; a writable C-ordered result is
    factorised in place (no copy of an ``n x n`` matrix), anything else is copied
    first. It is called again only when a factorisation fails and the jitter
    escalates. Returns the factor (strict upper triangle zeroed) and the jitter.

    Example:
        >>> import numpy as np
        >>> chol, jitter = host_cholesky(lambda: np.eye(2), 3.0, what="A", remedy="")
        >>> chol.tolist(), jitter
        ([[2.0, 0.0], [0.0, 2.0]], 0.0)
    """
    scale = None
    for rel in JITTERS:
        a = np.asarray(form())
        if not (a.flags.writeable and a.flags.c_contiguous):
            a = np.array(a, order="C")  # e.g. a jax array: factorise a copy
        if scale is None:
            scale = max(float(np.mean(np.diagonal(a))), 1e-300)
        jitter = rel * scale
        a[np.diag_indices_from(a)] += shift + jitter
        try:
            chol = _factor_in_place(a)
        except np.linalg.LinAlgError:
            continue
        if not np.all(np.isfinite(np.diagonal(chol))):
            continue
        if rel > 0:
            _warn_jitter(what, jitter, remedy)
        return _zero_upper(chol), jitter
    raise _failure(what)


#: Matrices larger than this are factorised by blocks (:func:`_blocked_cholesky`).
BLOCK = 4096


def _factor_in_place(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of the C-ordered symmetric ``a``, overwriting it."""
    import scipy.linalg

    if a.shape[0] > BLOCK:
        return _blocked_cholesky(a, BLOCK)
    # a is symmetric and C-ordered, so a.T is the same matrix in Fortran order,
    # which LAPACK factorises in place: its upper factor U, read back through the
    # transpose, is the lower factor R = U^T.
    u = scipy.linalg.cholesky(a.T, lower=False, overwrite_a=True, check_finite=False)
    return u.T


def _blocked_cholesky(a: np.ndarray, block: int) -> np.ndarray:
    r"""Right-looking blocked Cholesky of the lower triangle of ``a``, in place.

    For each diagonal block: :math:`L_{11} = \mathrm{chol}(A_{11})`, the panel
    below it :math:`L_{21} = A_{21} L_{11}^{-\top}`, and the trailing lower
    triangle :math:`A_{22} \mathrel{-}= L_{21} L_{21}^\top` in row panels (the
    temporaries are ``block x n``). LAPACK only ever factorises ``block x block``
    matrices and the bulk of the work is GEMM: OpenBLAS 0.3.30's multithreaded
    ``potrf`` crashes (SIGSEGV) on a 20,000 x 20,000 matrix on AVX-512 hosts, and
    a GEMM panel update is as fast. Raises ``LinAlgError`` when ``a`` is not
    numerically positive definite.
    """
    import scipy.linalg

    n = a.shape[0]
    for k0 in range(0, n, block):
        k1 = min(k0 + block, n)
        l11 = scipy.linalg.cholesky(a[k0:k1, k0:k1], lower=True, check_finite=False)
        if not np.all(np.isfinite(np.diagonal(l11))):
            raise np.linalg.LinAlgError("non-finite Cholesky factor")
        a[k0:k1, k0:k1] = l11
        if k1 == n:
            break
        l21 = scipy.linalg.solve_triangular(
            l11, a[k1:, k0:k1].T, lower=True, check_finite=False
        ).T
        a[k1:, k0:k1] = l21
        for i0 in range(k1, n, block):
            i1 = min(i0 + block, n)
            a[i0:i1, k1:i1] -= l21[i0 - k1 : i1 - k1] @ l21[: i1 - k1].T
    return a


def _zero_upper(a: np.ndarray) -> np.ndarray:
    """Zero the strict upper triangle in place (LAPACK leaves the input there)."""
    n = a.shape[0]
    for i0 in range(0, n, 1024):  # row blocks: no (n, n) temporary mask
        rows = a[i0 : i0 + 1024]
        rows[np.triu(np.ones(rows.shape, dtype=bool), k=1 + i0)] = 0
    return a
