r"""Figures of Omega's stability (next to Fig. 2) and of its agreement with training.

Both use matplotlib's Agg backend and are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core import NFTKInputError
from ._figures import _class_names, _plt, _save

__all__ = ["plot_omega_agreement", "plot_omega_stability"]


def plot_omega_stability(
    stability: Any,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Omega entries with their intervals over runs, and selection frequencies.

    Left: for every class (colour) and layer, the mean of :math:`\\Omega_{cl}` over
    the resampled runs with the empirical interval as an error bar. Right: the
    selection frequency per class and layer (annotated).

    Args:
        stability: an :class:`~nftk_jax.mkl.OmegaStability`.
        path: PNG destination.
        class_names: ``d`` labels.
        title: figure title.
    """
    mean = np.asarray(stability.mean)
    lo, hi = np.asarray(stability.lower), np.asarray(stability.upper)
    freq = np.asarray(stability.selection_frequency)
    d, L = mean.shape
    names = _class_names(class_names, d)
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 4.8))
    cmap = plt.get_cmap("tab10" if d <= 10 else "viridis")
    width = 0.8 / d
    layers = np.arange(1, L + 1)
    for c in range(d):
        x = layers - 0.4 + (c + 0.5) * width
        ax.errorbar(
            x, mean[c], yerr=[mean[c] - lo[c], hi[c] - mean[c]], fmt="o", ms=3,
            lw=1, color=cmap(c / max(d - 1, 1) if d > 10 else c), label=names[c],
        )  # fmt: skip
    ax.set_xticks(layers)
    ax.set_xlabel("layer")
    ax.set_ylabel(r"$\Omega_{c,l}$: mean and interval over runs")
    K = len(stability.omegas)
    ax.set_title(f"{K} runs, {100 * stability.confidence:.0f}% empirical intervals")
    ax.legend(fontsize=7, ncol=2, title="class")
    im = ax2.imshow(freq, cmap="magma", vmin=0, vmax=1, aspect="auto")
    for c in range(d):
        for l in range(L):
            ax2.text(l, c, f"{freq[c, l]:.1f}", ha="center", va="center", fontsize=6,
                     color="white" if freq[c, l] < 0.6 else "black")  # fmt: skip
    ax2.set_xticks(range(L), [str(l) for l in layers], fontsize=7)
    ax2.set_yticks(range(d), names, fontsize=7)
    ax2.set_xlabel("layer")
    ax2.set_ylabel("class")
    ax2.set_title("selection frequency (share of runs with the entry non-zero)")
    fig.colorbar(im, ax=ax2, fraction=0.046, pad=0.04)
    rho = stability.mean_rank_correlation
    fig.suptitle(
        (title + "  ·  " if title else "")
        + f"mean Spearman rank correlation of layer importance between runs {rho:.2f}"
    )
    _save(fig, path)
    plt.close(fig)


def plot_omega_agreement(
    omega_kernel: Any,
    omega_finite: Any,
    path: str | os.PathLike,
    *,
    correlation: Any = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Row-normalised kernel-learned and finite-width Omegas side by side.

    A third panel shows the per-class Spearman correlation between the two.
    """
    from ._figures import row_normalise

    a, b = row_normalise(omega_kernel), row_normalise(omega_finite)
    if a.shape != b.shape:
        raise NFTKInputError(f"the two Omegas differ in shape: {a.shape} vs {b.shape}.")
    d, L = a.shape
    names = _class_names(class_names, d)
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    vmax = float(max(a.max(), b.max(), 1e-12))
    for ax, mat, t in zip(
        axes[:2], (a, b), ("kernel-learned (infinite width)", "finite width, trained"),
        strict=True,
    ):  # fmt: skip
        im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        ax.set_xticks(range(L), [str(l + 1) for l in range(L)], fontsize=7)
        ax.set_yticks(range(d), names, fontsize=7)
        ax.set_xlabel("layer")
        ax.set_ylabel("class")
        ax.set_title(r"$\Omega_n$ " + t)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if correlation is not None:
        r = np.asarray(correlation, dtype=np.float64)
        axes[2].barh(range(d), np.nan_to_num(r), color="tab:blue")
        axes[2].set_yticks(range(d), names, fontsize=7)
        axes[2].set_xlim(-1, 1)
        axes[2].axvline(0, color="k", lw=0.5)
        axes[2].set_xlabel("Spearman rank correlation of the rows")
        axes[2].set_title(f"agreement per class (mean {np.nanmean(r):.2f})")
    else:
        axes[2].axis("off")
    if title:
        fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)
