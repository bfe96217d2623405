"""The paper's interpretability figures (Fig. 2) and training curves.

All figures use matplotlib's Agg backend (no display needed) and are written
atomically through :mod:`nftk_jax.core._io`. They are laid out by matplotlib's
constrained layout, so no two texts overlap, even with long class names: the class
names on x axes are rotated, every colorbar is labelled, and the tick labels are
9 pt at 150 dpi (tests/test_figures.py checks the text boxes with the renderer).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core import NFTKInputError, atomic_path
from ..linalg import check_omega

__all__ = [
    "interpretability_matrices",
    "omega_heatmaps_figure",
    "omega_trajectory_figure",
    "plot_omega_heatmaps",
    "plot_omega_trajectory",
    "row_normalise",
]

#: Font sizes (points) of tick labels, axis labels and titles.
TICK_PT, LABEL_PT, TITLE_PT = 9, 10, 11
DPI = 150


def _check_omega(omega: Any) -> np.ndarray:
    return check_omega(omega, allow_zero_rows=True)


def row_normalise(omega: Any) -> np.ndarray:
    r"""Rows of :math:`\Omega` scaled to sum to one (:math:`\Omega_n` in the paper).

    An all-zero row stays zero.

    Example:
        >>> row_normalise([[1.0, 3.0], [0.0, 0.0]]).tolist()
        [[0.25, 0.75], [0.0, 0.0]]
    """
    om = _check_omega(omega)
    s = om.sum(axis=1, keepdims=True)
    return np.divide(om, s, out=np.zeros_like(om), where=s > 0)


def interpretability_matrices(omega: Any) -> dict[str, np.ndarray]:
    r"""The three matrices of the paper's Fig. 2.

    Returns:
        ``omega_n`` (d, L): class-layer importance :math:`\Omega_n`;
        ``layer_layer`` (L, L): :math:`\Omega_n^\top \Omega_n`;
        ``class_class`` (d, d): :math:`\Omega_n \Omega_n^\top`;
        ``sparsity``: fraction of exact zeros in :math:`\Omega`.
    """
    om = _check_omega(omega)
    on = row_normalise(om)
    return {
        "omega_n": on,
        "layer_layer": on.T @ on,
        "class_class": on @ on.T,
        "sparsity": float(np.mean(om == 0.0)),
    }


def _class_names(names: Sequence[str] | None, d: int) -> list[str]:
    """The ``d`` class names given, or ``0 .. d-1``."""
    out = list(names) if names is not None else [str(c) for c in range(d)]
    if len(out) != d:
        raise NFTKInputError(f"class_names has {len(out)} names for {d} classes.")
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def _heatmap(fig, ax, mat, xt, yt, xl, yl, title) -> None:
    im = ax.imshow(mat, cmap="viridis", aspect="auto", vmin=0.0)
    long_x = max((len(t) for t in xt), default=0) > 3
    ax.set_xticks(range(len(xt)), xt, fontsize=TICK_PT)
    if long_x:
        for lab in ax.get_xticklabels():
            lab.set_rotation(90)
    ax.set_yticks(range(len(yt)), yt, fontsize=TICK_PT)
    ax.set_xlabel(xl, fontsize=LABEL_PT)
    ax.set_ylabel(yl, fontsize=LABEL_PT)
    ax.set_title(title, fontsize=TITLE_PT)
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.set_label("weight", fontsize=LABEL_PT)
    cb.ax.tick_params(labelsize=TICK_PT)


def omega_heatmaps_figure(
    omega: Any,
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
):
    """The matplotlib figure of :func:`plot_omega_heatmaps` (not saved)."""
    m = interpretability_matrices(omega)
    d, L = m["omega_n"].shape
    names = [str(n) for n in _class_names(class_names, d)]
    layers = [str(l + 1) for l in range(L)]
    longest = max(len(n) for n in names)
    plt = _plt()
    width = 15.0 + 0.2 * max(longest - 6, 0)
    fig, axes = plt.subplots(
        1, 3, figsize=(width, 5.0 + 0.06 * longest), layout="constrained"
    )
    panels = [
        (m["layer_layer"], layers, layers, "layer", "layer",
         r"layer importance $\Omega_n^\top\Omega_n$"),
        (m["class_class"], names, names, "class", "class",
         r"class importance $\Omega_n\Omega_n^\top$"),
        (m["omega_n"], layers, names, "layer", "class",
         r"class-layer importance $\Omega_n$"),
    ]  # fmt: skip
    for ax, panel in zip(axes, panels, strict=True):
        _heatmap(fig, ax, *panel)
    fig.get_layout_engine().set(w_pad=0.15, wspace=0.08)
    fig.suptitle(
        (title + "  ·  " if title else "")
        + f"{100 * m['sparsity']:.1f}% of the entries of Omega are zero",
        fontsize=TITLE_PT + 1,
    )
    return fig


def plot_omega_heatmaps(
    omega: Any,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Fig. 2: layer-layer, class-class and class-layer heatmaps, labelled axes.

    Args:
        omega: ``(d, L)`` non-negative layer weights.
        path: PNG destination.
        class_names: ``d`` names for the class axes (default ``0 .. d-1``).
        title: prefix of the figure title (e.g. data set, activation, depth).
    """
    fig = omega_heatmaps_figure(omega, class_names=class_names, title=title)
    try:
        _save(fig, path)
    finally:
        _plt().close(fig)


def omega_trajectory_figure(
    trajectory: Any,
    *,
    objective: Sequence[float] | None = None,
    title: str | None = None,
):
    """The matplotlib figure of :func:`plot_omega_trajectory` (not saved)."""
    import matplotlib as mpl

    traj = np.asarray(trajectory, dtype=np.float64)
    if traj.ndim != 3 or traj.shape[0] == 0:
        raise NFTKInputError(
            f"trajectory must have shape (steps, d, L), got {traj.shape}."
        )
    plt = _plt()
    ncols = 2 if objective is not None else 1
    fig, axes = plt.subplots(
        1, ncols, figsize=(6.5 * ncols, 4.5), squeeze=False, layout="constrained"
    )
    ax = axes[0, 0]
    steps = np.arange(traj.shape[0])
    L = traj.shape[2]
    cmap = mpl.colormaps["viridis"].resampled(L)
    norm = mpl.colors.BoundaryNorm(np.arange(0.5, L + 1.5), L)
    for c in range(traj.shape[1]):
        for l in range(L):
            ax.plot(steps, traj[:, c, l], color=cmap(l), lw=0.9, alpha=0.8)
    ax.set_xlabel("Omega step", fontsize=LABEL_PT)
    ax.set_ylabel(r"$\Omega_{c,l}$ (one line per class and layer)", fontsize=LABEL_PT)
    ax.set_title("Omega trajectory", fontsize=TITLE_PT)
    ax.tick_params(labelsize=TICK_PT)
    cb = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    cb.set_label("layer l", fontsize=LABEL_PT)
    cb.set_ticks(_layer_ticks(L))
    cb.ax.tick_params(labelsize=TICK_PT)
    if objective is not None:
        _objective_panel(axes[0, 1], objective)
    if title:
        fig.suptitle(title, fontsize=TITLE_PT + 1)
    return fig


def _layer_ticks(L: int) -> list[int]:
    step = max(1, int(np.ceil(L / 10)))
    return list(range(1, L + 1, step))


def _objective_panel(ax, objective: Sequence[float]) -> None:
    import matplotlib.ticker as mticker

    obj = np.asarray(objective, dtype=float)
    ax.plot(np.arange(len(obj)), obj, marker="o", ms=3)
    ax.set_xlabel("Omega step", fontsize=LABEL_PT)
    ax.set_ylabel("objective", fontsize=LABEL_PT)
    positive = obj[np.isfinite(obj) & (obj > 0)]
    if positive.size and positive.max() / positive.min() > 10:
        ax.set_yscale("log")
    else:  # less than a decade: plain numbers, no crowded log minor labels
        fmt = mticker.ScalarFormatter(useOffset=False)
        fmt.set_powerlimits((-3, 4))
        ax.yaxis.set_major_formatter(fmt)
        ax.yaxis.set_major_locator(mticker.MaxNLocator(6))
    ax.set_title("objective", fontsize=TITLE_PT)
    ax.tick_params(labelsize=TICK_PT)


def plot_omega_trajectory(
    trajectory: Any,
    path: str | os.PathLike,
    *,
    objective: Sequence[float] | None = None,
    title: str | None = None,
) -> None:
    """Omega entries over the steps (coloured by layer, with a colorbar) and the
    objective.

    Args:
        trajectory: (steps, d, L) Omega after each step.
        path: PNG destination.
        objective: optional objective value per step, drawn in a second panel.
        title: optional figure title (e.g. data set, activation, depth).
    """
    fig = omega_trajectory_figure(trajectory, objective=objective, title=title)
    try:
        _save(fig, path)
    finally:
        _plt().close(fig)
