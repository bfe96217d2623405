r"""Layerwise recurrent NTKs: every head of a stacked RNN from one pass.

The recursion (derived in docs/rntk.md) runs over the steps of a pair of
sequences aligned at their last step. For a pair of lengths ``T, T'`` only the
time pairs ``(t, t')`` with ``t - t' = T - T'`` feed the heads, so one tile of
``b1 x b2`` pairs is a single ``lax.scan`` over ``min(T_max, T'_max)`` steps
counted back from the end, each step a ``lax.scan`` over the layers; a pair that
has not started yet (``s >= min(T_i, T'_j)`` steps before the end) keeps its
initial state. Per-sequence variances :math:`q^{l}_t(x) = \Sigma^{l}_{t,t}(x, x)`
come from the same recursion run on each sequence alone.

Inputs are packed arrays (:mod:`nftk_jax.model._sequences`); tiling, sharding
and symmetry are those of :mod:`nftk_jax.kernels._layerwise`, which calls
:func:`rntk_tile_fn` for an :class:`~nftk_jax.RNN`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jax import lax

from ..core import NFTKInputError
from ..model import RNN

__all__ = ["rntk_tile_fn", "rntk_block_size"]

_HEADER = 2
# Per pair and layer the scan carries K, K', Theta and builds their successors.
_STATE_PER_LAYER = 6
_EXTRA_PER_ENTRY = 12
_MIN_BLOCK = 8


def _relu_dual(q1, q2, c):
    """``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` for ReLU (arc-cosine)."""
    norm = jnp.sqrt(q1[:, None] * q2[None, :])
    pos = norm > 0
    cos = jnp.where(pos, c / jnp.where(pos, norm, 1.0), 0.0)
    cos = jnp.clip(cos, -1.0, 1.0)
    theta = jnp.arccos(cos)
    sin = jnp.sqrt(jnp.maximum(1.0 - cos * cos, 0.0))
    k = norm * (sin + (jnp.pi - theta) * cos) / (2 * jnp.pi)
    kdot = jnp.where(pos, (jnp.pi - theta) / (2 * jnp.pi), 0.0)
    return k, kdot


def _erf_dual(q1, q2, c):
    """``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` for ``erf`` (arcsine)."""
    d = jnp.sqrt((1 + 2 * q1)[:, None] * (1 + 2 * q2)[None, :])
    r = jnp.clip(2 * c / d, -1.0, 1.0)
    k = (2 / jnp.pi) * jnp.arcsin(r)
    kdot = (4 / jnp.pi) / (d * jnp.sqrt(jnp.maximum(1.0 - r * r, 1e-30)))
    return k, kdot


def _self_second_moment(activation: str, q):
    """``E[phi(u)^2]`` for ``u ~ N(0, q)``."""
    if activation == "relu":
        return q / 2
    return (2 / jnp.pi) * jnp.arcsin(2 * q / (1 + 2 * q))


def _unpack(x, m: int):
    """Packed rows -> lengths ``(b,)`` and steps ``(T, b, m)``, last step first."""
    lengths = x[:, 0]
    steps = x[:, _HEADER:].reshape(x.shape[0], -1, m)
    return lengths, jnp.swapaxes(steps, 0, 1)


def _self_variances(spec: RNN, lengths, steps):
    """``q^l`` at every step back from the end: ``(T, L, b)``.

    ``q^{l}_t = sigma_w^2 E[phi^2](q^{l}_{t-1}) + sigma_u^2 E[phi^2](q^{l-1}_t)
    + sigma_b^2`` with ``E[phi^2]`` of the input the mean square of ``x_t`` and
    of the initial state ``sigma_h^2``.
    """
    m = steps.shape[-1]
    sw2, su2, sb2 = spec.sigma_w**2, spec.sigma_u**2, spec.sigma_b**2
    b = steps.shape[1]
    init = jnp.full((spec.depth, b), spec.sigma_h**2, steps.dtype)

    def step(prev, xs):
        x_s, s = xs
        below0 = jnp.sum(x_s * x_s, axis=-1) / m

        def layer(below, prev_l):
            q = sw2 * prev_l + su2 * below + sb2
            return _self_second_moment(spec.activation, q), q

        _, q = lax.scan(layer, below0, prev)
        new = _self_second_moment(spec.activation, q)
        active = (s < lengths)[None, :]
        return jnp.where(active, new, prev), q

    idx = jnp.arange(steps.shape[0], dtype=steps.dtype)
    _, qs = lax.scan(step, init, (steps, idx), reverse=True)
    return qs


def _pair_heads(spec: RNN, gets, x1, x2, m: int):
    """``(G, L, b1, b2)`` head kernels of two packed blocks."""
    dual = _relu_dual if spec.activation == "relu" else _erf_dual
    sw2, su2, sb2 = spec.sigma_w**2, spec.sigma_u**2, spec.sigma_b**2
    len1, s1 = _unpack(x1, m)
    len2, s2 = _unpack(x2, m)
    # Variances need each sequence's whole past; the pairs only its common tail.
    q1 = _self_variances(spec, len1, s1)
    q2 = _self_variances(spec, len2, s2)
    n_steps = min(s1.shape[0], s2.shape[0])
    s1, s2, q1, q2 = s1[:n_steps], s2[:n_steps], q1[:n_steps], q2[:n_steps]
    shape = (spec.depth, x1.shape[0], x2.shape[0])
    same = (len1[:, None] == len2[None, :]).astype(x1.dtype)
    k0 = jnp.broadcast_to(spec.sigma_h**2 * same, shape)
    zero = jnp.zeros(shape, x1.dtype)
    common = jnp.minimum(len1[:, None], len2[None, :])

    def step(state, xs):
        a, b, qa, qb, s = xs
        below = (a @ b.T / m, jnp.zeros_like(zero[0]), jnp.zeros_like(zero[0]))

        def layer(below, xs_l):
            k_prev, kd_prev, th_prev, qa_l, qb_l = xs_l
            k_below, kd_below, th_below = below
            sigma = sw2 * k_prev + su2 * k_below + sb2
            theta = sigma + sw2 * kd_prev * th_prev + su2 * kd_below * th_below
            k, kd = dual(qa_l, qb_l, sigma)
            return (k, kd, theta), (k, kd, theta)

        _, new = lax.scan(layer, below, (*state, qa, qb))
        active = (s < common)[None]
        return tuple(
            jnp.where(active, n, o) for n, o in zip(new, state, strict=True)
        ), None

    idx = jnp.arange(n_steps, dtype=x1.dtype)
    (k, kd, theta), _ = lax.scan(
        step, (k0, zero, zero), (s1, s2, q1, q2, idx), reverse=True
    )
    v2 = spec.sigma_v**2
    out = {"nngp": v2 * k, "ntk": v2 * (k + kd * theta)}
    return jnp.stack([out[g] for g in gets])


def rntk_tile_fn(spec: RNN, gets: tuple[str, ...], features: int) -> Callable:
    """``(x1_block, x2_block) -> (G, L, b1, b2)`` on packed blocks (not jitted)."""
    return functools.partial(_pair_heads, spec, gets, m=features)


def rntk_block_size(
    depth: int, *, n_get: int, dtype, memory_budget: int, n_devices: int = 1
) -> int:
    """Largest square tile edge whose recursion state fits ``memory_budget``."""
    itemsize = np.dtype(dtype).itemsize
    per_entry = itemsize * (depth * (_STATE_PER_LAYER + n_get) + _EXTRA_PER_ENTRY)
    return square_tile_edge(
        per_entry, depth=depth, memory_budget=memory_budget, n_devices=n_devices
    )


def square_tile_edge(
    per_entry: float, *, depth: int, memory_budget: int, n_devices: int
) -> int:
    """Largest square tile edge at ``per_entry`` bytes per kernel entry.

    Shared by the MLP and RNN tile planners. Rows are split over ``n_devices``, so
    the per-device tile is ``(b / n_devices, b)``.
    """
    entries = memory_budget / per_entry
    if entries < _MIN_BLOCK * _MIN_BLOCK:
        need = per_entry * _MIN_BLOCK * _MIN_BLOCK
        raise NFTKInputError(
            f"memory_budget={memory_budget} bytes is too small for depth={depth}: "
            f"one {_MIN_BLOCK}x{_MIN_BLOCK} tile needs {need} bytes; raise it."
        )
    return max(_MIN_BLOCK, int(math.sqrt(entries * n_devices)))
