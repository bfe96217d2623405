"""Host buffers that JAX takes without a copy.

On CPU, ``jax.device_put`` of a numpy array aliases its memory when the data start
at a multiple of 64 bytes, and copies it otherwise (``jnp.asarray`` always copies,
with JAX 0.10); numpy aligns its large allocations to 16 bytes only, so a copy is
the rule. The layerwise kernels and their sub-blocks, the largest arrays of a run,
are therefore written into buffers from :func:`aligned_empty` and handed to JAX
with ``device_put``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ALIGNMENT", "aligned_empty", "take_blocks"]

#: Byte alignment XLA's CPU client needs to alias a host buffer.
ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-ordered array whose data start at a multiple of
    :data:`ALIGNMENT` bytes.

    Example:
        >>> a = aligned_empty((3, 5), np.float64)
        >>> a.shape, a.ctypes.data % ALIGNMENT, a.flags.c_contiguous
        ((3, 5), 0, True)
    """
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dt).reshape(shape)


def take_blocks(
    theta: np.ndarray, rows: Any, cols: Any, dtype: Any = None
) -> np.ndarray:
    """``theta[:, rows][:, :, cols]`` layer by layer, into an aligned buffer of
    ``dtype`` (default: ``theta``'s).

    The two-step fancy index holds an ``(L, len(rows), n)`` intermediate; this
    holds one layer's ``(len(rows), len(cols))`` block at a time. A wider
    ``dtype`` converts while copying, so no block of the narrow dtype is made.

    Example:
        >>> t = np.arange(2 * 4 * 4.0, dtype=np.float32).reshape(2, 4, 4)
        >>> b = take_blocks(t, [2, 0], [1, 3], dtype=np.float64)
        >>> bool(np.array_equal(b, t[:, [2, 0]][:, :, [1, 3]])), b.dtype
        (True, dtype('float64'))
    """
    theta = np.asarray(theta)  # a JAX array on CPU: a view, no copy
    r, c = np.asarray(rows), np.asarray(cols)
    out = aligned_empty((theta.shape[0], len(r), len(c)), dtype or theta.dtype)
    for layer, block in zip(theta, out, strict=True):
        block[...] = layer[np.ix_(r, c)]
    return out
