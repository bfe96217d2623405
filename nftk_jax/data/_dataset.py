"""The two containers every loader returns: `Dataset` and `TextDataset`."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
    """A train/test split of a classification data set, as dense feature rows.

    Every loader in `nftk_jax.data` returns one of these (or a `TextDataset` for raw
    text). Labels are class indices: ``classes[y_train[i]]`` names example ``i``.

    Attributes:
        x_train: Training features, one example per row.
        y_train: Training labels, class indices in ``[0, len(classes))``.
        x_test: Test features, same number of columns as ``x_train``.
        y_test: Test labels.
        classes: Class names; ``classes[k]`` names label ``k``.
        name: Short name of the data set, e.g. ``"mnist5k"``.
    """

    x_train: np.ndarray  # (n_train, m) float32
    y_train: np.ndarray  # (n_train,) int64
    x_test: np.ndarray  # (n_test, m) float32
    y_test: np.ndarray  # (n_test,) int64
    classes: tuple[str, ...]  # (n_classes,) class names, indexed by label
    name: str  # e.g. "mnist5k", "digits", "fashion_mnist"


class TextDataset(NamedTuple):
    """A train/test split of a text classification data set, as raw strings.

    Returned by `load_tfds("imdb_reviews")` when no ``text_embedding`` is given; turn
    it into a `Dataset` with `text_features`.

    Attributes:
        texts_train: Training documents.
        y_train: Training labels, class indices in ``[0, len(classes))``.
        texts_test: Test documents.
        y_test: Test labels.
        classes: Class names; ``classes[k]`` names label ``k``.
        name: Short name of the data set, e.g. ``"imdb_reviews"``.
    """

    texts_train: tuple[str, ...]  # (n_train,) unicode documents
    y_train: np.ndarray  # (n_train,) int64
    texts_test: tuple[str, ...]  # (n_test,) unicode documents
    y_test: np.ndarray  # (n_test,) int64
    classes: tuple[str, ...]  # (n_classes,) class names, indexed by label
    name: str  # e.g. "imdb_reviews"
