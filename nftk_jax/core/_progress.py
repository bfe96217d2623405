"""The one way the package opens a progress bar (tqdm), so every bar looks alike."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(
    total: int | None,
    desc: str,
    *,
    enabled: bool | str = True,
    unit: str = "it",
    initial: int = 0,
    **options: Any,
) -> Any:
    """A ``tqdm.auto`` bar, or ``None`` when ``enabled`` is false.

    Args:
        total: number of units (``None``: unknown).
        desc: the bar's label.
        enabled: ``False`` gives ``None`` (callers skip their updates); a string
            is a caller-given label that replaces ``desc``.
        unit: what one update counts ("tile", "fit", "row", ...).
        initial: units already done (a resumed run).
        **options: further ``tqdm`` options (``leave``, ``bar_format``, ...).

    Example:
        >>> progress_bar(10, "tiles", enabled=False) is None
        True
    """
    if not enabled:
        return None
    from tqdm.auto import tqdm

    if isinstance(enabled, str):
        desc = enabled
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, **options)
