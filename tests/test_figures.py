"""Publication figures: no overlapping texts, labelled colorbars, titled plots.

The layout is checked with matplotlib's renderer: the window extents of every
visible text (titles, axis labels, tick labels, colorbar labels) must not overlap
each other, must not cover another axes' plotting area, and must lie inside the
figure.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nftk_jax.experiment._figures import (
    omega_heatmaps_figure,
    omega_trajectory_figure,
)
from nftk_jax.finite._width_study import WidthStudy, width_study_figure

LONG_NAMES = [f"a rather long class name {i}" for i in range(10)]


def _drawn_texts(fig):
    """Every text matplotlib draws: tick labels of ticks in view, axis labels,
    offset texts, titles, legend entries, the figure title."""
    texts = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # the ticks that are drawn
                texts += [
                    lab for lab in (tick.label1, tick.label2) if lab.get_visible()
                ]
            texts += [axis.label, axis.get_offset_text()]
        texts += [ax.title, ax._left_title, ax._right_title]
        if ax.get_legend() is not None:
            texts += list(ax.get_legend().get_texts())
    texts += list(fig.texts)  # the figure title is one of them
    unique = {id(t): t for t in texts}.values()
    return [t for t in unique if t.get_visible() and t.get_text().strip()]


def _texts(fig):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out = []
    for t in _drawn_texts(fig):
        bb = t.get_window_extent(r)
        if bb.width > 0 and bb.height > 0:
            out.append((t, bb))
    return out, r


def _overlaps(a, b, pad=0.5) -> bool:
    return (
        a.x0 + pad < b.x1
        and b.x0 + pad < a.x1
        and a.y0 + pad < b.y1
        and b.y0 + pad < a.y1
    )


def layout_problems(fig) -> list[str]:
    texts, r = _texts(fig)
    problems = []
    for (t1, b1), (t2, b2) in itertools.combinations(texts, 2):
        if _overlaps(b1, b2):
            problems.append(f"{t1.get_text()!r} overlaps {t2.get_text()!r}")
    W, H = fig.bbox.width, fig.bbox.height
    for t, b in texts:
        if b.x0 < -1 or b.y0 < -1 or b.x1 > W + 1 or b.y1 > H + 1:
            problems.append(f"{t.get_text()!r} lies outside the figure")
        for ax in fig.axes:
            if ax is t.axes or t.axes is None:
                continue
            if _overlaps(b, ax.get_window_extent(r), pad=1.0):
                problems.append(f"{t.get_text()!r} covers another axes")
    return problems


def _min_tick_pt(fig) -> float:
    sizes = [
        lab.get_fontsize()
        for ax in fig.axes
        for lab in ax.get_xticklabels() + ax.get_yticklabels()
        if lab.get_text()
    ]
    return min(sizes)


@pytest.mark.parametrize("names", [LONG_NAMES, None])
def test_heatmaps_have_no_overlapping_text(names):
    import matplotlib.pyplot as plt

    omega = np.random.default_rng(0).random((10, 10))
    omega[omega < 0.5] = 0.0
    omega[:, 0] += 0.1
    fig = omega_heatmaps_figure(
        omega, class_names=names, title="fashion_mnist, relu, L = 10"
    )
    try:
        assert layout_problems(fig) == []
        assert _min_tick_pt(fig) >= 9
        colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(colorbars) == 3
        assert all(cb.get_ylabel() == "weight" for cb in colorbars)
    finally:
        plt.close(fig)


def test_trajectory_has_a_layer_colorbar_and_clear_labels():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    traj = rng.random((8, 10, 10))
    objective = list(0.2 + 0.01 * np.exp(-np.arange(8)))  # less than a decade
    fig = omega_trajectory_figure(
        traj, objective=objective, title="mnist5k, relu, L = 10"
    )
    try:
        assert layout_problems(fig) == []
        colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "layer l"
        assert fig.get_suptitle() == "mnist5k, relu, L = 10"
    finally:
        plt.close(fig)


def test_width_study_names_its_data_and_depth():
    import matplotlib.pyplot as plt

    gaps = np.array([[0.3, 0.32], [0.15, 0.16], [0.08, 0.075]])
    study = WidthStudy(
        widths=np.array([64, 256, 1024]), seeds=np.array([0, 1]), pred_gap=gaps,
        ntk_gap=gaps * 1.1, acc_finite=np.full((3, 2), 0.9), acc_infinite=0.91,
        slope_pred=-0.47, slope_ntk=-0.5, learning_rate=1.0, steps=500, opt_gap=0.01,
    )  # fmt: skip
    fig = width_study_figure(study, title="digits, relu, L = 3, n = 500")
    try:
        assert layout_problems(fig) == []
        assert "digits, relu, L = 3, n = 500" in fig.axes[0].get_title()
    finally:
        plt.close(fig)
