"""Input validation shared by the public API.

Every error names the argument and the fix.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from ._errors import NFTKInputError, NFTKTypeError


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise NFTKTypeError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise NFTKInputError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NFTKTypeError(f"{name} must be a real number, got {value!r}.") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise NFTKInputError(f"{name} must be finite and {bound}, got {value!r}.")
    return v


def resolve_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """Float dtype to compute in.

    ``None`` means float64 if x64 is enabled, else float32.
    """
    if dtype is None:
        return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise NFTKTypeError(
            f"{name} must be float32 or float64, got {dtype!r}."
        ) from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise NFTKInputError(f"{name} must be float32 or float64, got {dt}.")
    if dt == np.float64 and not jax.config.jax_enable_x64:
        raise NFTKInputError(
            f"{name}=float64 needs 64-bit JAX: call "
            "jax.config.update('jax_enable_x64', True) at start-up (or set "
            "JAX_ENABLE_X64=1), or pass dtype=float32."
        )
    return dt


def as_real_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a NumPy array of real numbers (floats or integers), no copy."""
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise NFTKTypeError(
            f"{name} must be a real numeric array, got dtype {arr.dtype}; convert it "
            "with np.asarray(..., dtype=np.float32)."
        )
    return arr


def check_positive_number(value: Any, not_number: str, not_positive: str) -> float:
    """``value`` as a finite float > 0; otherwise an :class:`NFTKInputError` with
    the message ``not_number`` (no float) or ``not_positive``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NFTKInputError(not_number) from None
    if not math.isfinite(v) or v <= 0:
        raise NFTKInputError(not_positive)
    return v


def check_inputs(x: Any, name: str, *, feature_dim: int | None = None) -> np.ndarray:
    """Validate a design matrix: rank 2, non-empty, real, finite.

    Returns it as a NumPy array (no copy where possible); the caller casts.
    """
    if x is None:
        raise NFTKInputError(f"{name} is None; pass an array of shape (n, features).")
    arr = as_real_array(x, name)
    if arr.ndim != 2:
        raise NFTKInputError(
            f"{name} must have rank 2 (n, features), got shape {arr.shape}; flatten "
            f"each example first, e.g. {name}.reshape(len({name}), -1)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise NFTKInputError(
            f"{name} is empty (shape {arr.shape}); it needs n >= 1 rows."
        )
    if feature_dim is not None and arr.shape[1] != feature_dim:
        raise NFTKInputError(
            f"{name} has {arr.shape[1]} features but the other input has "
            f"{feature_dim}; both must share the feature dimension."
        )
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise NFTKInputError(
            f"{name} contains {bad} NaN or infinite value(s); clean or impute them."
        )
    return arr
