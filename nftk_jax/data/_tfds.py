"""tensorflow-datasets loaders; TensorFlow is imported only when they are called."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..core import NFTKDependencyError, NFTKFileNotFoundError, NFTKInputError
from ._checks import check_int, check_optional_int
from ._dataset import Dataset, TextDataset
from ._preprocess import PreprocessMethod, apply_preprocess, check_method
from ._text import TokenEmbedding, text_features

#: Data set names `load_tfds` supports, and the kind of their inputs.
TFDS_DATASETS: dict[str, str] = {
    "mnist": "image",
    "fashion_mnist": "image",
    "imdb_reviews": "text",
}
_DATA_EXTRA = "pip install 'nftk_jax[data]'"


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise NFTKDependencyError(
            "load_tfds needs tensorflow-datasets (and TensorFlow), which are not "
            f"installed; install the data extra: {_DATA_EXTRA}"
        ) from e
    return tfds


class DataNotPreparedError(NFTKFileNotFoundError):
    """A tensorflow-datasets data set is not prepared in the directory searched.

    Attributes:
        name: the data set name.
        data_dir: the tensorflow-datasets directory that was searched.
    """

    def __init__(self, message: str, *, name: str, data_dir: str):
        super().__init__(message)
        self.name = name
        self.data_dir = data_dir


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    """Silence tensorflow-datasets' absl warnings (e.g. "Variant folder ... has no
    dataset_info.json"): a missing data set is reported by our own error."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _not_found_message(name: str, searched: str, cause: BaseException) -> str:
    return (
        f"load_tfds: the tensorflow-datasets data of {name!r} is not prepared in "
        f"{searched} ({cause}). Provide it in one of two ways: (1) point "
        "`data_dir=` (or the TFDS_DATA_DIR environment variable) at a tensorflow-"
        f"datasets directory where {name!r} is already prepared, e.g. one copied from "
        "a machine that ran tfds.builder(...).download_and_prepare(); or (2) pass "
        "download=True on a machine with network access (with manual_dir= holding "
        "the source archives if they were downloaded by hand)."
    )


def _read_split(
    tfds, builder, split: str, n: int | None, batch_size: int, name: str, kind: str
):
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError as e:
        # tensorflow-datasets signals "not prepared" with an AssertionError.
        if builder.is_prepared():
            raise
        raise DataNotPreparedError(
            _not_found_message(name, str(builder.data_dir), e),
            name=name,
            data_dir=str(builder.data_dir),
        ) from e
    if n is not None:
        ds = ds.take(n)
    # A positive batch size: batch_size=-1 (the whole split at once) breaks under
    # tfds.testing.mock_data and needs the split to fit in memory twice.
    ds = ds.batch(batch_size)
    xs, ys = [], []
    for batch in tfds.as_numpy(ds):
        if kind == "image":
            images = np.asarray(batch["image"])
            xs.append(images.reshape(images.shape[0], -1))
        else:
            xs.extend(t.decode("utf-8") for t in batch["text"])
        ys.append(np.asarray(batch["label"], dtype=np.int64))
    y = np.concatenate(ys) if ys else np.zeros((0,), np.int64)
    if n is not None and y.shape[0] < n:
        raise NFTKInputError(
            f"load_tfds: split {split!r} of {name!r} has only {y.shape[0]} examples, "
            f"fewer than the {n} asked for; lower n_train/n_test or pass None for all."
        )
    if kind == "image":
        n_pixels = int(np.prod(builder.info.features["image"].shape))
        x = np.concatenate(xs) if xs else np.zeros((0, n_pixels), np.uint8)
        return x, y
    return tuple(xs), y


def _check_text_embedding(name: str, kind: str, text_embedding: Any) -> None:
    where = "load_tfds"
    if text_embedding is None:
        return
    if kind != "text":
        raise NFTKInputError(
            f"{where}: `text_embedding` applies to text data sets only, but "
            f"{name!r} holds images; drop text_embedding."
        )
    if not isinstance(text_embedding, TokenEmbedding):
        raise NFTKInputError(
            f"{where}: `text_embedding` must be a TokenEmbedding (see "
            f"load_gpt2_embedding), got {type(text_embedding).__name__}."
        )


def _check_request(
    name, split, download, n_train, n_test, batch_size, text_embedding, preprocess
) -> tuple:
    """Validated ``(kind, n_train, n_test, batch_size, method, raw_text)``."""
    where = "load_tfds"
    if name not in TFDS_DATASETS:
        raise NFTKInputError(
            f"{where}: `name` must be one of {tuple(TFDS_DATASETS)}, got {name!r}."
        )
    kind = TFDS_DATASETS[name]
    if isinstance(split, str) or len(split) != 2:
        raise NFTKInputError(
            f"{where}: `split` must be a pair of split names (train, test), e.g. "
            f"('train', 'test'), got {split!r}."
        )
    if not all(isinstance(s, str) and s for s in split):
        raise NFTKInputError(
            f"{where}: `split` names must be non-empty strings, got {split!r}."
        )
    if not isinstance(download, bool):
        raise NFTKInputError(
            f"{where}: `download` must be True or False, got {download!r}."
        )
    n_train = check_optional_int(n_train, "n_train", minimum=1, where=where)
    n_test = check_optional_int(n_test, "n_test", minimum=0, where=where)
    batch_size = check_int(batch_size, "batch_size", minimum=1, where=where)
    _check_text_embedding(name, kind, text_embedding)
    raw_text = kind == "text" and text_embedding is None
    if preprocess is None:
        method = "scale" if kind == "image" else "none"
    else:
        method = check_method(preprocess, where=where)
        if raw_text and method != "none":
            raise NFTKInputError(
                f"{where}: raw texts of {name!r} cannot be preprocessed with "
                f"{method!r}; pass text_embedding=... to get features, or "
                "preprocess=None."
            )
    return kind, n_train, n_test, batch_size, method, raw_text


def _check_dirs(data_dir: Any, manual_dir: Any) -> str | None:
    """``data_dir`` resolved (``$TFDS_DATA_DIR`` when None); both paths checked."""
    where = "load_tfds"
    for arg, value in (("data_dir", data_dir), ("manual_dir", manual_dir)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise NFTKInputError(
                f"{where}: `{arg}` must be a path or None, got {type(value).__name__}."
            )
    if data_dir is None:
        data_dir = os.environ.get("TFDS_DATA_DIR") or None
    if data_dir is not None:
        data_dir = os.path.expanduser(os.fspath(data_dir))
    return data_dir


def _prepare(tfds, builder, name: str, manual_dir: Any) -> None:
    config = tfds.download.DownloadConfig(
        manual_dir=None
        if manual_dir is None
        else os.path.expanduser(os.fspath(manual_dir))
    )
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as e:
        e.add_note(
            f"load_tfds: preparing {name!r} in {builder.data_dir} failed. Without "
            "network, prepare it elsewhere and point data_dir= (or TFDS_DATA_DIR) "
            "at a copy of that tensorflow-datasets directory."
        )
        raise


def load_tfds(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    download: bool = False,
    split: Sequence[str] = ("train", "test"),
    n_train: int | None = None,
    n_test: int | None = None,
    preprocess: PreprocessMethod | None = None,
    text_embedding: TokenEmbedding | None = None,
    batch_size: int = 1024,
) -> Dataset | TextDataset:
    """Loads ``mnist``, ``fashion_mnist`` or ``imdb_reviews`` via tensorflow-datasets.

    Nothing is downloaded unless ``download=True``: by default the data must already
    be prepared in ``data_dir``, else ``$TFDS_DATA_DIR``, else tensorflow-datasets'
    default (``~/tensorflow_datasets``). tensorflow-datasets and TensorFlow are
    imported inside this function only.

    - ``mnist``, ``fashion_mnist``: 28x28 grey images flattened to 784 features.
    - ``imdb_reviews``: 25,000 + 25,000 movie reviews, labels ``"neg"``/``"pos"``.
      Without ``text_embedding`` the raw texts come back as a `TextDataset`; with it,
      `text_features` turns them into mean token embeddings (the paper's GPT-2
      features) and a `Dataset` comes back.

    Subsets are the first ``n`` examples of a split in the order tensorflow-datasets
    stores them (files are read unshuffled, so it is deterministic).

    Args:
        name: One of `TFDS_DATASETS`: ``"mnist"``, ``"fashion_mnist"``,
            ``"imdb_reviews"``.
        data_dir: tensorflow-datasets data directory; ``None`` uses
            ``$TFDS_DATA_DIR`` if set, else the tensorflow-datasets default.
        manual_dir: Folder with source archives downloaded by hand (passed as
            ``DownloadConfig(manual_dir=...)``); when given, the data set is prepared
            from it even with ``download=False``. Files not found there are fetched
            from the network.
        download: ``True`` downloads and prepares the data if it is not prepared yet
            (needs network).
        split: The ``(train, test)`` split names, e.g. ``("train", "test")`` or
            ``("train[:50%]", "test")``.
        n_train: Number of training examples, from the start of the split; ``None``
            keeps all.
        n_test: Number of test examples; ``None`` keeps all.
        preprocess: One of `PREPROCESS_METHODS`, or ``None`` for the data set's
            default: ``"scale"`` (pixels / 255, in ``[0, 1]``) for images and
            ``"none"`` for text features. Raw texts cannot be preprocessed, so for
            ``imdb_reviews`` without ``text_embedding`` it must be ``None`` or
            ``"none"``.
        text_embedding: For ``imdb_reviews`` only: a `TokenEmbedding` (e.g. from
            `load_gpt2_embedding`) to turn the reviews into features.
        batch_size: Examples per batch read from tensorflow-datasets, >= 1; only
            affects memory and speed.

    Returns:
        A `Dataset` for images and embedded texts, a `TextDataset` for raw texts.

    Raises:
        DataNotPreparedError: (a ``FileNotFoundError``) if the data is not prepared
            and ``download`` is False; the message names both ways to provide it.
        ValueError: On an unsupported ``name`` or another bad argument.
        ImportError: If tensorflow-datasets is not installed (install the ``data``
            extra).
    """
    kind, n_train, n_test, batch_size, method, raw_text = _check_request(
        name, split, download, n_train, n_test, batch_size, text_embedding, preprocess
    )
    data_dir = _check_dirs(data_dir, manual_dir)

    tfds = _import_tfds()
    with _quiet_absl():
        builder = tfds.builder(name, data_dir=data_dir)
    if download or manual_dir is not None:
        _prepare(tfds, builder, name, manual_dir)

    train_split, test_split = split
    read = dict(batch_size=batch_size, name=name, kind=kind)
    with _quiet_absl():
        x_tr, y_tr = _read_split(tfds, builder, train_split, n_train, **read)
        x_te, y_te = _read_split(tfds, builder, test_split, n_test, **read)
    classes = tuple(builder.info.features["label"].names)

    if raw_text:
        return TextDataset(x_tr, y_tr, x_te, y_te, classes, name)
    if kind == "text":
        x_tr = text_features(
            x_tr, tokenizer=text_embedding.tokenizer, embedding=text_embedding.embedding
        )
        x_te = text_features(
            x_te, tokenizer=text_embedding.tokenizer, embedding=text_embedding.embedding
        )
    x_tr, x_te = apply_preprocess(
        x_tr, x_te, method=method, max_value=255.0 if kind == "image" else None
    )
    return Dataset(x_tr, y_tr, x_te, y_te, classes, name)
