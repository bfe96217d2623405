"""scikit-learn's 8x8 digits: a tiny second data set for tests and quick checks."""

from __future__ import annotations

import functools
import numbers

import numpy as np

from ..core import NFTKInputError
from ._checks import check_int, package_file, read_only, split_by_permutation
from ._dataset import Dataset
from ._mnist5k import MNIST_CLASSES
from ._preprocess import PreprocessMethod, apply_preprocess, check_method

_N_DIGITS = 1797


@functools.lru_cache(maxsize=1)
def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(1797, 64)`` pixels 0..16 and ``(1797,)`` labels, read once.

    The csv that scikit-learn ships is read directly (64 pixels then the label per
    line), which avoids importing scikit-learn (seconds); if the file is not where
    this scikit-learn keeps it, `sklearn.datasets.load_digits` is used instead.
    """
    path = package_file("sklearn", "datasets", "data", "digits.csv.gz")
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        from sklearn.datasets import load_digits as sklearn_load_digits

        bunch = sklearn_load_digits()
        x, y = np.asarray(bunch.data, np.float64), np.asarray(bunch.target, np.int64)
    if x.shape != (_N_DIGITS, 64) or y.min() < 0 or y.max() > 9:
        raise NFTKInputError(
            "load_digits: scikit-learn's digits data are not 1797 rows of 64 pixels "
            "and a label in 0..9; reinstall scikit-learn."
        )
    return read_only(x, y)


def load_digits(
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    preprocess: PreprocessMethod = "scale",
) -> Dataset:
    """Loads scikit-learn's 1,797 8x8 handwritten digits, split into train and test.

    The images ship with scikit-learn (no network). Rows are shuffled with
    ``np.random.default_rng(seed).permutation``; the last ``round(test_fraction *
    1797)`` shuffled rows form the test set. Pixel values are integers 0..16.

    Args:
        test_fraction: Fraction of the examples held out for testing, in ``(0, 1)``.
        seed: Non-negative integer seed of the shuffle.
        preprocess: One of `PREPROCESS_METHODS`. The default ``"scale"`` divides by
            16, so pixels are in ``[0, 1]``. See `preprocess`.

    Returns:
        A `Dataset` named ``"digits"`` with 64 features and classes ``"0"`` ... ``"9"``.

    Raises:
        ValueError: If ``test_fraction`` is not in ``(0, 1)`` or leaves an empty
            split, or another argument is bad.
    """
    where = "load_digits"
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, numbers.Real)
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise NFTKInputError(
            f"{where}: `test_fraction` must be a number strictly between 0 and 1, "
            f"got {test_fraction!r}."
        )
    seed = check_int(seed, "seed", minimum=0, where=where)
    method = check_method(preprocess, where=where)

    x, y = _read_digits()
    n = x.shape[0]
    n_test = int(round(float(test_fraction) * n))
    if n_test < 1 or n_test > n - 1:
        raise NFTKInputError(
            f"{where}: test_fraction={test_fraction} leaves {n_test} of {n} examples "
            "for testing; both splits need at least one example."
        )
    x_tr, y_tr, x_te, y_te = split_by_permutation(
        x, y, n_train=n - n_test, n_test=n_test, seed=seed
    )
    x_tr, x_te = apply_preprocess(x_tr, x_te, method=method, max_value=16.0)
    return Dataset(x_tr, y_tr, x_te, y_te, MNIST_CLASSES, "digits")
