r"""The finite-width stacked RNN of an :class:`~nftk_jax.RNN` spec.

The network of :mod:`nftk_jax.model._rnn` in the NTK parameterisation: standard
normal ``W^l (n, n)``, ``U^l (n, m_l)``, ``b^l (n,)`` and ``V^l (d, n)``, scaled
in the forward pass, plus the fixed initial states ``h0 = (L, n)`` (standard
normal, multiplied by ``sigma_h``). The initial states sit in the parameter
tree so that one pytree describes the network, but the forward pass stops their
gradient: they are neither trained nor part of the empirical NTK, as in the
kernel's derivation (docs/rntk.md).

Inputs are packed sequence arrays (:func:`~nftk_jax.model.pack_sequences`); a sequence
of length ``T_i`` is run over its own steps only, so padding never reaches a
hidden state. :func:`~nftk_jax.nftk_network`, :func:`~nftk_jax.train_network`,
:func:`~nftk_jax.finite.head_empirical_ntks` and :func:`~nftk_jax.compare_widths` use
this network for an ``RNN`` spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from ..core import check_positive_int, resolve_dtype
from ..model import RNN

__all__ = ["rnn_heads", "rnn_init"]

_HEADER = 2


def _phi(activation: str) -> Callable:
    return jax.nn.relu if activation == "relu" else jax.scipy.special.erf


def rnn_init(spec: RNN, key: jax.Array, features: int, n_classes: int, dtype) -> dict:
    """Standard normal parameters ``{'h0', 'layers': [{'W','U','b','V'}, ...]}``."""
    m = check_positive_int(features, "input_dim")
    d = check_positive_int(n_classes, "n_classes")
    n = spec.width
    dt = resolve_dtype(dtype)
    keys = jax.random.split(key, spec.depth + 1)
    layers = []
    for depth_l, k in enumerate(keys[1:]):
        kw, ku, kb, kv = jax.random.split(k, 4)
        fan_in = m if depth_l == 0 else n
        layers.append(
            {
                "W": jax.random.normal(kw, (n, n), dt),
                "U": jax.random.normal(ku, (n, fan_in), dt),
                "b": jax.random.normal(kb, (n,), dt),
                "V": jax.random.normal(kv, (d, n), dt),
            }
        )
    h0 = jax.random.normal(keys[0], (spec.depth, n), dt)
    return {"h0": h0, "layers": layers}


def _layer_step(spec: RNN, layer: dict, h_prev, inp):
    n = layer["W"].shape[0]
    g = (
        (spec.sigma_w / math.sqrt(n)) * h_prev @ layer["W"].T
        + (spec.sigma_u / math.sqrt(layer["U"].shape[1])) * inp @ layer["U"].T
        + spec.sigma_b * layer["b"]
    )
    return _phi(spec.activation)(g)


def rnn_heads(spec: RNN) -> Callable:
    """``heads(params, x_packed) -> (L, n_seq, d)``: every readout's output."""

    def heads(params, x):
        dt = params["h0"].dtype
        x = jnp.asarray(x, dt)
        m = params["layers"][0]["U"].shape[1]
        lengths = x[:, 0]
        steps = jnp.swapaxes(x[:, _HEADER:].reshape(x.shape[0], -1, m), 0, 1)
        h0 = spec.sigma_h * lax.stop_gradient(params["h0"])
        init = tuple(jnp.broadcast_to(h, (x.shape[0], h.shape[0])) for h in h0)

        def step(hs, xs):
            x_s, s = xs
            active = (s < lengths)[:, None]
            inp, new = x_s, []
            for layer, h_prev in zip(params["layers"], hs, strict=True):
                h = jnp.where(active, _layer_step(spec, layer, h_prev, inp), h_prev)
                new.append(h)
                inp = h
            return tuple(new), None

        idx = jnp.arange(steps.shape[0], dtype=dt)
        last, _ = lax.scan(step, init, (steps, idx), reverse=True)
        outs = [
            (spec.sigma_v / math.sqrt(h.shape[1])) * h @ layer["V"].T
            for layer, h in zip(params["layers"], last, strict=True)
        ]
        return jnp.stack(outs)

    return heads
