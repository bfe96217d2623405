"""Input validation that depends on the spec: design matrices or packed sequences."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import check_inputs
from ._rnn import RNN
from ._sequences import as_packed, packed_shape

__all__ = ["check_spec_inputs", "input_features"]


def input_features(spec: Any, x: np.ndarray) -> int:
    """Features of validated inputs: per step for an RNN, per row otherwise."""
    return packed_shape(x)[2] if isinstance(spec, RNN) else x.shape[1]


def check_spec_inputs(spec: Any, x: Any, name: str, *, like: Any = None) -> np.ndarray:
    """``x`` validated for ``spec``, matching the features of ``like`` if given.

    An :class:`RNN` takes sequences (a list of ``(T_i, features)`` arrays, a padded
    array with lengths, or a packed array) and returns them packed; any other spec
    takes an ``(n, features)`` design matrix.
    """
    feats = None if like is None else input_features(spec, like)
    if isinstance(spec, RNN):
        return as_packed(x, name, features=feats)
    return check_inputs(x, name, feature_dim=feats)
