"""Fashion-MNIST from wherever it already is: a folder, Debian's package or tfds."""

from __future__ import annotations

import os
import pathlib

from ..core import NFTKFileNotFoundError, NFTKInputError
from ._dataset import Dataset
from ._idx import DEBIAN_FASHION_MNIST_DIR, FASHION_MNIST_CLASSES, load_idx_dataset
from ._preprocess import PreprocessMethod

#: Where to fetch the four IDX files by hand (the authors' mirror).
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_TRAIN_IMAGES = "train-images-idx3-ubyte"


def _has_idx(folder: pathlib.Path) -> bool:
    return any((folder / f"{_TRAIN_IMAGES}{s}").is_file() for s in ("", ".gz"))


def _has_tfds(folder: pathlib.Path) -> bool:
    return (folder / "fashion_mnist").is_dir()


def _tfds_default_dirs() -> list[pathlib.Path]:
    dirs = []
    if os.environ.get("TFDS_DATA_DIR"):
        dirs.append(pathlib.Path(os.environ["TFDS_DATA_DIR"]).expanduser())
    dirs.append(pathlib.Path("~/tensorflow_datasets").expanduser())
    return dirs


def _missing_message(searched: list[str]) -> str:
    where = "; ".join(searched)
    return (
        "load_fashion_mnist: no Fashion-MNIST data found (searched: "
        f"{where}). Get it in one of three ways: (1) `sudo apt-get install "
        f"dataset-fashion-mnist` (Debian/Ubuntu, about 30 MB; installs the IDX files "
        f"in {DEBIAN_FASHION_MNIST_DIR}, found automatically); (2) download "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from "
        f"{FASHION_MNIST_URL} into a folder and pass data_dir=<folder> (nftk: "
        "--data-dir <folder>); (3) a prepared tensorflow-datasets directory holding "
        "fashion_mnist/, passed as data_dir or set in TFDS_DATA_DIR."
    )


def _load_tfds(folder, n_train, n_test, preprocess) -> Dataset:
    from ._tfds import load_tfds

    return load_tfds(
        "fashion_mnist",
        data_dir=folder,
        n_train=n_train,
        n_test=n_test,
        preprocess=preprocess,
    )


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    preprocess: PreprocessMethod = "scale",
) -> Dataset:
    """Loads Fashion-MNIST (60,000 + 10,000 grey 28x28 images) from local files.

    Nothing is downloaded. The data is looked for, in this order:

    1. ``data_dir``, when given: a folder with the four IDX files (raw or ``.gz``),
       or a tensorflow-datasets directory holding ``fashion_mnist/``;
    2. Debian's ``dataset-fashion-mnist`` package (`DEBIAN_FASHION_MNIST_DIR`);
    3. a prepared tensorflow-datasets copy in ``$TFDS_DATA_DIR`` or
       ``~/tensorflow_datasets`` (needs the ``data`` extra).

    When none is there the error says exactly how to get it.

    Args:
        data_dir: Folder to read from; ``None`` searches the default places.
        n_train: Training examples to keep, from the start of the file; ``None``:
            all 60,000.
        n_test: Test examples to keep; ``None``: all 10,000.
        preprocess: One of `PREPROCESS_METHODS`; ``"scale"`` divides pixels by 255.

    Returns:
        A `Dataset` named ``"fashion_mnist"`` with 784 features and the ten
        `FASHION_MNIST_CLASSES`.

    Raises:
        FileNotFoundError: If no copy is found; the message names the three ways
            to get one.

    Example:
        >>> import os
        >>> from nftk_jax.data import DEBIAN_FASHION_MNIST_DIR, load_fashion_mnist
        >>> if os.path.isdir(DEBIAN_FASHION_MNIST_DIR):
        ...     ds = load_fashion_mnist(n_train=100, n_test=10)
        ...     assert ds.x_train.shape == (100, 784) and ds.classes[0] == "T-shirt/top"
    """
    kwargs = dict(n_train=n_train, n_test=n_test, preprocess=preprocess)
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise NFTKInputError(
                "load_fashion_mnist: `data_dir` must be a path or None, got "
                f"{type(data_dir).__name__}."
            )
        folder = pathlib.Path(data_dir).expanduser()
        if folder.is_dir() and _has_idx(folder):
            return _idx(folder, **kwargs)
        if folder.is_dir() and _has_tfds(folder):
            return _load_tfds(str(folder), n_train, n_test, preprocess)
        raise NFTKFileNotFoundError(
            _missing_message(
                [f"data_dir={str(folder)!r} (no IDX files, no fashion_mnist/)"]
            )
        )
    debian = pathlib.Path(DEBIAN_FASHION_MNIST_DIR)
    if debian.is_dir() and _has_idx(debian):
        return _idx(debian, **kwargs)
    searched = [DEBIAN_FASHION_MNIST_DIR]
    for folder in _tfds_default_dirs():
        if _has_tfds(folder):
            return _load_tfds(str(folder), n_train, n_test, preprocess)
        searched.append(str(folder))
    raise NFTKFileNotFoundError(_missing_message(searched))


def _idx(folder: pathlib.Path, **kwargs) -> Dataset:
    return load_idx_dataset(
        folder, classes=FASHION_MNIST_CLASSES, name="fashion_mnist", **kwargs
    )
