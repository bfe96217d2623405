"""Finite-width network: empirical kernels, training, ridge mapping, paper mode."""

from __future__ import annotations

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from nftk_jax import MLP, layerwise_kernels
from nftk_jax.finite._network import (
    _readout_weights,
    combined_empirical_ntk,
    head_empirical_ntks,
    nftk_network,
    ridge_to_weight_decay,
    train_network,
    train_paper_mode,
    weight_decay_to_ridge,
)
from nftk_jax.linalg._krr import combine_kernels, krr_fit, krr_predict

from helpers import assert_close, random_inputs, rel_err

OMEGA = np.array([[0.5, 0.2, 0.3], [0.0, 1.0, 0.1]])  # (d=2, L=3), one zero entry


def _lr(theta, omega, ridge, n, fraction):
    """``fraction`` of the gradient-descent stability bound n / (lambda_max + ridge)
    of the objective (1/n) sum ||f - y||^2 + (ridge / n) ||theta - theta_0||^2."""
    lam = np.linalg.eigvalsh(
        np.asarray(theta if omega is None else combine_kernels(theta, omega))
    )
    return fraction * n / (lam[..., -1].max() + ridge)


@pytest.fixture(scope="module")
def ntk_gaps():
    """Mean relative gaps (combined, per head) over 3 seeds at widths 64 and 512."""
    x = random_inputs(6, 4)
    out = {}
    for width in (64, 512):
        spec = MLP(depth=3, width=width)
        theta = layerwise_kernels(spec, x)
        k = combine_kernels(theta, OMEGA)
        net = nftk_network(spec, 2)
        comb, head = [], []
        for seed in range(3):
            params = net.init_fn(jax.random.key(seed), 4)
            comb.append(
                rel_err(combined_empirical_ntk(spec, params, x, None, OMEGA), k)
            )
            head.append(rel_err(head_empirical_ntks(spec, params, x), theta))
        out[width] = (np.mean(comb), np.mean(head))
    return out


def test_combined_ntk_tends_to_omega_mixture(ntk_gaps):
    small, large = ntk_gaps[64][0], ntk_gaps[512][0]
    # Fluctuations scale like width ** -0.5: a factor sqrt(8) ~ 2.8 expected.
    assert large < 0.6 * small, ntk_gaps
    assert large < 0.15, ntk_gaps


def test_head_ntks_tend_to_layerwise_kernels(ntk_gaps):
    small, large = ntk_gaps[64][1], ntk_gaps[512][1]
    assert large < 0.6 * small, ntk_gaps
    assert large < 0.15, ntk_gaps


def test_combined_ntk_is_quadratic_in_head_weights():
    """Exact at any width: K(t * Omega) = t K(Omega), and a one-hot Omega row picks
    out that head's empirical NTK."""
    spec = MLP(depth=3, width=16)
    x = random_inputs(5, 4, seed=1)
    params = nftk_network(spec, 2).init_fn(jax.random.key(0), 4)
    k = combined_empirical_ntk(spec, params, x, None, OMEGA)
    assert_close(combined_empirical_ntk(spec, params, x, None, 3.0 * OMEGA), 3.0 * k)
    heads = head_empirical_ntks(spec, params, x)  # mean over the 2 outputs
    for layer in range(3):
        onehot = np.zeros((2, 3))
        onehot[:, layer] = 2.0
        k_l = combined_empirical_ntk(spec, params, x, None, onehot)
        assert_close(k_l.mean(axis=0), 2.0 * heads[layer], rtol=1e-9)


def test_centred_gradient_descent_matches_krr_at_large_width():
    n, ridge = 20, 1.0
    x, xt = random_inputs(n, 4, seed=2), random_inputs(8, 4, seed=3)
    y = np.random.default_rng(4).normal(size=(n, 2))
    omega = np.array([[0.7, 0.3], [0.2, 0.8]])
    spec = MLP(depth=2, width=2048)
    theta, theta_x = layerwise_kernels(spec, x), layerwise_kernels(spec, xt, x)
    ref = krr_predict(theta_x, krr_fit(theta, y, omega, ridge=ridge).alpha, omega)
    # 0.9 of the bound leaves room for the finite-width NTK being a few % larger.
    lr = _lr(theta, omega, ridge, n, 0.9)
    res = train_network(
        spec, x, y, omega=omega, steps=80, learning_rate=lr, ridge=ridge, centered=True
    )
    assert res.weight_decay == pytest.approx(ridge / n)
    assert res.ridge == pytest.approx(ridge)
    # Width 2048: the empirical NTK is within a few percent of the limit (measured
    # gap 0.046).
    assert rel_err(res.predict(xt), ref) < 0.1
    assert res.history.loss[-1] < res.history.loss[0]


def _full_empirical_ntk(net, params0, x, omega):
    """(n d, n d) empirical NTK of the combined output, cross-class terms included."""
    flat0, unravel = jax.flatten_util.ravel_pytree(params0)
    jac = jax.jacobian(lambda f: net.apply_fn(unravel(f), x, omega).reshape(-1))(flat0)
    return jac @ jac.T


def test_linearized_training_is_krr_with_empirical_ntk():
    """The minimiser of the linearised objective with weight decay wd is KRR with the
    empirical NTK at theta_0 and ridge n * wd (checks the factor n numerically)."""
    n, wd = 12, 0.05
    x, xt = random_inputs(n, 3, seed=5), random_inputs(4, 3, seed=6)
    y = np.random.default_rng(7).normal(size=(n, 2))
    omega = np.array([[0.5, 0.5], [0.1, 0.9]])
    spec = MLP(depth=2, width=32)
    net = nftk_network(spec, 2)
    params0 = net.init_fn(jax.random.key(3), 3)
    k_all = _full_empirical_ntk(net, params0, np.concatenate([x, xt]), omega)
    k, kx = k_all[: 2 * n, : 2 * n], k_all[2 * n :, : 2 * n]
    rho = weight_decay_to_ridge(wd, n)
    ref = (kx @ np.linalg.solve(k + rho * np.eye(n * 2), y.reshape(-1))).reshape(-1, 2)
    res = train_network(
        spec,
        x,
        y,
        omega=omega,
        steps=400,
        learning_rate=_lr(k, None, rho, n, 0.9),
        weight_decay=wd,
        centered=True,
        linearized=True,
        params0=params0,
    )
    assert rel_err(res.predict(xt), ref) < 1e-6
    # The wrong factor (ridge = wd, or 2 n wd) is far off.
    for wrong in (wd, 2 * n * wd):
        bad = (kx @ np.linalg.solve(k + wrong * np.eye(n * 2), y.reshape(-1))).reshape(
            -1, 2
        )
        assert rel_err(res.predict(xt), bad) > 1e-2


def test_ridge_weight_decay_round_trip():
    for ridge, n in [(0.0, 1), (1e-3, 50), (2.5, 4000)]:
        wd = ridge_to_weight_decay(ridge, n)
        assert wd == pytest.approx(ridge / n)
        assert weight_decay_to_ridge(wd, n) == pytest.approx(ridge)
    with pytest.raises(ValueError, match="ridge"):
        ridge_to_weight_decay(-1.0, 10)
    with pytest.raises(ValueError, match=r"^n must be >= 1"):
        weight_decay_to_ridge(1.0, 0)


def test_zero_layer_weight_contributes_nothing():
    spec = MLP(depth=3, width=8)
    net = nftk_network(spec, 2)
    params = net.init_fn(jax.random.key(0), 4)
    x = jnp.asarray(random_inputs(5, 4))
    om = jnp.asarray(OMEGA)  # OMEGA[1, 0] == 0

    grads = jax.grad(lambda p: net.apply_fn(p, x, om)[:, 1].sum())(params)
    assert not np.any(np.asarray(_readout_weights(grads, 3)[0][:, 1]))
    assert np.any(np.asarray(_readout_weights(grads, 3)[1][:, 1]))

    def bump(p, c):  # change column c of the first readout V_1
        leaves, tree = jax.tree_util.tree_flatten(p)
        v1 = _readout_weights(p, 3)[0]
        i = next(i for i, leaf in enumerate(leaves) if leaf is v1)
        leaves[i] = v1.at[:, c].add(5.0)
        return jax.tree_util.tree_unflatten(tree, leaves)

    before = net.apply_fn(params, x, om)
    assert_close(net.apply_fn(bump(params, 1), x, om), before, rtol=0, atol=0)
    assert not np.allclose(net.apply_fn(bump(params, 0), x, om)[:, 0], before[:, 0])


def test_paper_mode_keeps_omega_non_negative():
    x = random_inputs(40, 5, seed=8)
    y = np.random.default_rng(9).integers(0, 3, size=40)
    omega0 = np.full((3, 4), 0.25)
    omega0[2, 1] = 0.0
    res = train_paper_mode(
        MLP(depth=4, width=16),
        x,
        y,
        steps=30,
        omega_init=omega0,
        batch_size=10,
        omega_learning_rate=0.5,  # large: drives some weights onto the boundary
        log_every=1,
    )
    assert res.omega.shape == (3, 4)
    assert np.all(res.history.min_head_weight >= 0)
    assert np.all(res.history.omega >= 0)
    assert_close(res.omega, np.square(res.head_weights))
    assert np.all(np.isfinite(res.history.loss))
    assert res.predict(x).shape == (40, 3)
    # The same run without the projection leaves the non-negative orthant.
    free = train_paper_mode(
        MLP(depth=4, width=16),
        x,
        y,
        steps=30,
        omega_init=omega0,
        batch_size=10,
        omega_learning_rate=0.5,
        project=False,
    )
    assert np.asarray(free.head_weights).min() < 0


def test_paper_mode_frozen_zero_weight_leaves_its_readout_untouched():
    spec = MLP(depth=3, width=8)
    x = random_inputs(20, 4, seed=10)
    y = np.random.default_rng(11).integers(0, 2, size=20)
    omega0 = np.array([[0.0, 0.5, 0.5], [0.3, 0.3, 0.4]])
    res = train_paper_mode(
        spec, x, y, steps=20, omega_init=omega0, batch_size=5, omega_learning_rate=0.0
    )
    v0, v = _readout_weights(res.params0, 3)[0], _readout_weights(res.params, 3)[0]
    assert_close(v[:, 0], v0[:, 0], rtol=0, atol=0)
    assert not np.allclose(v[:, 1], v0[:, 1])
    assert_close(res.omega, omega0, rtol=1e-12)


def test_xavier_normal_init():
    spec = MLP(depth=2, width=512)
    net = nftk_network(spec, 10, init="xavier_normal")
    params = net.init_fn(jax.random.key(0), 300)
    leaves = jax.tree_util.tree_leaves(params)
    weights = [leaf for leaf in leaves if leaf.shape[0] > 1]
    biases = [leaf for leaf in leaves if leaf.shape[0] == 1]  # (1, width)
    assert sorted(w.shape for w in weights) == sorted(
        [(300, 512), (512, 512), (512, 10), (512, 10)]
    )
    for w in weights:
        fan_in, fan_out = w.shape
        assert np.var(np.asarray(w)) == pytest.approx(2 / (fan_in + fan_out), rel=0.08)
        assert abs(np.mean(np.asarray(w))) < 0.01
    assert biases and not any(np.any(np.asarray(b)) for b in biases)
    # Standard parameterisation: the first head is relu(x W_1) V_1 exactly.
    x = random_inputs(3, 300)
    w1 = next(w for w in weights if w.shape == (300, 512))
    v1 = _readout_weights(params, 2)[0]
    heads = net.heads_fn(params, x)
    assert_close(heads[0], np.maximum(x @ np.asarray(w1), 0) @ np.asarray(v1))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"omega": -OMEGA[:, :2]}, "omega"),
        ({"omega": np.ones((2, 3))}, "omega"),
        (
            {"y": np.zeros((7, 2))},
            r"^y must have one entry per example: expected length 10, got shape "
            r"\(7, 2\)",
        ),
        ({"batch_size": 11}, "batch_size"),
        ({"ridge": 1.0, "weight_decay": 0.1}, "ridge"),
        ({"steps": 0}, "steps"),
        ({"ridge": -1.0}, "ridge"),
        ({"init": "glorot"}, "init"),
        ({"optimizer": "lbfgs"}, "optimizer"),
    ],
)
def test_train_network_rejects_bad_inputs(kwargs, name):
    args = {
        "x": random_inputs(10, 3),
        "y": np.zeros((10, 2)),
        "omega": np.ones((2, 2)),
        "steps": 1,
        "learning_rate": 0.1,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        train_network(MLP(depth=2, width=4), **args)


def test_paper_mode_rejects_bad_inputs():
    x, y = random_inputs(10, 3), np.arange(10) % 2
    spec = MLP(depth=2, width=4)
    with pytest.raises(ValueError, match="omega_init"):
        train_paper_mode(spec, x, y, steps=1, omega_init=-np.ones((1, 2)))
    with pytest.raises(ValueError, match="batch_size"):
        train_paper_mode(spec, x, y, steps=1, batch_size=50)
    with pytest.raises(ValueError, match="steps"):
        train_paper_mode(spec, x, y, steps=0, batch_size=5)
    with pytest.raises(ValueError, match="omega"):
        nftk_network(spec, 1).apply_fn(
            nftk_network(spec, 1).init_fn(jax.random.key(0), 3), x, np.ones((2, 2))
        )
