r"""The fast recursion compiled for CPUs: every layer of a row in registers.

XLA's CPU backend splits one layer of the fused recursion (:mod:`._fast`) into
about ten loop fusions: the layer has several outputs (the carried covariance,
NTK and gap, and the head) that share expensive intermediates (the angle), and
XLA materialises each shared intermediate as a full ``(b1, b2)`` array rather
than recompute it. A layer then streams about sixty arrays through memory and
the elementwise work, not the Gram GEMM, dominates the kernel (10x it at
``n = 2000``, ``d = 784``, ten layers).

Here the same recursion is one loop nest compiled by numba: for each row
(threads over rows), each layer, a vectorised loop over the row's columns keeps
the three carried quantities in a few row-sized buffers that stay in L1/L2, and
writes each head's entry once. The arithmetic is that of :mod:`._fast` and
:mod:`._closed_forms` term for term (the same cancellation-free gap, the same
range-reduced arctangent of :mod:`._special`, exact duplicates through the
angle-0 path), in the tile's dtype: every constant is cast to it, so float32
tiles are computed in float32 SIMD lanes.

The kernel is used for host tiles (:func:`~nftk_jax.kernels.layerwise_kernels`,
:func:`~nftk_jax.kernels.layerwise_matvec`, the disk stores) when the devices
are CPUs and numba imports; it is not traceable, so
:func:`~nftk_jax.kernels._fast.fast_kernel_fn` (differentiable, any device)
keeps the XLA program.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ..core import aligned_empty
from ..model import ACTIVATIONS, MLP
from ._closed_forms import activation_parameters
from ._special import atan_coefficients

__all__ = ["cpu_kernel_available", "cpu_heads", "cpu_products"]

# Kinds of activation step (the kernel's integer switch) and the layout of the
# constant vector K: tan(pi/8), pi/4, pi/2, pi, 0, 1, then the arctangent
# polynomial's ten coefficients (zero-padded in float32: the same Horner steps).
ABRELU, LINEAR, ERF, GELU = 0, 1, 2, 3
K_TAN, K_PI4, K_PI2, K_PI, K_ZERO, K_ONE, K_R = 0, 1, 2, 3, 4, 5, 6
_N_COEFFS = 10
#: Columns :func:`cpu_products` takes through all layers at once per row: the
#: row's buffers and its share of the vectors stay in L1/L2.
PRODUCT_CHUNK = 512


@functools.cache
def _loops():
    """The numba loops (:mod:`._fast_cpu_loops`), imported on first use: numba
    compiles them once per dtype and caches them on disk. ``None`` without numba."""
    try:
        from . import _fast_cpu_loops
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    return _fast_cpu_loops


def cpu_kernel_available(spec: MLP | None = None) -> bool:
    """Whether the compiled CPU kernel can run here (numba imports) for ``spec``.

    ``erf`` keeps the XLA program on CPUs too: compiled, its float32 kernels were
    6x further from float64 than the XLA program's (2.7e-6 against 4.6e-7 of the
    largest entry at depth 10, off the diagonal as on it; float64 agreed to
    6e-13), for a reason not found yet, which broke the 1e-6 diagonal target.
    """
    if spec is not None and spec.activation == "erf":
        return False
    return _loops() is not None


def _parameters(spec: MLP, gets: tuple[str, ...], m: int, dtype) -> tuple:
    """The kernel's float vectors ``P``, ``K`` and integer vector ``I``."""
    defaults = ACTIVATIONS[spec.activation][1]
    kwargs = {**defaults, **dict(spec.activation_kwargs)}
    kind_name, params = activation_parameters(spec.activation, kwargs)
    kind = {"abrelu": ABRELU, "linear": LINEAR, "erf": ERF, "gelu": GELU}
    head = [
        spec.W_std**2,
        (spec.b_std or 0.0) ** 2,
        spec.readout_W_std**2,
        float(m),
        float(spec.width),
        1.0 if spec.b_std is not None else 0.0,
    ]
    # constants the XLA program folds in float64 and rounds once
    derived = [0.0, 0.0]
    if kind_name == "erf":
        derived = [2 / math.pi, 4 * params[0] * params[1] / math.pi]
    P = np.asarray(head + list(params) + [0.0] * (3 - len(params)) + derived, dtype)
    coeffs = list(atan_coefficients(dtype))
    coeffs += [0.0] * (_N_COEFFS - len(coeffs))
    consts = [math.tan(math.pi / 8), math.pi / 4, math.pi / 2, math.pi, 0.0, 1.0]
    K = np.asarray(consts + coeffs, dtype)
    index = {g: k for k, g in enumerate(gets)}
    flags = [
        kind[kind_name],
        int(spec.parameterization == "standard"),
        index.get("nngp", -1),
        index.get("ntk", -1),
    ]
    return P, K, np.asarray(flags, np.int64)


def cpu_heads(
    spec: MLP,
    gram: np.ndarray,
    sq1: np.ndarray,
    sq2: np.ndarray,
    key1: np.ndarray,
    key2: np.ndarray,
    diags: tuple[tuple[Any, Any], tuple[Any, Any]],
    m: int,
    *,
    gets: tuple[str, ...],
    out: np.ndarray | None = None,
    row0: int = 0,
) -> tuple[np.ndarray, bool]:
    """Every head's kernels of one tile, ``(len(gets), L, b1, b2)``, on the host.

    The compiled counterpart of :func:`~nftk_jax.kernels._fast.fast_heads` with
    ``same = key1[:, None] == key2[None, :]`` (equal keys must have equal
    squared norms).

    Args:
        spec: the architecture (a fast activation).
        gram: ``(b1, b2)`` Gram matrix of the tile's rows and columns.
        sq1: ``(b1,)`` squared row norms; ``sq2``: ``(b2,)`` column ones.
        key1: ``(b1,)`` integer row keys, equal for equal inputs; ``key2``: columns.
        diags: ``((pre1, post1), (pre2, post2))`` from
            :func:`~nftk_jax.kernels._fast.diag_layers`.
        m: the input dimension.
        gets: ``'nngp'`` and/or ``'ntk'``, in output order.
        out: a C-contiguous ``(len(gets), L, n, b2)`` array to write rows
            ``row0 : row0 + b1`` of (in place); ``None``: a new one of ``b1`` rows.
        row0: the first row of ``out`` to write.

    A symmetric ``gram`` with equal row and column vectors gives an exactly
    symmetric result (the arithmetic commutes the row and column terms only).

    Returns:
        ``(heads, finite)``: a new array, aligned as
        :func:`~nftk_jax.core.aligned_empty`'s, and whether all its entries are
        finite (counted as they are written).
    """
    args = _tile_arguments(spec, gram, sq1, sq2, key1, key2, diags, m, gets)
    if out is None:
        out = aligned_empty((len(gets), spec.depth, *gram.shape), gram.dtype)
    bad = np.zeros(gram.shape[0], np.int64)
    _loops().heads(*args, out, bad, row0)
    return out, not bad.any()


def _tile_arguments(spec, gram, sq1, sq2, key1, key2, diags, m, gets) -> tuple:
    """The compiled loops' leading arguments: ``gram, sq1, key1, key2, pre1,
    post1, cols, P, K, I`` in the dtype of ``gram``."""
    dtype = np.dtype(gram.dtype)
    (pre1, post1), (pre2, post2) = diags

    def arr(a):
        return np.ascontiguousarray(np.asarray(a), dtype=dtype)

    P, K, flags = _parameters(spec, gets, m, dtype)
    cols = _loops().column_terms(arr(pre2), arr(post2)[:-1], arr(sq2), P, K, flags[0])
    keys = (np.ascontiguousarray(k, np.int64) for k in (key1, key2))
    return (arr(gram), arr(sq1), *keys, arr(pre1), arr(post1)[:-1], cols, P, K, flags)


def cpu_products(
    spec: MLP,
    gram: np.ndarray,
    sq1: np.ndarray,
    sq2: np.ndarray,
    key1: np.ndarray,
    key2: np.ndarray,
    diags: tuple[tuple[Any, Any], tuple[Any, Any]],
    m: int,
    *,
    v_cols: np.ndarray,
    v_rows: np.ndarray | None,
    weights: np.ndarray | None,
    triangle: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""A tile's NTK heads multiplied by vectors, the heads never stored.

    With the tile's heads :math:`T_l` (rows ``len(sq1)``, columns ``len(sq2)``
    of ``gram``, which may be larger, e.g. padded): the row products
    :math:`T_l v_c` and, with ``v_rows``, the column products
    :math:`T_l^\top u`, per layer, or mixed over the layers by ``weights``.
    Each entry is computed once, in registers, and enters both products, so a
    symmetric kernel's tile above the diagonal stands for its mirror too.

    Args:
        spec, gram, sq1, sq2, key1, key2, diags, m: as in :func:`cpu_heads`.
        v_cols: ``(n2, k)`` vectors on the tile's columns, in the product dtype.
        v_rows: ``(n1, k)`` vectors on its rows (the column products), or
            ``None`` (none).
        weights: ``(L, k)``: column ``c`` of the products is
            :math:`\sum_l w_{lc} T_l v_{:, c}`; ``None``: every layer apart.
        triangle: only the entries on and above the diagonal (a diagonal tile
            of a symmetric kernel); a diagonal entry enters the row products
            only.

    Returns:
        ``(to_rows, to_cols)``: ``(G, n1, k)`` and ``(G, n2, k)`` (``None``
        without ``v_rows``), ``G = 1`` with ``weights``, else ``L``.
    """
    args = _tile_arguments(spec, gram, sq1, sq2, key1, key2, diags, m, ("ntk",))
    pdt = np.dtype(v_cols.dtype)
    n1, n2, k = len(sq1), len(sq2), v_cols.shape[1]
    n_groups = spec.depth if weights is None else 1
    w = np.ones((1, 1), pdt) if weights is None else np.asarray(weights, pdt)
    to_cols = v_rows is not None
    vr = np.zeros((k, 1), pdt) if v_rows is None else np.ascontiguousarray(v_rows.T)
    n_par = _loops().nb.get_num_threads()
    rows_acc = np.zeros((n_par, n_groups, n1, k), pdt)
    cols_acc = np.zeros((n_groups, k, n2 if to_cols else 0), pdt)
    flags = np.asarray([weights is None, to_cols, triangle, PRODUCT_CHUNK], np.int64)
    vc = np.ascontiguousarray(v_cols.T)
    _loops().head_products(*args, w, vc, vr, rows_acc, cols_acc, flags)
    rows = rows_acc.sum(axis=0)
    return rows, (np.swapaxes(cols_acc, 1, 2) if to_cols else None)
