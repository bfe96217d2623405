"""Width study: finite network vs infinite-width NFT-K as the width grows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nftk_jax import MLP
from nftk_jax.finite._width_study import WidthStudy, compare_widths, plot_width_study

from helpers import random_inputs

OMEGA = np.array([[0.6, 0.4], [0.3, 0.7]])


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(0)
    x, xt = random_inputs(24, 3, seed=1), random_inputs(10, 3, seed=2)
    return compare_widths(
        MLP(depth=2),
        OMEGA,
        x,
        rng.integers(0, 2, size=24),
        xt,
        rng.integers(0, 2, size=10),
        ridge=1.0,
        widths=(32, 1024),
        seeds=(0, 1),
        steps=60,
    )


def test_fields_and_shapes(study):
    assert isinstance(study, WidthStudy)
    assert study.widths.tolist() == [32, 1024] and study.widths.dtype == np.int64
    assert study.seeds.tolist() == [0, 1]
    for field in (study.pred_gap, study.ntk_gap, study.acc_finite):
        assert field.shape == (2, 2) and field.dtype == np.float64
        assert np.all(np.isfinite(field))
    assert np.all((study.acc_finite >= 0) & (study.acc_finite <= 1))
    assert 0 <= study.acc_infinite <= 1
    assert study.learning_rate > 0 and study.steps == 60
    d = json.loads(json.dumps(study.to_dict()))
    assert set(d) == set(WidthStudy._fields)
    assert np.shape(d["pred_gap"]) == (2, 2)


def test_gaps_shrink_with_width(study):
    assert math.isfinite(study.slope_pred) and math.isfinite(study.slope_ntk)
    assert study.slope_pred < 0 and study.slope_ntk < 0
    assert study.pred_gap[-1].mean() < study.pred_gap[0].mean()
    assert study.ntk_gap[-1].mean() < study.ntk_gap[0].mean()


def test_plot_written(study, tmp_path):
    from matplotlib.image import imread

    path = tmp_path / "width.png"
    plot_width_study(study, path)
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert np.ptp(img) > 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["width.png"]


def test_single_width_has_nan_slope():
    x = random_inputs(8, 3)
    y = np.random.default_rng(0).normal(size=(8, 2))
    s = compare_widths(
        MLP(depth=2), OMEGA, x, y, x, y, ridge=1.0, widths=(16,), steps=2
    )
    assert math.isnan(s.slope_pred) and math.isnan(s.acc_infinite)
    assert s.pred_gap.shape == (1, 1)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ridge": 0.0}, "ridge"),
        ({"widths": ()}, "widths"),
        ({"widths": (0,)}, "widths"),
        ({"steps": 0}, "steps"),
        ({"omega": -OMEGA}, "omega"),
        ({"init": "bad"}, "init"),
        ({"learning_rate": -0.1}, "learning_rate"),
    ],
)
def test_bad_inputs(kwargs, name):
    x = random_inputs(8, 3)
    y = np.random.default_rng(0).normal(size=(8, 2))
    args = {"ridge": 1.0, "widths": (8,), "steps": 1, "omega": OMEGA}
    args.update(kwargs)
    omega = args.pop("omega")
    with pytest.raises(ValueError, match=name):
        compare_widths(MLP(depth=2), omega, x, y, x, y, **args)
