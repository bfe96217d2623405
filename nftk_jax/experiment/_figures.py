"""The paper's interpretability figures (Fig. 2) and training curves.

All figures use matplotlib's Agg backend (no display needed) and are written
atomically through :mod:`nftk_jax.core._io`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core._io import atomic_path
from ..linalg._krr import check_omega

__all__ = [
    "row_normalise",
    "interpretability_matrices",
    "plot_omega_heatmaps",
    "plot_omega_trajectory",
]


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


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def plot_omega_heatmaps(
    omega: Any,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Fig. 2: layer-layer, class-class and class-layer heatmaps, labelled axes."""
    m = interpretability_matrices(omega)
    d, L = m["omega_n"].shape
    names = list(class_names) if class_names is not None else [str(c) for c in range(d)]
    if len(names) != d:
        raise ValueError(f"class_names has {len(names)} names for {d} classes.")
    layers = [str(l + 1) for l in range(L)]
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    panels = [
        (
            m["layer_layer"],
            layers,
            layers,
            "layer",
            "layer",
            r"layer importance $\Omega_n^\top\Omega_n$",
        ),
        (
            m["class_class"],
            names,
            names,
            "class",
            "class",
            r"class importance $\Omega_n\Omega_n^\top$",
        ),
        (
            m["omega_n"],
            layers,
            names,
            "layer",
            "class",
            r"class-layer importance $\Omega_n$",
        ),
    ]
    for ax, (mat, xt, yt, xl, yl, t) in zip(axes, panels, strict=True):
        im = ax.imshow(mat, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(xt)), xt, fontsize=7)
        ax.set_yticks(range(len(yt)), yt, fontsize=7)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(t)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(
        (title + "  ·  " if title else "")
        + f"{100 * m['sparsity']:.1f}% of the entries of Omega are zero"
    )
    _save(fig, path)
    plt.close(fig)


def plot_omega_trajectory(
    trajectory: Any,
    path: str | os.PathLike,
    *,
    objective: Sequence[float] | None = None,
) -> None:
    """Omega entries over MKL steps (one line per class-layer pair) and the objective.

    Args:
        trajectory: (steps, d, L) Omega after each step.
        path: PNG destination.
        objective: optional objective value per step, drawn in a second panel.
    """
    traj = np.asarray(trajectory, dtype=np.float64)
    if traj.ndim != 3 or traj.shape[0] == 0:
        raise ValueError(f"trajectory must have shape (steps, d, L), got {traj.shape}.")
    plt = _plt()
    ncols = 2 if objective is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    steps = np.arange(traj.shape[0])
    flat = traj.reshape(traj.shape[0], -1)
    cmap = plt.get_cmap("viridis")
    L = traj.shape[2]
    for j in range(flat.shape[1]):
        ax.plot(steps, flat[:, j], color=cmap((j % L) / max(L - 1, 1)), lw=0.8)
    ax.set_xlabel("MKL step")
    ax.set_ylabel(r"$\Omega_{c,l}$ (colour: layer)")
    ax.set_title("Omega trajectory")
    if objective is not None:
        ax2 = axes[0, 1]
        ax2.plot(np.arange(len(objective)), np.asarray(objective, dtype=float))
        ax2.set_xlabel("MKL step")
        ax2.set_ylabel("objective")
        ax2.set_yscale("log")
        ax2.set_title("objective")
    _save(fig, path)
    plt.close(fig)
