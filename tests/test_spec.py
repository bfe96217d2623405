"""The MLP spec: validation that names the argument, value semantics, network shapes."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest

from nftk_jax import MLP
from nftk_jax.model import ACTIVATIONS

from helpers import ACTIVATIONS as TEST_ACTIVATIONS
from helpers import PARAMETERIZATIONS, random_inputs

BAD_SPECS = [
    # (keyword arguments, exception type, argument name that the message must name)
    ({"depth": 0}, ValueError, "depth"),
    ({"depth": -3}, ValueError, "depth"),
    ({"depth": 2.0}, TypeError, "depth"),
    ({"depth": True}, TypeError, "depth"),
    ({"width": 0}, ValueError, "width"),
    ({"width": "wide"}, TypeError, "width"),
    ({"activation": "tanh"}, ValueError, "activation"),
    ({"activation": 3}, ValueError, "activation"),
    ({"activation_kwargs": {"alpha": 0.1}}, ValueError, "activation_kwargs"),
    ({"activation_kwargs": [1, 2]}, TypeError, "activation_kwargs"),
    ({"activation_kwargs": "alpha"}, TypeError, "activation_kwargs"),
    (
        {"activation": "leaky_relu", "activation_kwargs": {"alpha": "x"}},
        TypeError,
        "activation_kwargs",
    ),
    (
        {"activation": "leaky_relu", "activation_kwargs": {"alpha": math.inf}},
        TypeError,
        "activation_kwargs",
    ),
    (
        {"activation": "monomial", "activation_kwargs": {"degree": 2.5}},
        TypeError,
        "activation_kwargs",
    ),
    (
        {"activation": "erf", "activation_kwargs": {"alpha": 1.0}},
        ValueError,
        "activation_kwargs",
    ),
    ({"W_std": -1.0}, ValueError, "W_std"),
    ({"W_std": 0.0}, ValueError, "W_std"),
    ({"W_std": math.nan}, ValueError, "W_std"),
    ({"W_std": "big"}, TypeError, "W_std"),
    ({"b_std": -0.1}, ValueError, "b_std"),
    ({"readout_W_std": 0.0}, ValueError, "readout_W_std"),
    ({"readout_W_std": -2.0}, ValueError, "readout_W_std"),
    ({"parameterization": "mup"}, ValueError, "parameterization"),
    ({"parameterization": None}, ValueError, "parameterization"),
]


@pytest.mark.parametrize(("kwargs", "exc", "name"), BAD_SPECS)
def test_bad_spec_raises_and_names_argument(kwargs, exc, name):
    kwargs = {"depth": 2, **kwargs}
    with pytest.raises(exc, match=name):
        MLP(**kwargs)


def test_b_std_zero_and_none_are_allowed():
    assert MLP(depth=1, b_std=0.0).b_std == 0.0
    assert MLP(depth=1, b_std=None).b_std is None


def test_bad_out_dim_names_argument():
    with pytest.raises(ValueError, match="out_dim"):
        MLP(depth=2).network(out_dim=0)
    with pytest.raises(ValueError, match="depth"):
        MLP(depth=2).single_depth(0)


def test_hashable_and_equal_by_value():
    a = MLP(depth=3, activation="leaky_relu", activation_kwargs={"alpha": 0.2})
    b = MLP(depth=3, activation="leaky_relu", activation_kwargs={"alpha": 0.2})
    c = MLP(depth=3, activation="leaky_relu", activation_kwargs={"alpha": 0.3})
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2
    # Key order of activation_kwargs does not matter.
    e1 = MLP(depth=1, activation="erf", activation_kwargs={"a": 2.0, "b": 0.5})
    e2 = MLP(depth=1, activation="erf", activation_kwargs={"b": 0.5, "a": 2.0})
    assert e1 == e2 and hash(e1) == hash(e2)
    # No kwargs given, whether as None or as an empty mapping, is one spec.
    assert MLP(depth=2) == MLP(depth=2, activation_kwargs=None)
    assert MLP(depth=2) == MLP(depth=2, activation_kwargs={})


def test_frozen_and_replace_round_trips():
    a = MLP(depth=3, activation="leaky_relu", activation_kwargs={"alpha": 0.2})
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.depth = 4  # type: ignore[misc]
    b = dataclasses.replace(a, depth=5)
    assert b.depth == 5 and b.activation_kwargs == a.activation_kwargs
    assert dataclasses.replace(b, depth=3) == a
    # The spec is a valid static jit argument (hashable cache key).
    f = jax.jit(lambda x, s: x * s.depth, static_argnums=1)
    assert float(f(1.0, a)) == 3.0


def test_activation_table_matches_helpers():
    assert set(TEST_ACTIVATIONS) <= set(ACTIVATIONS)


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("activation", ("relu", "erf"))
def test_network_shapes(activation, parameterization):
    spec = MLP(
        depth=3, width=16, activation=activation, parameterization=parameterization
    )
    net = spec.network(out_dim=4)
    x = random_inputs(5, 3)
    _, params = net.init_fn(jax.random.PRNGKey(0), x.shape)
    assert net.apply_fn(params, x).shape == (3, 5, 4)
    k = net.kernel_fn(x, None, "ntk")
    assert k.shape == (3, 5, 5)
    nngp, ntk = net.kernel_fn(x, x[:2], ("nngp", "ntk"))
    assert nngp.shape == ntk.shape == (3, 5, 2)
    assert np.all(np.isfinite(np.asarray(ntk)))
