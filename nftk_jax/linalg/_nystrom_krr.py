r"""Theorem 1 without ``n x n`` kernels: Nystrom (subset-of-regressors) KRR.

For a kernel :math:`K = \sum_l w_l \Theta_l / s_l` and ``m`` landmark inputs
:math:`Z`, the Theorem-1 objective
:math:`\sum_i \|y_i - f(x_i)\|^2 + \rho \|f\|_K^2` is minimised exactly over the
functions :math:`f = K(\cdot, Z)\,\alpha` spanned by the landmarks:

.. math::

    (K_{nm}^\top K_{nm} + \rho K_{mm})\,\alpha = K_{nm}^\top Y .

With all ``n`` training inputs as landmarks this is exact KRR. The ``m x m`` normal
equations are accumulated over row chunks of :math:`K_{nm}`, which is computed by
`layerwise_kernels` one chunk at a time and never stored: memory is
:math:`O(G m^2)` for ``G`` kernels (one per distinct layer-weight row), time is one
pass of kernel evaluation over ``n x m`` entries plus :math:`n m^2 G` flops.
See docs/scaling.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import scipy.linalg
from scipy.linalg import blas

from ..core import NFTKInputError, progress_bar
from ..kernels import layerwise_kernels
from ..model import MLP
from ._spd import host_cholesky

__all__ = [
    "NormalEquations",
    "accumulate_normal_equations",
    "landmark_kernel_chunks",
    "nystrom_predict",
    "solve_normal_equations",
]


class NormalEquations(NamedTuple):
    r"""Running sums of the Nystrom normal equations over the first ``rows_done`` rows.

    Attributes:
        gram: ``(G, m, m)`` float64, :math:`K_{nm}^\top K_{nm}` of each kernel; only
            the lower triangle is accumulated (`solve_normal_equations` mirrors it).
        rhs: ``(G, m, d)`` float64, :math:`K_{nm}^\top Y`.
        rows_done: training rows summed so far.
    """

    gram: np.ndarray
    rhs: np.ndarray
    rows_done: int


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    if len(x) == size:
        return x
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)])


def landmark_kernel_chunks(
    spec: MLP,
    x: np.ndarray,
    x_landmarks: np.ndarray,
    *,
    scale: np.ndarray,
    chunk_rows: int,
    start: int = 0,
    dtype: Any = np.float32,
) -> Iterator[tuple[slice, np.ndarray]]:
    r"""Yields ``(rows, K)``, ``K[l] = \Theta_l(x[rows], Z) / scale[l]`` in ``dtype``.

    Every chunk is computed at the same padded shape (``chunk_rows`` rows, one kernel
    tile of ``chunk_rows x m``), so the kernel function is compiled once.
    """
    m = len(x_landmarks)
    dt = np.dtype(dtype)
    inv = (1.0 / np.asarray(scale, np.float64)).astype(dt)[:, None, None]
    block = max(chunk_rows, m)
    for r0 in range(start, len(x), chunk_rows):
        rows = slice(r0, min(r0 + chunk_rows, len(x)))
        xb = _pad(np.asarray(x[rows], dt), chunk_rows)
        k = layerwise_kernels(
            spec, xb, x_landmarks, dtype=dt, block_size=block, devices=None
        )
        k = np.asarray(k)[:, : rows.stop - rows.start] * inv
        yield rows, k


def _add_syrk(gram: np.ndarray, b: np.ndarray) -> None:
    """``gram += b.T @ b`` on the lower triangle (C order), in place, float64."""
    # gram.T is Fortran-ordered: BLAS updates its upper triangle, gram's lower.
    out = blas.dsyrk(1.0, b, beta=1.0, c=gram.T, trans=1, lower=0, overwrite_c=1)
    if not np.shares_memory(out, gram):  # pragma: no cover - BLAS copied
        gram[...] = out.T


def accumulate_normal_equations(
    spec: MLP,
    x: Any,
    targets: Any,
    x_landmarks: Any,
    weights: Any,
    *,
    scale: Any,
    chunk_rows: int = 1024,
    state: NormalEquations | None = None,
    on_chunk: Callable[[NormalEquations], Any] | None = None,
    progress: bool = False,
    dtype: Any = np.float32,
) -> NormalEquations:
    r"""Sums :math:`K_{nm}^\top K_{nm}` and :math:`K_{nm}^\top Y` over row chunks.

    Kernel ``g`` is :math:`K_g = \sum_l w_{gl}\,\Theta_l / s_l`. The layer kernels of
    a chunk are computed once and shared by all ``G`` kernels.

    Args:
        spec: the architecture.
        x: ``(n, p)`` training inputs.
        targets: ``(n, d)`` float targets (e.g. centred one-hot labels).
        x_landmarks: ``(m, p)`` landmark inputs :math:`Z`.
        weights: ``(G, L)`` layer weights, one row per kernel.
        scale: ``(L,)`` layer normalisation :math:`s_l` (ones for raw kernels).
        chunk_rows: rows of :math:`K_{nm}` computed at a time.
        state: a partial result to continue from (rows after ``rows_done``).
        on_chunk: called with the running `NormalEquations` after every chunk.
        progress: show a progress bar with ETA.
        dtype: dtype the kernels are computed in (sums are float64).

    Returns:
        The `NormalEquations` over all ``n`` rows.

    Example:
        >>> import numpy as np
        >>> from nftk_jax import MLP
        >>> x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
        >>> eq = accumulate_normal_equations(
        ...     MLP(depth=2), x, np.eye(6)[:, :2], x[:3], np.array([[0.5, 0.5]]),
        ...     scale=np.ones(2), chunk_rows=4)
        >>> eq.gram.shape, eq.rhs.shape, eq.rows_done
        ((1, 3, 3), (1, 3, 2), 6)
    """
    dt = np.dtype(dtype)
    xx = np.asarray(x, dt)
    y = np.asarray(targets, np.float64)
    z = np.asarray(x_landmarks, dt)
    w = np.asarray(weights, dt)
    n, m, n_kernels = len(xx), len(z), len(w)
    if y.ndim != 2 or len(y) != n:
        raise NFTKInputError(f"targets must have shape ({n}, d), got {y.shape}.")
    if w.ndim != 2 or w.shape[1] != spec.depth:
        raise NFTKInputError(
            f"weights must have shape (G, L={spec.depth}), got {w.shape}."
        )
    if state is None:
        state = NormalEquations(
            np.zeros((n_kernels, m, m)), np.zeros((n_kernels, m, y.shape[1])), 0
        )
    gram, rhs, done = state.gram, state.rhs, state.rows_done
    bar = progress_bar(n, "K_nm^T K_nm", enabled=progress, unit="row", initial=done)
    chunks = landmark_kernel_chunks(
        spec, xx, z, scale=scale, chunk_rows=chunk_rows, start=done, dtype=dt
    )
    for rows, k in chunks:
        yb = y[rows]
        for g in range(n_kernels):
            b = np.tensordot(w[g], k, axes=1).astype(np.float64)  # (b, m)
            _add_syrk(gram[g], b)
            rhs[g] += b.T @ yb
        done = rows.stop
        if bar is not None:
            bar.update(rows.stop - rows.start)
        if on_chunk is not None:
            on_chunk(NormalEquations(gram, rhs, done))
    if bar is not None:
        bar.close()
    return NormalEquations(gram, rhs, done)


def solve_normal_equations(
    equations: NormalEquations,
    k_mm: Any,
    weights: Any,
    *,
    ridge: float,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Solves :math:`(K_{nm}^\top K_{nm} + \rho K_{mm})\alpha = K_{nm}^\top Y`.

    Cholesky in float64; when the matrix is not numerically positive definite, a
    jitter relative to its mean diagonal escalates through ``1e-10 .. 1e-6`` with
    a warning.

    Args:
        equations: the accumulated `NormalEquations`.
        k_mm: ``(L, m, m)`` normalised layer kernels of the landmarks.
        weights: ``(G, L)`` layer weights (as accumulated).
        ridge: :math:`\rho > 0`.

    Returns:
        ``alpha`` of shape ``(G, m, d)`` and the absolute jitter added per kernel.
    """
    w = np.asarray(weights, np.float64)
    kmm = np.asarray(k_mm)
    alphas, jitters = [], []
    for g in range(len(w)):
        a = np.tril(equations.gram[g])
        a += np.tril(a, -1).T
        for l in np.flatnonzero(w[g]):  # layer by layer: no float64 copy of k_mm
            a += (ridge * w[g, l]) * kmm[l]
        alpha, jit = _cholesky_solve(a, equations.rhs[g])
        alphas.append(alpha)
        jitters.append(jit)
    return np.stack(alphas), np.asarray(jitters)


def _cholesky_solve(a: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, float]:
    chol, shift = host_cholesky(
        lambda: np.array(a, order="C"),
        0.0,
        what="K_nm^T K_nm + ridge K_mm",
        remedy="Increase the ridge or use fewer landmarks",
    )
    return scipy.linalg.cho_solve((chol, True), rhs, check_finite=False), shift


def nystrom_predict(
    spec: MLP,
    x: Any,
    x_landmarks: Any,
    weights: Any,
    alpha: Any,
    *,
    scale: Any,
    chunk_rows: int = 1024,
    start: int = 0,
    out: np.ndarray | None = None,
    on_chunk: Callable[[int], Any] | None = None,
    progress: bool = False,
    dtype: Any = np.float32,
) -> np.ndarray:
    r"""Scores :math:`K_g(x, Z)\,\alpha_g` of every kernel, ``(G, n, d)`` float64.

    ``start`` and ``out`` continue an interrupted prediction (rows before ``start``
    of ``out`` are kept); ``on_chunk`` is called with the rows done after each chunk.
    """
    dt = np.dtype(dtype)
    xx = np.asarray(x, dt)
    z = np.asarray(x_landmarks, dt)
    w = np.asarray(weights, dt)
    al = np.asarray(alpha, np.float64)
    if out is None:
        out = np.zeros((len(w), len(xx), al.shape[-1]))
    bar = progress_bar(len(xx), "predict", enabled=progress, unit="row", initial=start)
    chunks = landmark_kernel_chunks(
        spec, xx, z, scale=scale, chunk_rows=chunk_rows, start=start, dtype=dt
    )
    for rows, k in chunks:
        for g in range(len(w)):
            out[g, rows] = np.tensordot(w[g], k, axes=1).astype(np.float64) @ al[g]
        if bar is not None:
            bar.update(rows.stop - rows.start)
        if on_chunk is not None:
            on_chunk(rows.stop)
    if bar is not None:
        bar.close()
    return out
