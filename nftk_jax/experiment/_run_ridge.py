"""How ``nftk fit`` chooses its ridge, and the warning when ``loo``/``gcv`` hits a
grid edge (:func:`~nftk_jax.experiment._run_fit.run_fit`'s ridge stage)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core import NFTKInputError
from ..linalg import absolute_ridge, mean_diagonal

__all__ = ["DEFAULT_RELATIVE_RIDGE", "choose_ridge", "default_ridge", "grid_edge_line"]

#: Default ridge relative to the mean training diagonal of the (normalised) kernels.
DEFAULT_RELATIVE_RIDGE = 1e-3


def default_ridge(theta_train: np.ndarray) -> float:
    """``1e-3`` times the mean training diagonal over layers."""
    return absolute_ridge(DEFAULT_RELATIVE_RIDGE, theta_train)


def _ridge_grid(theta_tr: np.ndarray, ridge_grid) -> np.ndarray | None:
    """Absolute grid for ``ridge_grid=(low, high)`` relative to the mean diagonal."""
    if ridge_grid is None:
        return None
    from ..mkl import default_ridge_grid

    low, high = (float(v) for v in ridge_grid)
    if not (0 < low < high and np.isfinite(high)):
        raise NFTKInputError(
            f"ridge_grid must be (low, high) with 0 < low < high, got {ridge_grid}."
        )
    num = int(round(4 * np.log10(high / low))) + 1
    scale = mean_diagonal(theta_tr)
    return default_ridge_grid(scale, num=max(num, 2), low=low, high=high)


def grid_edge_line(method: str, ridge: float, grid: Any, edge: str) -> str:
    """The warning ``nftk fit --ridge loo`` prints when the ridge is a grid edge.

    Example:
        >>> print(grid_edge_line("loo", 1e-6, [1e-6, 1e-3, 10.0], "lower"))
        warning: --ridge loo picked 1e-06, the lower edge of its grid [1e-06, 10] (x the mean kernel diagonal 1); the best ridge may lie below it: extend the grid with --ridge-grid 1e-09 10 (ridge_grid=(1e-09, 10) in run_fit), or give --ridge a number
    """  # noqa: E501
    g = np.asarray(grid, dtype=np.float64)
    lo, hi = float(g.min()), float(g.max())
    side = "below" if edge == "lower" else "above"
    new = (lo * 1e-3, hi) if edge == "lower" else (lo, hi * 1e3)
    return (
        f"warning: --ridge {method} picked {ridge:.3g}, the {edge} edge of its grid "
        f"[{lo:.3g}, {hi:.3g}] (x the mean kernel diagonal 1); the best ridge may "
        f"lie {side} it: extend the grid with --ridge-grid {new[0]:.3g} {new[1]:.3g} "
        f"(ridge_grid=({new[0]:.3g}, {new[1]:.3g}) in run_fit), or give --ridge a "
        "number"
    )


def choose_ridge(
    theta_tr: np.ndarray,
    y_enc: np.ndarray,
    ridge: float | str | None,
    ridge_grid: Any,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The ridge value and how it was chosen (``ridge_info`` of the metrics)."""
    from ..mkl import grid_edge, select_ridge

    info: dict[str, Any] = {}
    if ridge is None:
        value = default_ridge(theta_tr)
        info["rule"] = "1e-3 x mean training kernel diagonal"
    elif isinstance(ridge, str):
        d, L = y_enc.shape[1], theta_tr.shape[0]
        grid = _ridge_grid(theta_tr, ridge_grid)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reported below, in the CLI's words
            sel = select_ridge(
                theta_tr, y_enc, np.full((d, L), 1.0 / L), method=ridge, grid=grid
            )
        value = float(sel.ridge)
        info.update(
            rule=f"{ridge} on the uniform mix", grid=sel.grid, scores=sel.scores
        )
        edge = grid_edge(sel)
        info["grid_edge"] = edge
        if edge is not None:
            scale = mean_diagonal(theta_tr)
            log(grid_edge_line(ridge, value / scale, sel.grid / scale, edge))
    else:
        value = float(ridge)
        info["rule"] = "given"
    info["value"] = value
    return info
