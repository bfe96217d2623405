"""Feature preprocessing: one function, four named methods, fitted on training data."""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike

from ..core import NFTKInputError

PreprocessMethod = Literal["none", "scale", "center", "unit_norm"]

#: The accepted values of ``method`` in `preprocess` (and of ``preprocess=`` in the
#: loaders).
PREPROCESS_METHODS: tuple[str, ...] = ("none", "scale", "center", "unit_norm")


def check_method(method, *, where: str, name: str = "preprocess") -> str:
    """Returns ``method`` after checking it is one of `PREPROCESS_METHODS`."""
    if not isinstance(method, str) or method not in PREPROCESS_METHODS:
        raise NFTKInputError(
            f"{where}: `{name}` must be one of {PREPROCESS_METHODS}, got {method!r}."
        )
    return method


def _as_matrix(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise NFTKInputError(
            f"preprocess: `{name}` must be a numeric (n, m) array; it could not be "
            f"converted to float ({e})."
        ) from e
    if a.ndim != 2:
        raise NFTKInputError(
            f"preprocess: `{name}` must be a 2-D (n, m) array with one example per "
            f"row, got shape {a.shape}; flatten images with x.reshape(len(x), -1)."
        )
    if not np.all(np.isfinite(a)):
        raise NFTKInputError(
            f"preprocess: `{name}` contains NaN or infinite values; clean them first."
        )
    return a


@overload
def preprocess(
    x_train: ArrayLike,
    x_test: None = None,
    *,
    method: PreprocessMethod,
    max_value: float | None = None,
) -> np.ndarray: ...


@overload
def preprocess(
    x_train: ArrayLike,
    x_test: ArrayLike,
    *,
    method: PreprocessMethod,
    max_value: float | None = None,
) -> tuple[np.ndarray, np.ndarray]: ...


def preprocess(
    x_train: ArrayLike,
    x_test: ArrayLike | None = None,
    *,
    method: PreprocessMethod,
    max_value: float | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Preprocesses feature rows; statistics come from ``x_train`` only.

    Methods that need a statistic (``"scale"``, ``"center"``) fit it on ``x_train``
    and apply the same transform to ``x_test``, so no test information leaks into the
    training features.

    - ``"none"``: the features unchanged (as float32).
    - ``"scale"``: divide everything by one number, ``max_value`` when given, else
      ``max |x_train|``. For 8-bit pixels the loaders pass ``max_value=255`` so that
      pixels land in ``[0, 1]`` whatever the subset.
    - ``"center"``: subtract the per-feature (column) mean of ``x_train`` from both.
    - ``"unit_norm"``: divide each row by its Euclidean (L2) norm, so every example
      lies on the unit sphere. Row-wise, so nothing is fitted; rows that are all zero
      stay all zero.

    Computation is in float64; the result is float32.

    Args:
        x_train: ``(n, m)`` training features.
        x_test: Optional ``(n_test, m)`` test features, transformed with the
            statistics of ``x_train``.
        method: One of `PREPROCESS_METHODS`: ``"none"``, ``"scale"``, ``"center"``,
            ``"unit_norm"``.
        max_value: The divisor for ``method="scale"`` (must be > 0). Only valid with
            ``"scale"``.

    Returns:
        The transformed ``x_train`` as a float32 ``(n, m)`` array, or the pair
        ``(x_train, x_test)`` when ``x_test`` is given.

    Raises:
        ValueError: If ``method`` is unknown, an input is not a finite 2-D array, the
            column counts differ, ``max_value`` is not positive or is given for a
            method other than ``"scale"``, or ``"scale"`` finds ``x_train`` all zero.
    """
    method = check_method(method, where="preprocess", name="method")
    a = _as_matrix(x_train, "x_train")
    b = None
    if x_test is not None:
        b = _as_matrix(x_test, "x_test")
        if b.shape[1] != a.shape[1]:
            raise NFTKInputError(
                f"preprocess: `x_test` has {b.shape[1]} columns but `x_train` has "
                f"{a.shape[1]}; both must hold the same features."
            )
    if max_value is not None and method != "scale":
        raise NFTKInputError(
            f"preprocess: `max_value` is only used by method='scale', got "
            f"method={method!r}; drop max_value."
        )

    if method == "scale":
        if max_value is None:
            if a.size == 0:
                raise NFTKInputError(
                    "preprocess: method='scale' needs a non-empty `x_train` to find "
                    "its maximum, or pass max_value explicitly."
                )
            divisor = float(np.max(np.abs(a)))
            if divisor == 0.0:
                raise NFTKInputError(
                    "preprocess: method='scale' found `x_train` all zero, so there is "
                    "no maximum to divide by; pass max_value or use method='none'."
                )
        else:
            divisor = float(max_value)
            if not np.isfinite(divisor) or divisor <= 0.0:
                raise NFTKInputError(
                    f"preprocess: `max_value` must be a finite number > 0, got "
                    f"{max_value!r}."
                )

        def transform(z: np.ndarray) -> np.ndarray:
            return z / divisor

    elif method == "center":
        if a.shape[0] == 0:
            raise NFTKInputError(
                "preprocess: method='center' needs at least one row in `x_train` to "
                "compute the mean."
            )
        mean = a.mean(axis=0)

        def transform(z: np.ndarray) -> np.ndarray:
            return z - mean

    elif method == "unit_norm":

        def transform(z: np.ndarray) -> np.ndarray:
            norms = np.linalg.norm(z, axis=1, keepdims=True)
            return z / np.where(norms > 0.0, norms, 1.0)

    else:  # "none"

        def transform(z: np.ndarray) -> np.ndarray:
            return z

    out_train = transform(a).astype(np.float32)
    if b is None:
        return out_train
    return out_train, transform(b).astype(np.float32)


def apply_preprocess(
    x_train: np.ndarray,
    x_test: np.ndarray,
    *,
    method: str,
    max_value: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loader helper: `preprocess` with ``max_value`` used only for ``"scale"``."""
    return preprocess(
        x_train,
        x_test,
        method=method,  # type: ignore[arg-type]
        max_value=max_value if method == "scale" else None,
    )
