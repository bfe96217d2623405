"""UCR/UEA time-series classification sets shipped inside aeon's wheel.

aeon (the optional ``timeseries`` extra) carries a few archive sets as ``.ts`` files
under ``aeon/datasets/data/<name>/``; :func:`load_ucr` reads them from there with
aeon's own ``.ts`` reader, so nothing is downloaded. The official train/test splits
are kept; every series is z-normalised on its own (per channel), the UCR convention.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from ..core import NFTKDependencyError, NFTKInputError

__all__ = [
    "UCR_DATASETS",
    "SequenceDataset",
    "length_view",
    "load_ucr",
    "resample_sequences",
]

#: The classification sets aeon ships in its wheel (the last two have variable length).
UCR_DATASETS = (
    "GunPoint",
    "ItalyPowerDemand",
    "ArrowHead",
    "OSULeaf",
    "ACSF1",
    "JapaneseVowels",
    "PickupGestureWiimoteZ",
)


class SequenceDataset(NamedTuple):
    """A train/test split of a sequence classification set.

    Attributes:
        x_train: training sequences, each ``(T_i, features)`` float64.
        y_train: training labels, class indices in ``[0, len(classes))``.
        x_test: test sequences.
        y_test: test labels.
        classes: class names; ``classes[k]`` names label ``k``.
        name: e.g. ``"GunPoint"``.
    """

    x_train: tuple[np.ndarray, ...]
    y_train: np.ndarray
    x_test: tuple[np.ndarray, ...]
    y_test: np.ndarray
    classes: tuple[str, ...]
    name: str


def _aeon_data_dir() -> str:
    try:
        import aeon.datasets
    except ImportError as err:
        raise NFTKDependencyError(
            "load_ucr needs aeon, the optional 'timeseries' extra: "
            "pip install 'nftk_jax[timeseries]'."
        ) from err
    return os.path.join(os.path.dirname(aeon.datasets.__file__), "data")


def _znorm(series: np.ndarray) -> np.ndarray:
    """``(T, m)`` with every channel at mean 0 and standard deviation 1."""
    mu = series.mean(axis=0, keepdims=True)
    sd = series.std(axis=0, keepdims=True)
    return (series - mu) / np.where(sd > 0, sd, 1.0)


def _read(path: str) -> tuple[list[np.ndarray], np.ndarray]:
    from aeon.datasets import load_from_ts_file

    x, y = load_from_ts_file(path)
    # aeon gives (n, channels, T) or a list of (channels, T_i): steps first here.
    seqs = [np.asarray(s, np.float64).T for s in x]
    return seqs, np.asarray(y)


def _label_order(labels: np.ndarray) -> list[str]:
    names = sorted({str(v) for v in labels})
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def load_ucr(name: str, *, normalise: bool = True) -> SequenceDataset:
    """A UCR/UEA set from aeon's wheel, with its official train/test split.

    Args:
        name: one of :data:`UCR_DATASETS` (any other set aeon ships also works).
        normalise: z-normalise every series per channel (the UCR convention).

    Returns:
        A :class:`SequenceDataset` of ``(T_i, features)`` sequences.

    Raises:
        ImportError: aeon is not installed (the ``timeseries`` extra).
        ValueError: ``name`` is not a set aeon ships.

    Example:
        >>> from nftk_jax.data import load_ucr
        >>> ds = load_ucr("GunPoint")  # doctest: +SKIP
        >>> len(ds.x_train), ds.x_train[0].shape, ds.classes  # doctest: +SKIP
        (50, (150, 1), ('1', '2'))
    """
    base = _aeon_data_dir()
    folder = os.path.join(base, str(name))
    train = os.path.join(folder, f"{name}_TRAIN.ts")
    test = os.path.join(folder, f"{name}_TEST.ts")
    if not (os.path.isfile(train) and os.path.isfile(test)):
        shipped = sorted(
            d
            for d in os.listdir(base)
            if os.path.isfile(os.path.join(base, d, f"{d}_TRAIN.ts"))
        )
        raise NFTKInputError(
            f"name={name!r} is not a classification set shipped with aeon; "
            f"choose one of {shipped}."
        )
    xs_tr, y_tr = _read(train)
    xs_te, y_te = _read(test)
    if normalise:
        xs_tr = [_znorm(s) for s in xs_tr]
        xs_te = [_znorm(s) for s in xs_te]
    classes = _label_order(np.concatenate([y_tr, y_te]))
    index = {c: i for i, c in enumerate(classes)}

    def encode(y: Any) -> np.ndarray:
        return np.array([index[str(v)] for v in y], np.int64)

    return SequenceDataset(
        tuple(xs_tr), encode(y_tr), tuple(xs_te), encode(y_te), tuple(classes), name
    )


def resample_sequences(seqs: Any, length: int, *, flatten: bool = True) -> np.ndarray:
    """Resample every sequence to ``length`` steps (linear interpolation).

    Each series is stretched or squeezed on its own (its first and last steps are
    kept, the steps between are interpolated linearly), so no statistic of other
    series enters: the training and test series go through the same map.

    Args:
        seqs: ``(T_i, features)`` or ``(T_i,)`` arrays of any lengths (>= 1).
        length: the common number of steps (>= 1).
        flatten: ``True`` gives the fixed-size rows an MLP needs,
            ``(n, length * features)``; ``False`` keeps the steps,
            ``(n, length, features)``, a padded array every row of which is full
            (an RNN input of one common length).

    Example:
        >>> import numpy as np
        >>> from nftk_jax.data import resample_sequences
        >>> resample_sequences([np.array([0.0, 2.0]), np.array([1.0, 1.0, 1.0])], 3)
        array([[0., 1., 2.],
               [1., 1., 1.]])
        >>> resample_sequences([np.zeros((5, 2))], 3, flatten=False).shape
        (1, 3, 2)
    """
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise NFTKInputError(f"length must be an integer >= 1, got {length!r}.")
    if int(length) < 1:
        raise NFTKInputError(f"length must be >= 1, got {length}.")
    rows = []
    for s in seqs:
        a = np.asarray(s, np.float64)
        a = a[:, None] if a.ndim == 1 else a
        if a.ndim != 2 or len(a) == 0:
            raise NFTKInputError(
                "resample_sequences takes non-empty (T_i, features) or (T_i,) "
                f"arrays, got one of shape {a.shape}."
            )
        src = np.linspace(0.0, 1.0, len(a)) if len(a) > 1 else np.zeros(1)
        dst = np.linspace(0.0, 1.0, int(length))
        rows.append(np.stack([np.interp(dst, src, col) for col in a.T], axis=1))
    if not rows:
        raise NFTKInputError("resample_sequences needs at least one sequence.")
    if len({r.shape[1] for r in rows}) > 1:
        raise NFTKInputError(
            "resample_sequences: every sequence needs the same number of features, "
            f"got {sorted({r.shape[1] for r in rows})}."
        )
    out = np.stack(rows)
    return out.reshape(len(rows), -1) if flatten else out


def length_view(seqs: Any, length: int | None) -> Any:
    """The sequences an RNN reads: as they are, or resampled to one length.

    ``length=None`` keeps every series as it is (a list of ``(T_i, features)``
    arrays, which the recurrent kernels align at their last step); an integer
    resamples every series on its own to ``length`` steps, ``(n, length,
    features)`` (:func:`resample_sequences` with ``flatten=False``), which
    compares series of different lengths step for step over their whole span,
    and, for a length below the series', shortens the recursion. Either way the
    map is applied to each series alone, so the view of the test series is the
    same function as that of the training series, and a length chosen on the
    training set (``select_spec`` with a mapping of views) can be applied to the
    test set unchanged.

    Example:
        >>> import numpy as np
        >>> from nftk_jax.data import length_view
        >>> seqs = [np.arange(4.0), np.arange(9.0)]
        >>> [len(s) for s in length_view(seqs, None)], length_view(seqs, 3).shape
        ([4, 9], (2, 3, 1))
    """
    if length is None:
        return [np.asarray(s) for s in seqs]
    return resample_sequences(seqs, length, flatten=False)
