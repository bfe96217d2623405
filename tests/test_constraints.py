import jax
import numpy as np
import optax
import pytest

from nftk_jax.mkl._constraints import CONSTRAINTS, make_projection, project

from helpers import assert_close


def _random(seed=0, shape=(4, 6)):
    return np.random.default_rng(seed).normal(size=shape) * 2.0


def test_simplex_hand_case():
    assert_close(project(np.array([0.5, 0.5, 2.0]), "simplex"), [0.0, 0.0, 1.0])
    assert_close(project(np.array([0.3, 0.2, 0.5]), "simplex"), [0.3, 0.2, 0.5])
    assert_close(project(np.array([1.0, 1.0, 0.0]), "simplex"), [0.5, 0.5, 0.0])
    assert_close(
        project(np.array([1.0, 1.0, 0.0]), "simplex", radius=4.0), [5 / 3, 5 / 3, 2 / 3]
    )


def test_l1_ball_inside_and_outside():
    # Inside the ball: only the negative entry is clipped.
    assert_close(project(np.array([0.2, -1.0, 0.3]), "l1_ball"), [0.2, 0.0, 0.3])
    # Outside: same as the simplex.
    assert_close(project(np.array([0.5, 0.5, 2.0]), "l1_ball"), [0.0, 0.0, 1.0])


def test_box_and_nonneg_hand_cases():
    w = np.array([-1.0, 0.05, 0.5, 3.0])
    assert_close(project(w, "box", lower=0.1, radius=2.0), [0.1, 0.1, 0.5, 2.0])
    assert_close(project(w, "nonneg"), [0.0, 0.05, 0.5, 3.0])


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_feasible_and_idempotent(constraint):
    w = _random(1)
    p = project(w, constraint, radius=1.5, lower=0.1)
    assert p.shape == w.shape
    assert np.all(p >= -1e-15)
    if constraint == "simplex":
        assert_close(p.sum(1), np.full(4, 1.5))
    if constraint == "l1_ball":
        assert np.all(p.sum(1) <= 1.5 + 1e-12)
    if constraint == "box":
        assert np.all((p >= 0.1) & (p <= 1.5))
    assert_close(project(p, constraint, radius=1.5, lower=0.1), p)


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_rowwise_equals_optax(constraint):
    w = _random(2)
    p = project(w, constraint, radius=0.7, lower=0.05)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int and float
        _check_rows(w, p, constraint)


def _check_rows(w, p, constraint):
    for row, prow in zip(w, p, strict=True):
        if constraint == "simplex":
            ref = optax.projections.projection_simplex(row, 0.7)
        elif constraint == "nonneg":
            ref = optax.projections.projection_non_negative(row)
        elif constraint == "box":
            ref = optax.projections.projection_box(row, 0.05, 0.7)
        else:
            ref = optax.projections.projection_l1_ball(np.maximum(row, 0), 0.7)
            # For a non-negative input the l1-ball projection stays non-negative;
            # projecting max(w, 0) equals projecting w onto ball ∩ orthant.
        assert_close(prow, ref, atol=1e-12)


def test_projection_is_closest_point():
    # Optimality: <w - p, q - p> <= 0 for feasible q (random feasible points).
    w = _random(3, (1, 5))[0]
    p = project(w, "simplex")
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.dirichlet(np.ones(5))
        assert np.dot(w - p, q - p) <= 1e-12


def test_simplex_gives_exact_zeros():
    p = project(np.array([[3.0, 0.1, -2.0, 0.2]]), "simplex")
    assert np.count_nonzero(p == 0.0) == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"constraint": "positive"}, "constraint"),
        ({"constraint": "simplex", "radius": 0.0}, "radius"),
        ({"constraint": "box", "lower": 2.0, "radius": 1.0}, "lower"),
        ({"constraint": "box", "lower": -1.0}, "lower"),
    ],
)
def test_bad_constraint_arguments(kwargs, match):
    c = kwargs.pop("constraint")
    with pytest.raises(ValueError, match=match):
        make_projection(c, **kwargs)
