"""Property-based tests (hypothesis) on small shapes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nftk_jax import MLP, krr_fit, krr_predict, layerwise_kernels
from nftk_jax.linalg import encode_targets
from nftk_jax.mkl._constraints import CONSTRAINTS, project

from helpers import ACTIVATIONS, assert_close

SETTINGS = settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def kernel_problems(draw):
    n = draw(st.integers(2, 6))
    m = draw(st.integers(1, 4))
    x = draw(
        arrays(
            np.float64,
            (n, m),
            elements=st.floats(-3, 3, allow_nan=False, allow_subnormal=False),
        )
    )
    spec = MLP(
        depth=draw(st.integers(1, 4)),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        W_std=draw(st.floats(0.5, 2.5)),
        b_std=draw(st.floats(0.05, 1.0)),
        parameterization=draw(st.sampled_from(("ntk", "standard"))),
    )
    return spec, x


def _scale(k):
    return max(1.0, float(np.max(np.abs(k))))


@SETTINGS
@given(kernel_problems())
def test_layer_kernels_symmetric_psd_positive_diagonal(problem):
    spec, x = problem
    for get in ("ntk", "nngp"):
        k = np.asarray(layerwise_kernels(spec, x, get=get))
        assert k.shape == (spec.depth, len(x), len(x))
        assert np.all(np.isfinite(k))
        assert_close(k, np.swapaxes(k, 1, 2), rtol=0, atol=1e-12)
        for layer in k:
            eig = np.linalg.eigvalsh(layer)
            assert eig[0] >= -1e-8 * _scale(layer), (get, eig[0])
        assert np.all(np.diagonal(k, axis1=1, axis2=2) > 0)  # b_std > 0


@SETTINGS
@given(kernel_problems(), st.randoms(use_true_random=False))
def test_permuting_inputs_permutes_the_kernel(problem, rnd):
    spec, x = problem
    perm = np.array(rnd.sample(range(len(x)), len(x)))
    k = np.asarray(layerwise_kernels(spec, x))
    kp = np.asarray(layerwise_kernels(spec, x[perm]))
    # Diagonal entries carry nt's sqrt(q1 q2 - q12^2) cancellation: ~1e-7 relative.
    assert_close(kp, k[:, perm][:, :, perm], rtol=1e-6, atol=1e-9)


@SETTINGS
@given(st.sampled_from((4, 7)), st.integers(2, 4), st.integers(0, 10_000))
def test_theorem1_interpolates_as_ridge_vanishes(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))  # distinct points a.s.: the NTK Gram is PD
    theta = np.asarray(layerwise_kernels(MLP(depth=3), x))
    y, _ = encode_targets(rng.integers(0, d, n), n, n_classes=d)
    omega = rng.uniform(0.1, 1.0, size=(d, 3))
    errs = []
    for ridge in (1e-2, 1e-5, 1e-8):
        sol = krr_fit(theta, y, omega, ridge=ridge)
        errs.append(float(np.max(np.abs(krr_predict(theta, sol.alpha, omega) - y))))
    assert errs[-1] < 1e-4
    assert errs[0] >= errs[-1]


@SETTINGS
@given(
    arrays(np.float64, (3, 5), elements=st.floats(-5, 5, allow_nan=False)),
    st.sampled_from(CONSTRAINTS),
    st.floats(0.1, 3.0),
)
def test_projections_idempotent_and_feasible(omega, constraint, radius):
    lower = 0.25 * radius if constraint == "box" else 0.0
    p = project(omega, constraint, radius=radius, lower=lower)
    assert_close(project(p, constraint, radius=radius, lower=lower), p, atol=1e-12)
    tol = 1e-9
    if constraint == "box":
        assert np.all(p >= lower - tol) and np.all(p <= radius + tol)
    else:
        assert np.all(p >= -tol)
    if constraint == "simplex":
        assert_close(p.sum(axis=1), np.full(3, radius), atol=1e-9)
    if constraint == "l1_ball":
        assert np.all(p.sum(axis=1) <= radius + tol)
    # The projection is the closest feasible point: no feasible vertex is closer.
    if constraint == "simplex":
        for c in range(3):
            for v in np.eye(5) * radius:
                assert (
                    np.linalg.norm(omega[c] - p[c])
                    <= np.linalg.norm(omega[c] - v) + 1e-9
                )
