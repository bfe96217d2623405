"""Run directories whose files always agree with each other.

A run directory holds one run: ``config.json`` says what was run, every other file
was computed for exactly that configuration. Three rules keep it so:

* **Check before any work.** :func:`open_run_dir` compares an existing
  ``config.json`` with the new configuration before anything is computed. A
  different configuration is refused (:class:`RunDirectoryError`, naming the
  settings that differ) unless ``overwrite`` is set, in which case the old run's
  files are deleted first. Only a larger step budget (``steps``) may change on a
  rerun: the Omega learner then continues from its checkpoint, and the previous
  results, which the new configuration no longer describes, are deleted.
* **Results written last.** The result files are written after the computation, and
  ``metrics.json`` is the last of them, so a directory with ``metrics.json`` holds a
  finished run (:attr:`RunState.finished`): rerunning it returns at once.
* **No debris.** :func:`run_guard` removes what a failed or interrupted run created
  when it left nothing to resume from (no checkpoint): a failure never leaves a
  directory holding only ``config.json``, nor empty parent folders.

Nothing is created before the first file is written: :func:`open_run_dir` only
checks that the directory could be created and written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ..core import NFTKInputError, check_writable_dir

__all__ = [
    "RESUMABLE_KEYS",
    "RUN_FILES",
    "RunDirectoryError",
    "RunState",
    "open_run_dir",
    "run_guard",
]

#: Files (and folders) a run may write; only these are ever deleted.
RUN_FILES = (
    "config.json",
    "metrics.json",
    "baselines.json",
    "omega.npy",
    "omega_raw.npy",
    "omega_trajectory.npy",
    "omega_resamples.npy",
    "checkpoint.npz",
    "fig2_omega.png",
    "fig2_omega_stability.png",
    "omega_trajectory.png",
    "width_study.json",
    "width_study.png",
    "table1.json",
    "interpret.json",
    "omega_kernel.npy",
    "omega_finite.npy",
    "omega_agreement.png",
)
#: What a rerun that may resume keeps: the configuration, the learner's checkpoint and
#: the baselines (they do not depend on the step budget).
_KEPT_ON_RESUME = ("config.json", "checkpoint.npz", "baselines.json")
#: Files holding results of a step budget (deleted when it changes).
RESULT_FILES = tuple(f for f in RUN_FILES if f not in _KEPT_ON_RESUME)
#: Settings a rerun may change and still resume from the checkpoint.
RESUMABLE_KEYS = ("steps",)


class RunDirectoryError(NFTKInputError):
    """The run directory holds another run; nothing was computed or changed.

    Attributes:
        detail: what was found, without the remedy (callers add their own).
    """

    def __init__(self, detail: str, remedy: str):
        super().__init__(f"{detail}; {remedy}.")
        self.detail = detail


class RunState(NamedTuple):
    """What :func:`open_run_dir` found in the run directory."""

    path: Path
    finished: bool  # metrics.json of this very configuration exists
    resumable: bool  # a checkpoint of this configuration exists
    config_changed: bool  # config.json must be (re)written


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def _describe(old: dict[str, Any], new: dict[str, Any], keys: list[str]) -> str:
    parts = []
    for k in keys[:4]:
        a, b = old.get(k, "<absent>"), new.get(k, "<absent>")
        if (
            isinstance(a, (dict, list))
            or isinstance(b, (dict, list))
            or k.endswith("sha256")
        ):
            parts.append(k)
        else:
            parts.append(f"{k} {a!r} -> {b!r}")
    more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    return ", ".join(parts) + more


def _remove(path: Path, names: tuple[str, ...]) -> None:
    for name in names:
        p = path / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def open_run_dir(
    path: str | os.PathLike,
    config: dict[str, Any],
    *,
    overwrite: bool = False,
    name: str = "out_dir",
    remedy: str = "pass overwrite=True or another directory",
) -> RunState:
    """Check a run directory against ``config`` before any work.

    Args:
        path: the run directory (need not exist; nothing is created).
        config: the JSON-able configuration of the new run.
        overwrite: delete the run files of a different (or any) earlier run.
        name: how error messages call ``path``.
        remedy: what error messages suggest against a foreign run.

    Returns:
        A :class:`RunState`.

    Raises:
        RunDirectoryError: ``path`` holds a run with another configuration (or run
            files without a ``config.json``) and ``overwrite`` is false.
        ValueError: ``path`` cannot be created or written.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()) / "run"
        >>> open_run_dir(d, {"ridge": 0.1}).finished, d.exists()
        (False, False)
    """
    p = check_writable_dir(path, name)
    new = json.loads(json.dumps(config, sort_keys=True, default=str))
    if not p.is_dir():
        return RunState(p, False, False, True)
    present = [f for f in RUN_FILES if (p / f).exists()]
    if overwrite:
        _remove(p, RUN_FILES)
        return RunState(p, False, False, True)
    if not present:
        return RunState(p, False, False, True)
    cfg = p / "config.json"
    if not cfg.is_file():
        raise RunDirectoryError(
            f"{name}={str(p)!r} holds files of an earlier run ({', '.join(present)}) "
            "but no config.json, so they cannot be checked",
            remedy,
        )
    try:
        old = json.loads(cfg.read_text())
    except (OSError, ValueError) as e:
        raise RunDirectoryError(
            f"{name}={str(p)!r} has an unreadable config.json ({e})", remedy
        ) from e
    diff = _differences(old, new)
    fatal = [k for k in diff if k not in RESUMABLE_KEYS]
    if fatal:
        raise RunDirectoryError(
            f"{name}={str(p)!r} holds a run with other settings "
            f"({_describe(old, new, fatal)}); nothing was computed or changed",
            remedy,
        )
    if diff:  # a new step budget: the old results no longer describe this run
        _remove(p, RESULT_FILES)
        return RunState(p, False, (p / "checkpoint.npz").is_file(), True)
    finished = (p / "metrics.json").is_file()
    return RunState(p, finished, (p / "checkpoint.npz").is_file(), False)


def _first_missing(path: Path) -> Path | None:
    """The topmost folder of ``path`` that does not exist yet (None if it exists)."""
    top = None
    probe = path
    while not probe.exists():
        top = probe
        if probe.parent == probe:
            break
        probe = probe.parent
    return top


@contextlib.contextmanager
def run_guard(path: str | os.PathLike, *, keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """Create ``path`` and undo it when the run fails with nothing to resume.

    On any exception (``KeyboardInterrupt`` included), if no file named in
    ``keep`` exists in ``path``, the run files that did not exist before are
    deleted, and so are the folders this call created, when empty. The exception
    propagates.
    """
    p = Path(path)
    created = _first_missing(p)
    before = tuple(f for f in RUN_FILES if (p / f).exists())
    p.mkdir(parents=True, exist_ok=True)
    try:
        yield p
    except BaseException:
        if not any((p / k).exists() for k in keep):
            _remove(p, tuple(f for f in RUN_FILES if f not in before))
            _remove_created(p, created)
        raise


def _remove_created(p: Path, created: Path | None) -> None:
    if created is None:
        return
    probe = p
    while True:
        with contextlib.suppress(OSError):
            probe.rmdir()  # only when empty
        if probe == created or probe.parent == probe:
            break
        probe = probe.parent
