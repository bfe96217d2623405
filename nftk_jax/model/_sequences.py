"""Variable-length sequences as one packed 2-D array, the RNN's input format.

Every row of a packed array holds one sequence::

    [T_i, m, x_{T_i}, x_{T_i - 1}, ..., x_1, 0, ..., 0]

its length ``T_i``, its feature count ``m``, then its steps in reverse order (the
last step first, each step's ``m`` features in a row), zero-padded to the longest
sequence. Reversing aligns every sequence at its last step, which is how the
recurrent kernels compare sequences of different lengths, so a kernel tile only
reads the first ``min(T_max, T'_max)`` steps of both sides. Because every row
describes itself, row subsets (``packed[idx]``) are packed arrays too: the MKL
learner, the layer operators and the tiling slice and pad them like any design
matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core import NFTKInputError, as_real_array

__all__ = ["pack_sequences", "unpack_sequences", "as_packed", "packed_shape"]

_HEADER = 2  # length, features


def _check_finite(values: np.ndarray, name: str) -> None:
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        raise NFTKInputError(
            f"{name} contains {bad} NaN or infinite value(s); clean or impute them."
        )


def _from_list(seqs: Sequence[Any], name: str) -> np.ndarray:
    if len(seqs) == 0:
        raise NFTKInputError(f"{name} is empty; it needs at least one sequence.")
    steps = []
    for i, s in enumerate(seqs):
        a = as_real_array(s, f"{name}[{i}]")
        if a.ndim == 1:
            a = a[:, None]  # a univariate series
        if a.ndim != 2:
            raise NFTKInputError(
                f"{name}[{i}] must have shape (T, features) or (T,), got {a.shape}."
            )
        if a.shape[0] == 0:
            raise NFTKInputError(
                f"{name}[{i}] is an empty sequence (length 0); every sequence needs "
                "at least one step."
            )
        if a.shape[1] == 0:
            raise NFTKInputError(f"{name}[{i}] has 0 features per step.")
        if steps and a.shape[1] != steps[0].shape[1]:
            raise NFTKInputError(
                f"{name}[{i}] has {a.shape[1]} features per step but {name}[0] has "
                f"{steps[0].shape[1]}; all sequences must share the feature size."
            )
        _check_finite(a, f"{name}[{i}]")
        steps.append(a)
    m = steps[0].shape[1]
    t_max = max(len(a) for a in steps)
    out = np.zeros((len(steps), _HEADER + t_max * m), np.float64)
    for i, a in enumerate(steps):
        out[i, 0], out[i, 1] = len(a), m
        out[i, _HEADER : _HEADER + a.size] = a[::-1].reshape(-1)
    return out


def _from_padded(values: Any, lengths: Any, name: str) -> np.ndarray:
    v = as_real_array(values, name)
    if v.ndim != 3:
        raise NFTKInputError(
            f"{name} must be a padded array of shape (n, T_max, features), got "
            f"{v.shape}."
        )
    n, t_max, _ = v.shape
    if n == 0 or t_max == 0 or v.shape[2] == 0:
        raise NFTKInputError(
            f"{name} is empty (shape {v.shape}); it needs n >= 1 rows."
        )
    if lengths is None:
        lens = np.full(n, t_max, np.int64)
    else:
        raw = np.asarray(lengths)
        if raw.shape != (n,):
            raise NFTKInputError(
                f"lengths of {name} must have shape ({n},), one per padded row, got "
                f"{raw.shape}."
            )
        lens = raw.astype(np.int64)
        if not np.all(lens == raw) or np.any(lens < 1) or np.any(lens > t_max):
            raise NFTKInputError(
                f"lengths of {name} must be integers in [1, {t_max}] (the padded "
                f"length), got range [{raw.min()}, {raw.max()}]; a length past the "
                "padding or below 1 does not describe a sequence."
            )
    return _from_list([v[i, : lens[i]] for i in range(n)], name)


def pack_sequences(seqs: Any, lengths: Any = None, *, name: str = "x") -> np.ndarray:
    """Pack variable-length sequences into the RNN's 2-D input format.

    Args:
        seqs: a list of ``(T_i, features)`` arrays (``(T_i,)`` for univariate
            series), or a padded ``(n, T_max, features)`` array whose row ``i``
            holds its sequence in the first ``lengths[i]`` steps (the padding
            values are ignored).
        lengths: ``(n,)`` lengths of a padded array; ``None``: every row is full.
        name: the argument's name in error messages.

    Returns:
        ``(n, 2 + T_max * features)`` float64 rows ``[T_i, features, x_{T_i}, ...,
        x_1, 0, ...]`` (see the module docstring).

    Example:
        >>> import numpy as np
        >>> from nftk_jax.model import pack_sequences
        >>> pack_sequences([np.array([[1.0], [2.0]]), np.array([[3.0]])])
        array([[2., 1., 2., 1.],
               [1., 1., 3., 0.]])
    """
    if isinstance(seqs, np.ndarray) and seqs.ndim == 3:
        return _from_padded(seqs, lengths, name)
    if lengths is not None:
        raise NFTKInputError(
            f"lengths was given but {name} is not a padded (n, T_max, features) "
            "array; pass lengths only with a padded array."
        )
    if isinstance(seqs, np.ndarray):
        raise NFTKInputError(
            f"{name} must be a list of (T_i, features) arrays or a padded (n, T_max, "
            f"features) array, got an array of shape {seqs.shape}."
        )
    return _from_list(list(seqs), name)


def packed_shape(packed: np.ndarray, name: str = "x") -> tuple[int, int, int]:
    """``(n, T_max, features)`` of a packed array, after checking its header."""
    p = as_real_array(packed, name)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] <= _HEADER:
        raise NFTKInputError(
            f"{name} of shape {p.shape} is not a packed sequence array; build one "
            "with pack_sequences(list_of_arrays), or pass the list itself."
        )
    m = p[0, 1]
    lens = p[:, 0]
    width = p.shape[1] - _HEADER
    ok = (
        m >= 1
        and m == int(m)
        and width % int(m) == 0
        and np.all(p[:, 1] == m)
        and np.all(lens == np.round(lens))
        and np.all(lens >= 1)
        and np.all(lens <= width // max(int(m), 1))
    )
    if not ok:
        raise NFTKInputError(
            f"{name} is not a valid packed sequence array (its length and feature "
            "columns disagree with its width); build it with pack_sequences."
        )
    _check_finite(p, name)
    return p.shape[0], width // int(m), int(m)


def as_packed(x: Any, name: str, *, features: int | None = None) -> np.ndarray:
    """Any accepted sequence input as a validated packed array.

    Accepts a packed 2-D array (from :func:`pack_sequences`), a padded
    ``(n, T_max, features)`` array, a tuple ``(padded, lengths)`` or a list of
    ``(T_i, features)`` arrays. ``features`` checks the feature size against the
    other input of a kernel.
    """
    if x is None:
        raise NFTKInputError(f"{name} is None; pass a list of (T_i, features) arrays.")
    if (
        isinstance(x, tuple)
        and len(x) == 2
        and np.ndim(x[0]) == 3
        and np.ndim(x[1]) == 1
    ):
        packed = pack_sequences(np.asarray(x[0]), x[1], name=name)
    elif isinstance(x, np.ndarray) and x.ndim == 2:
        packed = x
    else:
        packed = pack_sequences(x, name=name)
    _, _, m = packed_shape(packed, name)
    if features is not None and m != features:
        raise NFTKInputError(
            f"{name} has {m} features per step but the other input has {features}; "
            "both must share the feature size."
        )
    return packed


def unpack_sequences(packed: Any) -> list[np.ndarray]:
    """The list of ``(T_i, features)`` sequences of a packed array."""
    p = np.asarray(packed)
    n, _, m = packed_shape(p)
    out = []
    for i in range(n):
        t = int(p[i, 0])
        out.append(p[i, _HEADER : _HEADER + t * m].reshape(t, m)[::-1].copy())
    return out
