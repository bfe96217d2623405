"""Argument checks shared by the loaders; each error names the argument. Also the
loaders' shared steps: finding a file shipped in a package, read-only arrays."""

from __future__ import annotations

import importlib.util
import numbers
import pathlib

import numpy as np

from ..core import NFTKInputError


def package_file(package: str, *parts: str) -> pathlib.Path | None:
    """The path of ``parts`` inside the installed ``package`` (which may not exist);
    ``None`` if the package is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(spec.submodule_search_locations[0]).joinpath(*parts)


def read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """``arrays``, each marked read-only (they are cached and shared)."""
    for a in arrays:
        a.setflags(write=False)
    return arrays


def check_int(value, name: str, *, minimum: int, where: str) -> int:
    """Returns ``value`` as an ``int``, checked to be an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NFTKInputError(
            f"{where}: `{name}` must be an integer >= {minimum}, "
            f"got {value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise NFTKInputError(f"{where}: `{name}` must be >= {minimum}, got {value}.")
    return int(value)


def check_optional_int(value, name: str, *, minimum: int, where: str) -> int | None:
    """Like `check_int`, but ``None`` passes through (meaning "all")."""
    if value is None:
        return None
    return check_int(value, name, minimum=minimum, where=where)


def split_by_permutation(
    x: np.ndarray, y: np.ndarray, *, n_train: int, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffles rows with ``default_rng(seed).permutation`` and takes disjoint splits.

    The first ``n_train`` shuffled rows are the training set, the next ``n_test`` the
    test set; the rest are unused.
    """
    order = np.random.default_rng(seed).permutation(x.shape[0])
    train, test = order[:n_train], order[n_train : n_train + n_test]
    return x[train], y[train], x[test], y[test]
