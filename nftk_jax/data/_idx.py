"""IDX files (the MNIST file format) and directories holding a standard IDX split."""

from __future__ import annotations

import gzip
import math
import os
import pathlib
import struct
import zlib

import numpy as np

from ..core import NFTKFileNotFoundError, NFTKInputError
from ._checks import check_optional_int
from ._dataset import Dataset
from ._preprocess import PreprocessMethod, apply_preprocess, check_method

#: Where Debian's ``dataset-fashion-mnist`` package installs Fashion-MNIST
#: (``apt-get install dataset-fashion-mnist``, about 30 MB).
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

#: Class names of Fashion-MNIST, indexed by label.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Third byte of the magic number -> element type; IDX data are big-endian.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

# Standard file names of an IDX split; each may also end in ".gz".
_IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file, gzip-compressed or raw, into a native-endian array.

    The IDX format (used by MNIST and Fashion-MNIST) is a 4-byte magic number — two
    zero bytes, a type code and the number of dimensions — then one big-endian
    uint32 size per dimension, then the data, big-endian, row-major. Type codes:
    ``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
    ``0x0E`` float64. Compression is detected from the content (gzip magic bytes),
    not from the file name.

    Args:
        path: The file, e.g. ``"train-images-idx3-ubyte.gz"``.

    Returns:
        An array of the shape and type the header declares, in native byte order.

    Raises:
        FileNotFoundError: If ``path`` is not an existing file.
        ValueError: If the file is corrupt: bad gzip stream, bad magic number,
            unknown type code, truncated header, or a data size that does not match
            the header.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise NFTKFileNotFoundError(
            f"read_idx: `path` {str(path)!r} is not an existing file; pass the path "
            "of an IDX file such as train-images-idx3-ubyte.gz."
        )
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise NFTKInputError(
                f"read_idx: {path} is a corrupt or truncated gzip file ({e}); "
                "download or copy it again."
            ) from e
    if len(raw) < 4:
        raise NFTKInputError(
            f"read_idx: {path} has {len(raw)} bytes, fewer than the 4-byte IDX magic "
            "number; the file is truncated or not an IDX file."
        )
    if raw[:2] != b"\x00\x00":
        raise NFTKInputError(
            f"read_idx: {path} has magic number 0x{raw[:4].hex()}, which does not "
            "start with two zero bytes; it is not an IDX file (or is corrupt)."
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise NFTKInputError(
            f"read_idx: {path} declares type code 0x{code:02X}, which is not an IDX "
            f"type ({known}); the file is corrupt or not an IDX file."
        )
    if ndim == 0:
        raise NFTKInputError(
            f"read_idx: {path} declares 0 dimensions; the file is corrupt or not an "
            "IDX file."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise NFTKInputError(
            f"read_idx: {path} is truncated: its {ndim} dimension sizes need a "
            f"{header}-byte header but the file has {len(raw)} bytes."
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise NFTKInputError(
            f"read_idx: {path} header declares shape {shape} of "
            f"{dtype.newbyteorder('=')} = {expected} data bytes, but the file "
            f"holds {len(raw) - header}; it is truncated or corrupt."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_idx_file(directory: pathlib.Path, key: str) -> pathlib.Path:
    stem = _IDX_STEMS[key]
    for candidate in (stem, stem + ".gz"):
        path = directory / candidate
        if path.is_file():
            return path
    names = ", ".join(f"{s}[.gz]" for s in _IDX_STEMS.values())
    raise NFTKFileNotFoundError(
        f"load_idx_dataset: `directory` {str(directory)!r} has neither {stem} nor "
        f"{stem}.gz; it must hold the four standard IDX files ({names}). For "
        f"Fashion-MNIST offline: `apt-get install dataset-fashion-mnist`, then "
        f"directory={DEBIAN_FASHION_MNIST_DIR!r}."
    )


def _read_split(
    directory: pathlib.Path, part: str, n: int | None
) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find_idx_file(directory, f"{part}_images")
    labels_path = _find_idx_file(directory, f"{part}_labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise NFTKInputError(
            f"load_idx_dataset: {images_path} holds an array of shape {images.shape};"
            " an image file must be 3-D (n_images, rows, cols)."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise NFTKInputError(
            f"load_idx_dataset: {labels_path} holds a {labels.dtype} array of shape "
            f"{labels.shape}; a label file must be a 1-D integer array."
        )
    if labels.shape[0] != images.shape[0]:
        raise NFTKInputError(
            f"load_idx_dataset: {images_path} has {images.shape[0]} images but "
            f"{labels_path} has {labels.shape[0]} labels; the files do not belong "
            "together."
        )
    if labels.size and labels.min() < 0:
        raise NFTKInputError(
            f"load_idx_dataset: {labels_path} has negative labels; labels must be "
            "class indices >= 0."
        )
    if n is not None:
        if n > images.shape[0]:
            raise NFTKInputError(
                f"load_idx_dataset: n_{part}={n} exceeds the {images.shape[0]} "
                f"examples in {images_path}; lower n_{part} or pass None for all."
            )
        images, labels = images[:n], labels[:n]
    n_pixels = math.prod(images.shape[1:])
    return images.reshape(images.shape[0], n_pixels), labels.astype(np.int64)


def load_idx_dataset(
    directory: str | os.PathLike,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    preprocess: PreprocessMethod = "scale",
    classes: tuple[str, ...] | None = None,
    name: str | None = None,
) -> Dataset:
    """Loads a train/test split stored as the four standard IDX files of MNIST.

    ``directory`` must hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or with a
    ``.gz`` suffix (the raw file wins when both exist). This is the offline route to
    full-scale data: Debian's ``dataset-fashion-mnist`` package installs Fashion-MNIST
    (60,000 + 10,000 images) in `DEBIAN_FASHION_MNIST_DIR`.

    Images are flattened row-major. Subsets are the first ``n`` examples in file
    order (the MNIST and Fashion-MNIST files are not sorted by class).

    Args:
        directory: Folder holding the four files.
        n_train: Number of training examples to keep, from the start of the file;
            ``None`` keeps all.
        n_test: Number of test examples to keep; ``None`` keeps all.
        preprocess: One of `PREPROCESS_METHODS`. The default ``"scale"`` divides
            uint8 pixels by 255 (other types by the training maximum). See
            `preprocess`.
        classes: Class names indexed by label. ``None`` gives
            `FASHION_MNIST_CLASSES` when the folder's name contains "fashion" (as
            Debian's does), else ``"0"``, ``"1"``, ... up to the largest label.
        name: Data set name; ``None`` uses the folder's name.

    Returns:
        A `Dataset` with ``rows * cols`` features.

    Raises:
        FileNotFoundError: If ``directory`` or one of the four files is missing.
        ValueError: On a corrupt file, mismatched files, or a bad argument.
    """
    where = "load_idx_dataset"
    folder = pathlib.Path(directory).expanduser()
    if not folder.is_dir():
        raise NFTKFileNotFoundError(
            f"{where}: `directory` {str(folder)!r} is not an existing folder; pass the "
            "folder holding train-images-idx3-ubyte[.gz] and the other IDX files (for "
            "Fashion-MNIST: `apt-get install dataset-fashion-mnist`, then "
            f"directory={DEBIAN_FASHION_MNIST_DIR!r})."
        )
    n_train = check_optional_int(n_train, "n_train", minimum=1, where=where)
    n_test = check_optional_int(n_test, "n_test", minimum=0, where=where)
    method = check_method(preprocess, where=where)
    if name is not None and not isinstance(name, str):
        raise NFTKInputError(f"{where}: `name` must be a string or None, got {name!r}.")

    x_tr, y_tr = _read_split(folder, "train", n_train)
    x_te, y_te = _read_split(folder, "test", n_test)
    if x_tr.shape[1] != x_te.shape[1]:
        raise NFTKInputError(
            f"{where}: training images have {x_tr.shape[1]} pixels but test images "
            f"have {x_te.shape[1]}; the files in {folder} do not belong together."
        )
    n_classes = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1
    if classes is None:
        fashion = "fashion" in folder.name.lower()
        if fashion and n_classes <= len(FASHION_MNIST_CLASSES):
            classes = FASHION_MNIST_CLASSES
        else:
            classes = tuple(str(k) for k in range(n_classes))
    else:
        classes = tuple(classes)
        if not all(isinstance(c, str) for c in classes) or len(classes) < n_classes:
            raise NFTKInputError(
                f"{where}: `classes` must be a tuple of at least {n_classes} strings "
                f"(the largest label is {n_classes - 1}), got {classes!r}."
            )
    max_value = 255.0 if x_tr.dtype == np.uint8 else None
    x_tr, x_te = apply_preprocess(x_tr, x_te, method=method, max_value=max_value)
    return Dataset(
        x_tr, y_tr, x_te, y_te, classes, name if name is not None else folder.name
    )
