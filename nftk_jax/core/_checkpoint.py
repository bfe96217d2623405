"""Checkpoints of the Omega learner: atomic ``.npz`` files tied to one problem.

A checkpoint holds the learner's full loop state (Omega, the dual coefficients used
as warm starts, the line-search step, the optimiser state, the history), a JSON
copy of the configuration and a SHA-256 digest of the problem (kernels, targets,
validation data and configuration). It is written to a temporary file beside the
destination and renamed over it (see :mod:`nftk_jax.core._io`), so an interrupted run
leaves the last complete checkpoint intact. Files are read with
``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import Any

import numpy as np

from ._errors import NFTKInputError
from ._io import atomic_path

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "load_checkpoint",
    "problem_digest",
    "save_checkpoint",
]

#: Format version stored in every checkpoint.
CHECKPOINT_VERSION = 1


class CheckpointError(NFTKInputError):
    """A checkpoint that cannot be used for this problem (foreign or corrupt)."""


def problem_digest(arrays: dict[str, Any], config: dict[str, Any]) -> str:
    """SHA-256 over named arrays (shape, dtype, bytes) and the JSON config.

    ``None`` entries are hashed as absent, so ``theta_val=None`` differs from any
    array.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = arrays[name]
        h.update(name.encode())
        if a is None:
            h.update(b"<none>")
            continue
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    h.update(json.dumps(config, sort_keys=True).encode())
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    state: dict[str, Any],
    *,
    config: dict[str, Any],
    digest: str,
) -> None:
    """Write ``state`` (a flat dict of arrays) atomically to ``path``."""
    payload = {k: np.asarray(v) for k, v in state.items()}
    payload["_config"] = np.asarray(json.dumps(config, sort_keys=True))
    payload["_digest"] = np.asarray(digest)
    payload["_version"] = np.asarray(CHECKPOINT_VERSION)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **payload)


def load_checkpoint(
    path: str | os.PathLike, *, digest: str, config: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Read a checkpoint and check it belongs to the problem with ``digest``.

    With ``config`` (the settings hashed into ``digest``) a mismatch names the
    settings that differ from the checkpoint's.

    Raises:
        CheckpointError: the file is not a readable checkpoint, or it was written for
            a different problem (other kernels, targets or configuration).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(
            f"checkpoint={str(path)!r} is not a readable checkpoint ({e}); delete it "
            "or pass a new checkpoint path."
        ) from e
    if "_digest" not in data or "_version" not in data:
        raise CheckpointError(
            f"checkpoint={str(path)!r} is not an Omega-learner checkpoint; delete it "
            "or pass a new checkpoint path."
        )
    if int(data["_version"]) != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint={str(path)!r} has format version {int(data['_version'])}, "
            f"expected {CHECKPOINT_VERSION}; delete it or pass a new checkpoint path."
        )
    if str(data["_digest"]) != digest:
        raise CheckpointError(
            f"checkpoint={str(path)!r} belongs to a different problem "
            f"({_difference(data, config)}); delete it or pass a new checkpoint path."
        )
    return data


def _difference(data: dict[str, np.ndarray], config: dict[str, Any] | None) -> str:
    """Which settings differ from the checkpoint's, else the generic reason."""
    if config is not None and "_config" in data:
        try:
            saved = json.loads(str(data["_config"]))
        except ValueError:
            saved = None
        if isinstance(saved, dict):
            now = json.loads(json.dumps(config, sort_keys=True))
            keys = sorted(
                k for k in set(saved) | set(now) if saved.get(k) != now.get(k)
            )
            if keys:
                return "other settings: " + ", ".join(keys)
            return "other kernels, targets or validation data"
    return "other kernels, targets or settings"
