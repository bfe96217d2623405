"""Atomic file writes: every file the package writes goes through here.

A write goes to a temporary file in the destination directory, is flushed and
fsynced, then renamed over the destination with ``os.replace`` (atomic on POSIX), so a
reader never sees a half-written file, and a crash leaves the old file intact. The
file gets the mode any other tool would give it: ``0o666`` less the user's umask
(the temporary file itself is private until it is renamed).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import NFTKInputError, NFTKTypeError

__all__ = [
    "atomic_path",
    "check_writable_dir",
    "ensure_writable_dir",
    "file_mode",
    "write_json",
    "write_npy",
]


def file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would create files with.

    Example:
        >>> old = os.umask(0o022); mode = file_mode(); _ = os.umask(old)
        >>> oct(mode)
        '0o644'
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_writable_dir(path: str | os.PathLike, name: str = "out_dir") -> Path:
    """Check that ``path`` is, or could be created as, a writable directory.

    Nothing is created: the nearest existing ancestor must be a writable
    directory. Use it to validate an output location before any work, and
    :func:`ensure_writable_dir` when the first file is written.
    """
    p = Path(path)
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        if probe == p:
            raise NFTKInputError(f"{name}={str(p)!r} exists and is not a directory.")
        raise NFTKInputError(
            f"{name}={str(p)!r} cannot be created ({str(probe)!r} is a file)."
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise NFTKInputError(
            f"{name}={str(p)!r} is not writable; choose another directory."
        )
    return p


def ensure_writable_dir(path: str | os.PathLike, name: str = "out_dir") -> Path:
    """Create ``path`` if needed and check it is a writable directory."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NFTKInputError(
            f"{name}={str(p)!r} cannot be created ({e.strerror})."
        ) from e
    if not p.is_dir():
        raise NFTKInputError(f"{name}={str(p)!r} exists and is not a directory.")
    if not os.access(p, os.W_OK | os.X_OK):
        raise NFTKInputError(
            f"{name}={str(p)!r} is not writable; choose another directory."
        )
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, rename it over ``path``."""
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp" + dest.suffix
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=jsonable))


def write_npy(path: str | os.PathLike, array: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        return np.asarray(x).tolist()
    if isinstance(x, Path):
        return str(x)
    raise NFTKTypeError(f"cannot serialise {type(x).__name__} to JSON")
