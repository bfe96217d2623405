r"""Closed-form activation steps of the fast kernel recursion.

Each step maps the pre-activation covariances of a pair of inputs,
:math:`q_1 = \Sigma(x, x)`, :math:`q_2 = \Sigma(x', x')` (broadcast diagonals) and
:math:`q_{12} = \Sigma(x, x')`, to the post-activation covariance
:math:`\mathbb{E}[\phi(u)\phi(v)]` and the derivative factor
:math:`\dot\Sigma = \mathbb{E}[\phi'(u)\phi'(v)]` (the NTK is multiplied by it),
with neural-tangents' conventions for every parameter.

Every square root of a difference that cancels for near-identical inputs is
rewritten as a product of terms that do not: with :math:`r_{12} = \sqrt{q_1 q_2}`
and the carried gap :math:`\Delta = r_{12} - q_{12} \ge 0`,
:math:`q_1 q_2 - q_{12}^2 = \Delta\,(r_{12} + q_{12})`, so the angle of the
arc-cosine kernels is :math:`\theta = 2\operatorname{atan2}(\sqrt\Delta,
\sqrt{r_{12} + q_{12}})`, exact to round-off even at :math:`\theta \to 0`.
The ReLU family carries :math:`\Delta` itself through the layers (see
:mod:`._fast`); Erf and GELU recompute it from :math:`q_{12}`, after their
:math:`1 + 2q` / :math:`1 + q` shifts have removed the worst cancellation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..core import NFTKInputError
from ._special import atan2_nonneg, safe_sqrt

__all__ = [
    "ActivationStep",
    "activation_step",
    "activation_parameters",
    "FAST_ACTIVATIONS",
]

#: Activations with a closed-form fast step (the others use neural-tangents).
FAST_ACTIVATIONS = frozenset({"relu", "leaky_relu", "abrelu", "abs", "erf", "gelu"})


class ActivationStep(NamedTuple):
    """One activation's step.

    Attributes:
        fn: ``fn(q1, q2, q12, gap) -> (nngp, dot, gap_out)``; ``gap`` and
            ``gap_out`` are ``None`` unless ``carries_gap``.
        carries_gap: whether the step consumes and returns the gap
            :math:`\\Delta = \\sqrt{q_1 q_2} - q_{12}`, which then is propagated
            through the dense layers too (positively homogeneous activations).
    """

    fn: Callable
    carries_gap: bool


def _signed_atan2(y: jax.Array, x_pos: jax.Array) -> jax.Array:
    """``atan2(y, x)`` for ``x > 0``."""
    r = atan2_nonneg(jnp.abs(y), x_pos)
    return jnp.where(y < 0, -r, r)


def _abrelu(a: float, b: float) -> ActivationStep:
    """``a min(x, 0) + b max(x, 0)``: the arc-cosine kernel of degree 1."""
    c = (a * a + b * b) / 2
    f = (a - b) ** 2 / (2 * math.pi)

    if f == 0.0:  # a linear map: no angle at all

        def linear(q1, q2, q12, gap):
            return c * q12, jnp.full_like(q12, c), c * gap

        return ActivationStep(linear, True)

    def step(q1, q2, q12, gap):
        r12 = jnp.sqrt(q1) * jnp.sqrt(q2)
        sa = safe_sqrt(gap)
        sb = safe_sqrt(r12 + q12)
        s = sa * sb  # sqrt(q1 q2 - q12^2), without cancellation
        theta = 2 * atan2_nonneg(sa, sb)
        # 0/0 (a zero pre-activation): neural-tangents' convention, angle pi/2
        theta = jnp.where((sa == 0) & (sb == 0), math.pi / 2, theta)
        dot = c - f * theta
        nngp = f * s + dot * q12
        # r12' - nngp' = c gap - f (s - theta q12): the gap after the activation
        gap_out = jnp.maximum(c * gap - f * (s - theta * q12), 0)
        return nngp, dot, gap_out

    return ActivationStep(step, True)


def _erf(a: float, b: float, c: float) -> ActivationStep:
    """``a erf(b x) + c``: the arcsine kernel (Williams 1997)."""
    b2, a2, c2 = b * b, a * a, c * c

    def step(q1, q2, q12, gap):
        q1, q2, q12 = b2 * q1, b2 * q2, b2 * q12
        su = jnp.sqrt(1 + 2 * q1) * jnp.sqrt(1 + 2 * q2)
        rq = jnp.sqrt(q1) * jnp.sqrt(q2)
        # su - 2 q12 = (su - 2 rq) + 2 (rq - q12); su^2 - 4 rq^2 = 1 + 2 q1 + 2 q2
        low = (1 + 2 * (q1 + q2)) / (su + 2 * rq) + 2 * jnp.maximum(rq - q12, 0)
        root = jnp.sqrt(low * (su + 2 * q12))  # sqrt((1+2q1)(1+2q2) - 4 q12^2)
        nngp = (2 / math.pi) * _signed_atan2(2 * q12, root)
        dot = (4 * b2 * a2 / math.pi) / root
        return a2 * nngp + c2, dot, None

    return ActivationStep(step, False)


def _gelu() -> ActivationStep:
    """``x Phi(x)`` (Tsuchida et al. 2020), neural-tangents' formula, stabilised."""

    def step(q1, q2, q12, gap):
        p1, p2 = q1 + 1, q2 + 1
        sp = jnp.sqrt(p1) * jnp.sqrt(p2)
        rq = jnp.sqrt(q1) * jnp.sqrt(q2)
        low = (1 + q1 + q2) / (sp + rq) + jnp.maximum(rq - q12, 0)  # sp - q12
        dsq = low * (sp + q12)  # (1 + q1)(1 + q2) - q12^2
        inv_delta = 1 / jnp.sqrt(dsq)
        inv_pp = (1 / p1) * (1 / p2)
        prod = q1 * q2
        angle = _signed_atan2(q12, dsq * inv_delta)
        nngp = (q12 * q12 + prod * dsq) * inv_pp * inv_delta + q12 * angle
        nngp = nngp / (2 * math.pi) + 0.25 * q12
        first = (inv_delta * inv_delta + (1 - prod) * inv_pp + 1) * q12 * inv_delta
        dot = first / (2 * math.pi) + 0.25 + angle / (2 * math.pi)
        return nngp, dot, None

    return ActivationStep(step, False)


def _family(activation: str, kwargs: dict) -> tuple[str, tuple[float, ...]]:
    """``(family, parameters)`` of a fast activation: ``abrelu (a, b)``, ``erf (a,
    b, c)`` or ``gelu ()``."""
    if activation == "relu":
        return "abrelu", (0.0, 1.0)
    if activation == "leaky_relu":
        return "abrelu", (kwargs["alpha"], 1.0)
    if activation == "abrelu":
        return "abrelu", (kwargs["a"], kwargs["b"])
    if activation == "abs":
        return "abrelu", (-1.0, 1.0)
    if activation == "erf":
        return "erf", (kwargs["a"], kwargs["b"], kwargs["c"])
    if activation == "gelu":
        return "gelu", ()
    raise NFTKInputError(
        f"activation={activation!r} has no fast kernel; fast ones: "
        f"{sorted(FAST_ACTIVATIONS)}."
    )


def activation_step(activation: str, kwargs: dict) -> ActivationStep:
    """The fast step of ``activation`` with its (complete) keyword arguments.

    Example:
        >>> import numpy as np
        >>> step = activation_step("relu", {})
        >>> q = np.array([2.0])
        >>> nngp, dot, gap = step.fn(q, q, q, np.zeros(1))
        >>> float(nngp[0]), float(dot[0]), float(gap[0])
        (1.0, 0.5, 0.0)
    """
    family, params = _family(activation, kwargs)
    return {"abrelu": _abrelu, "erf": _erf, "gelu": _gelu}[family](*params)


def activation_parameters(
    activation: str, kwargs: dict
) -> tuple[str, tuple[float, ...]]:
    r"""The step's constants for a compiled kernel: ``('abrelu', (c, f))`` with
    :math:`c = (a^2 + b^2)/2`, :math:`f = (a - b)^2 / 2\pi`; ``('linear', (c,))``
    when :math:`a = b`; ``('erf', (b^2, a^2, c^2))``; ``('gelu', ())``.

    Example:
        >>> activation_parameters("relu", {})
        ('abrelu', (0.5, 0.15915494309189535))
    """
    family, params = _family(activation, kwargs)
    if family == "abrelu":
        a, b = params
        c, f = (a * a + b * b) / 2, (a - b) ** 2 / (2 * math.pi)
        return ("linear", (c,)) if f == 0.0 else ("abrelu", (c, f))
    if family == "erf":
        a, b, c = params
        return "erf", (b * b, a * a, c * c)
    return family, params
