r"""The fast layerwise recursion: every head's NNGP and NTK in one fused pass.

For activations with a closed form (:data:`FAST_ACTIVATIONS`) the multi-head
kernel of :class:`~nftk_jax.MLP` is evaluated directly from the input Gram matrix
:math:`G = x_1 x_2^\top`, with neural-tangents' Dense conventions (input kernel
:math:`G / m`; ``'ntk'`` and ``'standard'`` parameterisation; ``b_std=None``
removes the bias and, under ``'standard'``, the NTK's bias term):

.. math::

    q^{(l)}_{12} = \sigma_W^2 k^{(l-1)}_{12} + \sigma_b^2, \quad
    \Theta^{(l)}_{\text{pre}} = q^{(l)}_{12} + \sigma_W^2 \Theta^{(l-1)}
    \ \text{(ntk)}, \quad
    n_{\text{in}} k^{(l-1)}_{12} + \sigma_W^2 \Theta^{(l-1)} + [b]
    \ \text{(standard)},

    k^{(l)} = \mathbb{E}[\phi(u)\phi(v)], \quad
    \Theta^{(l)} = \Theta^{(l)}_{\text{pre}}\, \mathbb{E}[\phi'(u)\phi'(v)],

and head :math:`l` is the readout of layer :math:`l`: NNGP
:math:`\sigma_V^2 k^{(l)}`, NTK :math:`\sigma_V^2 (k^{(l)} + \Theta^{(l)})`
(``'ntk'``) or :math:`n k^{(l)} + \sigma_V^2 \Theta^{(l)}` (``'standard'``).

Diagonal and near-duplicates. The self-covariances :math:`q_1, q_2` are vectors
from the diagonal recursion (angle 0). For the ReLU family the gap
:math:`\Delta = \sqrt{q_1 q_2} - q_{12}` is carried alongside :math:`q_{12}`: a
dense layer maps it exactly, without cancellation, by

.. math:: \Delta' = \sigma_W^2 \Delta_h + \frac{\sigma_W^2 \sigma_b^2
          (r_1 - r_2)^2}{r'_1 r'_2 + \sigma_W^2 r_1 r_2 + \sigma_b^2},

(:math:`r_i` the post-activation, :math:`r'_i` the next pre-activation standard
deviations), and the activation by :math:`\Delta_h = c\Delta - f(s - \theta
q_{12})` (:mod:`._closed_forms`). Exact duplicate inputs (equal rows, found on
the host) get :math:`G_{ij} = \|x_i\|^2` and :math:`\Delta = 0`, so their
entries run through the diagonal recursion bit for bit.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import NFTKInputError
from ..model import ACTIVATIONS, MLP
from ._closed_forms import FAST_ACTIVATIONS, activation_step

__all__ = [
    "ENGINES",
    "FAST_ACTIVATIONS",
    "resolve_engine",
    "fast_kernel_fn",
    "fast_heads",
    "diag_layers",
    "row_keys",
]

#: Values of the ``engine`` switch: ``'fast'`` is the closed-form recursion, compiled
#: for CPUs (:mod:`._fast_cpu`) when the tiles run on CPU devices and as one XLA
#: program otherwise; ``'fast_xla'`` is always the XLA program.
ENGINES = ("auto", "fast", "fast_xla", "stax")
# Layers after the first run as lax.scan (compiles one layer body; unrolling ten
# layers into one fused program took minutes to compile on a loaded machine).
_UNROLL_DEPTH = 1


def resolve_engine(spec: MLP, engine: str) -> str:
    """``'fast'``, ``'fast_xla'`` or ``'stax'`` for ``spec``; ``'auto'`` picks
    ``'fast'`` when the activation has a closed form.

    Example:
        >>> resolve_engine(MLP(depth=2), "auto"), resolve_engine(
        ...     MLP(depth=2, activation="sin"), "auto")
        ('fast', 'stax')
    """
    if engine not in ENGINES:
        raise NFTKInputError(f"engine={engine!r}; choose one of {ENGINES}.")
    has_fast = spec.activation in FAST_ACTIVATIONS
    if engine in ("fast", "fast_xla") and not has_fast:
        raise NFTKInputError(
            f"engine={engine!r} has no closed form for activation={spec.activation!r}; "
            f"use engine='auto' or 'stax' (fast: {sorted(FAST_ACTIVATIONS)})."
        )
    if engine == "auto":
        return "fast" if has_fast else "stax"
    return engine


def _step_of(spec: MLP):
    defaults = ACTIVATIONS[spec.activation][1]
    kwargs = {**defaults, **dict(spec.activation_kwargs)}
    return activation_step(spec.activation, kwargs)


def _dense_gap(gap_h, r1h, r2h, q1, q2, w2, b2):
    """The gap after a dense layer (see the module docstring)."""
    if b2 == 0.0:
        return w2 * gap_h
    num = (w2 * b2) * jnp.square(r1h[:, None] - r2h[None, :])
    den = (
        jnp.sqrt(q1)[:, None] * jnp.sqrt(q2)[None, :]
        + w2 * (r1h[:, None] * r2h[None, :])
        + b2
    )
    return w2 * gap_h + num / den


def diag_layers(spec: MLP, sq: jax.Array, m: int) -> tuple[jax.Array, jax.Array]:
    """Pre-activation variances ``(L, n)``, post ones ``(L + 1, n)`` (input first).

    The angle-0 recursion of rows with squared norms ``sq`` and ``m`` features.
    """
    step = _step_of(spec)
    w2, b2 = spec.W_std**2, (spec.b_std or 0.0) ** 2

    def layer(h, _):
        q = w2 * h + b2
        nngp, _, _ = step.fn(q, q, q, jnp.zeros_like(q) if step.carries_gap else None)
        return nngp, (q, nngp)

    # A scan, not a Python loop: XLA's compile time grows quadratically with an
    # unrolled chain of fused elementwise layers (57 s at depth 40).
    h0 = sq / m
    _, (pre, post) = jax.lax.scan(layer, h0, None, length=spec.depth)
    return pre, jnp.concatenate([h0[None], post])


def fast_heads(
    spec: MLP,
    gram: jax.Array,
    sq1: jax.Array,
    sq2: jax.Array,
    m: int,
    *,
    gets: Sequence[str] = ("ntk",),
    same: jax.Array | None = None,
    diags: tuple | None = None,
) -> jax.Array:
    """Every head's kernels from the Gram matrix: ``(len(gets), L, n1, n2)``.

    Args:
        spec: the architecture (a fast activation).
        gram: ``(n1, n2)`` inputs' Gram matrix :math:`x_1 x_2^\\top`.
        sq1: ``(n1,)`` squared norms of ``x1``'s rows.
        sq2: ``(n2,)`` squared norms of ``x2``'s rows.
        m: the input dimension (fan-in of the first layer).
        gets: ``'nngp'`` and/or ``'ntk'``, in output order.
        same: optional ``(n1, n2)`` mask of exactly equal input rows; those
            entries follow the diagonal recursion exactly (``sq1[i] == sq2[j]``
            is required there).
        diags: ``(diag_layers(spec, sq1, m), diag_layers(spec, sq2, m))`` if
            already computed.
    """
    step = _step_of(spec)
    w2, b2 = spec.W_std**2, (spec.b_std or 0.0) ** 2
    wr2 = spec.readout_W_std**2
    standard = spec.parameterization == "standard"
    bias_one = 1.0 if spec.b_std is not None else 0.0
    if diags is None:
        diags = (diag_layers(spec, sq1, m), diag_layers(spec, sq2, m))
    (pre1, post1), (pre2, post2) = diags
    dt = gram.dtype
    if same is not None:
        gram = jnp.where(same, sq1[:, None], gram)
    h12 = gram / m
    gap = None
    if step.carries_gap:
        gap = jnp.maximum(jnp.sqrt(sq1)[:, None] * jnp.sqrt(sq2)[None, :] - gram, 0)
        gap = gap / m
        if same is not None:
            gap = jnp.where(same, 0, gap)

    def layer(carry, diag, w_in):
        h12, ntk_h, gap_h = carry
        q1, q2, c1, c2 = diag
        q12 = w2 * h12 + b2
        if standard:
            ntk = w_in * h12 + w2 * ntk_h + bias_one
        else:
            ntk = q12 + w2 * ntk_h
        if gap_h is not None:
            gap_h = _dense_gap(gap_h, jnp.sqrt(c1), jnp.sqrt(c2), q1, q2, w2, b2)
        h12, dot, gap_h = step.fn(q1[:, None], q2[None, :], q12, gap_h)
        ntk_h = ntk * dot
        outs = []
        for g in gets:
            if g == "nngp":
                outs.append(wr2 * h12)
            elif standard:
                outs.append(spec.width * h12 + wr2 * ntk_h)
            else:
                outs.append(wr2 * (h12 + ntk_h))
        return (h12, ntk_h, gap_h), jnp.stack(outs)

    diags = (pre1, pre2, post1[:-1], post2[:-1])
    carry, first = layer((h12, jnp.zeros((), dt), gap), tuple(d[0] for d in diags), m)
    if spec.depth <= _UNROLL_DEPTH:
        heads = [first]
        for i in range(1, spec.depth):
            carry, out = layer(carry, tuple(d[i] for d in diags), spec.width)
            heads.append(out)
        return jnp.stack(heads, axis=1)
    _, rest = jax.lax.scan(
        functools.partial(layer, w_in=spec.width), carry, tuple(d[1:] for d in diags)
    )
    return jnp.concatenate([first[:, None], jnp.moveaxis(rest, 0, 1)], axis=1)


def fast_kernel_fn(spec: MLP):
    """A traceable ``kernel_fn(x1, x2=None, get='ntk')`` of the fast engine.

    The drop-in counterpart of ``spec.network().kernel_fn`` (same outputs,
    differentiable in the inputs). With ``x2=None`` the diagonal is exact; exact
    duplicates between different rows are not searched for here (see
    :func:`row_keys` for the tiled path, which does).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(4, 3))
        >>> spec = MLP(depth=3)
        >>> k = fast_kernel_fn(spec)(x, None, "ntk")
        >>> ref = spec.network().kernel_fn(x, None, "ntk")
        >>> bool(np.allclose(k, ref, rtol=1e-6))
        True
    """
    resolve_engine(spec, "fast")

    def kernel_fn(x1, x2=None, get: str | Sequence[str] = "ntk"):
        gets = (get,) if isinstance(get, str) else tuple(get)
        if not gets or any(g not in ("nngp", "ntk") for g in gets):
            raise NFTKInputError(f"get={get!r}; use 'ntk', 'nngp' or a tuple of them.")
        x1 = jnp.asarray(x1)
        same = None
        if x2 is None:
            x2 = x1
            same = jnp.eye(x1.shape[0], dtype=bool)
        x2 = jnp.asarray(x2)
        sq1 = jnp.sum(x1 * x1, axis=1)
        sq2 = sq1 if same is not None else jnp.sum(x2 * x2, axis=1)
        gram = x1 @ x2.T
        out = fast_heads(spec, gram, sq1, sq2, x1.shape[1], gets=gets, same=same)
        return out[0] if isinstance(get, str) else tuple(out)

    return kernel_fn


def row_keys(*blocks: np.ndarray, dtype: Any) -> tuple[list, list]:
    """Integer keys equal exactly for equal rows, and per-row squared norms.

    Equal rows (across all ``blocks``) get the same key and bit-identical squared
    norms (computed once per distinct row, in float64, then cast to ``dtype``), so
    the recursion can treat them as one input.

    Returns:
        ``([keys_of_block, ...], [sq_norms_of_block, ...])``.

    Example:
        >>> import numpy as np
        >>> a = np.array([[1.0, 2.0], [3.0, 4.0]])
        >>> keys, sq = row_keys(a, a[::-1], dtype=np.float64)
        >>> bool(keys[0][0] == keys[1][1]), bool(keys[0][0] != keys[0][1])
        (True, True)
        >>> sq[1].tolist()
        [25.0, 5.0]
    """
    allx = np.concatenate([np.ascontiguousarray(b) + 0.0 for b in blocks])  # -0 -> 0
    view = allx.view(np.dtype((np.void, allx.dtype.itemsize * allx.shape[1])))
    _, first, inverse = np.unique(view.ravel(), return_index=True, return_inverse=True)
    rows = allx[first].astype(np.float64)
    sq = np.einsum("ij,ij->i", rows, rows).astype(dtype)
    keys = inverse.astype(np.int32).ravel()
    out_k, out_s, start = [], [], 0
    for b in blocks:
        k = keys[start : start + len(b)]
        out_k.append(k)
        out_s.append(sq[k])
        start += len(b)
    return out_k, out_s
