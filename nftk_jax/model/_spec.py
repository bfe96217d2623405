"""The architecture spec: one immutable description of the NFT-K MLP.

The same :class:`MLP` compiles to a neural-tangents ``stax`` network with a readout
after every hidden layer. That one network yields both the infinite-width layerwise
kernels (``kernel_fn``) and the finite network (``init_fn`` / ``apply_fn``).

The tree, for depth L::

    Dense -> phi -> FanOut(2) -> parallel(
        V_1,
        Dense -> phi -> FanOut(2) -> parallel(
            V_2,
            ... -> parallel(V_{L-1}, Dense -> phi -> V_L)))

Each readout ``V_l`` sees exactly the hidden state ``h_l`` of the shared trunk, so
its kernel is the stand-alone depth-``l`` NTK, and all L kernels come out of one pass
through the recursion.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import (
    NFTKInputError,
    NFTKTypeError,
    check_positive_float,
    check_positive_int,
)
from ._compat import stax

__all__ = ["MLP", "Network", "ACTIVATIONS"]


# name -> (stax factory, allowed keyword arguments with defaults)
# The ReLU family is positively homogeneous: ``do_stabilize`` divides the kernel by
# its largest entry inside the arc-cosine formula, whose ``nngp**2`` would otherwise
# overflow once entries pass sqrt(max float) (about 1.8e19 in float32), e.g. depth 19
# at W_std=5. It changes the kernel by round-off only.
ACTIVATIONS: dict[str, tuple[Callable, dict[str, Any]]] = {
    "relu": (functools.partial(stax.Relu, do_stabilize=True), {}),
    "leaky_relu": (
        functools.partial(stax.LeakyRelu, do_stabilize=True),
        {"alpha": 0.01},
    ),
    "abrelu": (functools.partial(stax.ABRelu, do_stabilize=True), {"a": 0.0, "b": 1.0}),
    "abs": (functools.partial(stax.Abs, do_stabilize=True), {}),
    "erf": (stax.Erf, {"a": 1.0, "b": 1.0, "c": 0.0}),
    "gelu": (stax.Gelu, {"approximate": False}),
    "sigmoid_like": (stax.Sigmoid_like, {}),
    "sin": (stax.Sin, {"a": 1.0, "b": 1.0, "c": 0.0}),
    "cos": (stax.Cos, {"a": 1.0, "b": 1.0, "c": 0.0}),
    "rbf": (stax.Rbf, {"gamma": 1.0}),
    "sign": (stax.Sign, {}),
    "exp": (stax.Exp, {"a": 1.0, "b": 1.0}),
    "gaussian": (stax.Gaussian, {"a": 1.0, "b": -1.0}),
    "monomial": (stax.Monomial, {"degree": 2}),
    "rectified_monomial": (stax.RectifiedMonomial, {"degree": 1}),
}

_PARAMETERIZATIONS = ("ntk", "standard")


class Network(NamedTuple):
    """The multi-head network of an :class:`MLP`, with flat, stacked outputs.

    Attributes:
        init_fn: ``init_fn(key, input_shape) -> (output_shapes, params)``.
        apply_fn: ``apply_fn(params, x) -> (L, n, out_dim)``: every head's output.
        kernel_fn: ``kernel_fn(x1, x2=None, get='ntk') -> (L, n1, n2)`` (a tuple of
            such arrays when ``get`` is a tuple).
        layers: the raw neural-tangents ``(init_fn, apply_fn, kernel_fn)`` triple
            whose outputs are nested ``[f_1, [f_2, ...]]``.
    """

    init_fn: Callable
    apply_fn: Callable
    kernel_fn: Callable
    layers: tuple


# Python frames one level of the nested FanOut/parallel tree costs while neural-tangents
# walks it (about 4 for init_fn and 15 for the tree's kernel_fn, measured), with a wide
# margin for jit, grad and the caller's own stack.
_FRAMES_PER_LEVEL = 40
_FRAMES_BASE = 1000


@contextlib.contextmanager
def _recursion_headroom(depth: int):
    """Raise Python's recursion limit while a depth-``depth`` tree is walked.

    neural-tangents evaluates the nested ``serial``/``parallel`` tree recursively, so
    a deep multi-head network can exceed the default limit of 1000 frames (the
    tree's own ``kernel_fn`` did so near ``depth=60``). The limit is raised only as
    far as needed and restored afterwards.
    """
    old = sys.getrecursionlimit()
    needed = _FRAMES_BASE + _FRAMES_PER_LEVEL * depth
    if needed > old:
        sys.setrecursionlimit(needed)
    try:
        yield
    finally:
        if needed > old:
            sys.setrecursionlimit(old)


def _clip_correlations(k):
    """Keep ``|nngp| <= sqrt(cov1 cov2)`` (Cauchy-Schwarz) before the next layer.

    Round-off can push an entry of two identical inputs (a diagonal entry, or a
    duplicated row) a few ulps past the bound. The arc-cosine/arcsine recursions
    then take ``sqrt`` of a negative number, which neural-tangents clamps to 0, and
    the Erf derivative ``2 / (pi sqrt(...))`` becomes ``inf``. In the chaotic regime
    (large ``W_std``) the excursion grows layer over layer. Clipping to the bound
    changes nothing else: a kernel that satisfies it is left bit-for-bit alone.
    """
    if k.cov1 is None or k.cov1.ndim != 1:
        return k  # only the flat-input, diagonal-batch layout used by this package
    cov2 = k.cov1 if k.cov2 is None else k.cov2
    # sqrt before the product, so the bound itself cannot overflow in float32.
    bound = (
        jnp.sqrt(jnp.maximum(k.cov1, 0))[:, None]
        * jnp.sqrt(jnp.maximum(cov2, 0))[None, :]
    )
    return k.replace(nngp=jnp.clip(k.nngp, -bound, bound))


def _flatten_heads(out: Any, depth: int) -> list:
    """``[f_1, [f_2, [... f_L]]]`` -> ``[f_1, ..., f_L]``."""
    flat = []
    for _ in range(depth - 1):
        flat.append(out[0])
        out = out[1]
    flat.append(out)
    return flat


def _check_activation_kwargs(
    value: Any, activation: str, allowed: dict[str, Any]
) -> dict[str, Any]:
    """``activation_kwargs`` as a dict: known keys, values of the default's type."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        kwargs = dict(value)
    elif isinstance(value, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 for p in value
    ):  # the stored form, e.g. from dataclasses.replace
        kwargs = dict(value)
    else:
        raise NFTKTypeError(
            f"activation_kwargs must be a mapping such as {{'alpha': 0.1}}, got "
            f"{value!r}."
        )
    unknown = set(kwargs) - set(allowed)
    if unknown:
        raise NFTKInputError(
            f"activation_kwargs has {sorted(unknown)}, which "
            f"{activation!r} does not take; allowed: {sorted(allowed)}."
        )
    for key, v in kwargs.items():
        default = allowed[key]
        if isinstance(default, bool):
            ok = isinstance(v, (bool, np.bool_))
        elif isinstance(default, int):
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        else:
            ok = (
                isinstance(v, (int, float, np.integer, np.floating))
                and not isinstance(v, bool)
                and math.isfinite(v)
            )
        if not ok:
            raise NFTKTypeError(
                f"activation_kwargs[{key!r}] must be a {type(default).__name__} "
                f"(finite) for {activation!r}, got {v!r}."
            )
    return kwargs


def check_size_and_activation(spec, known, problem: str, choices: list) -> None:
    """The checks a spec starts with: ``depth`` and ``width`` >= 1 and an activation
    in ``known`` (else the error says ``problem`` and lists ``choices``)."""
    check_positive_int(spec.depth, "depth")
    check_positive_int(spec.width, "width")
    if spec.activation not in known:
        raise NFTKInputError(
            f"activation={spec.activation!r} {problem}; choose one of {choices}."
        )


@dataclasses.dataclass(frozen=True)
class MLP:
    """An MLP with a readout after every hidden layer (the NFT-K architecture).

    ``g_1 = W_1 x + b_1``, ``h_l = phi(g_l)``, ``g_l = W_l h_{l-1} + b_l`` and
    ``f_l = V_l h_l`` for ``l = 1..depth``.

    Args:
        depth: number of hidden layers L (>= 1); one readout per hidden layer.
        width: hidden width of the finite network. The kernels do not depend on it
            under ``parameterization='ntk'``; under ``'standard'`` they scale with
            the fan-in, as in neural-tangents.
        activation: a name in :data:`ACTIVATIONS` (elementwise, closed-form kernel).
        activation_kwargs: parameters of the activation, e.g. ``{'alpha': 0.1}``
            for ``leaky_relu``; unknown keys are an error.
        W_std: standard deviation of the hidden weights (times ``1/sqrt(fan_in)``).
            Default ``sqrt(2)`` keeps ReLU activations at a fixed scale with depth.
        b_std: standard deviation of the hidden biases; ``None`` removes the biases.
        readout_W_std: standard deviation of every readout ``V_l``; the readouts
            carry no bias, as in the paper.
        parameterization: ``'ntk'`` or ``'standard'`` (see neural-tangents' Dense).

    Example:
        >>> import numpy as np
        >>> from nftk_jax import MLP
        >>> spec = MLP(depth=3, activation="erf")
        >>> x = np.ones((2, 5), np.float32)
        >>> spec.network().kernel_fn(x, None, "ntk").shape
        (3, 2, 2)
    """

    depth: int
    width: int = 512
    activation: str = "relu"
    activation_kwargs: Mapping[str, Any] | None = None
    W_std: float = math.sqrt(2.0)
    b_std: float | None = 0.1
    readout_W_std: float = 1.0
    parameterization: str = "ntk"

    def __post_init__(self):
        check_size_and_activation(
            self, ACTIVATIONS, "is not supported", sorted(ACTIVATIONS)
        )
        allowed = ACTIVATIONS[self.activation][1]
        kwargs = _check_activation_kwargs(
            self.activation_kwargs, self.activation, allowed
        )
        # Store as a sorted tuple of pairs so the spec stays hashable (jit cache key).
        object.__setattr__(self, "activation_kwargs", tuple(sorted(kwargs.items())))
        check_positive_float(self.W_std, "W_std")
        if self.b_std is not None:
            check_positive_float(self.b_std, "b_std", allow_zero=True)
        check_positive_float(self.readout_W_std, "readout_W_std")
        if self.parameterization not in _PARAMETERIZATIONS:
            raise NFTKInputError(
                f"parameterization={self.parameterization!r}; choose 'ntk' or "
                "'standard'."
            )

    # -- building blocks ------------------------------------------------------------
    def _activation(self):
        factory, defaults = ACTIVATIONS[self.activation]
        kwargs = {**defaults, **dict(self.activation_kwargs)}
        return factory(**kwargs)

    def _hidden(self):
        dense = stax.Dense(
            self.width,
            W_std=self.W_std,
            b_std=self.b_std,
            parameterization=self.parameterization,
        )
        return [dense, self._activation()]

    def _readout(self, out_dim: int):
        return stax.Dense(
            out_dim,
            W_std=self.readout_W_std,
            b_std=None,
            parameterization=self.parameterization,
        )

    def stax_layers(self, out_dim: int = 1) -> tuple:
        """The raw neural-tangents multi-head network (nested outputs)."""
        check_positive_int(out_dim, "out_dim")
        block = stax.serial(*self._hidden(), self._readout(out_dim))
        for _ in range(self.depth - 1):
            block = stax.serial(
                *self._hidden(),
                stax.FanOut(2),
                stax.parallel(self._readout(out_dim), block),
            )
        return block

    def single_depth(self, depth: int, out_dim: int = 1) -> tuple:
        """The plain depth-``depth`` MLP with one readout (a stand-alone head)."""
        check_positive_int(depth, "depth")
        layers = []
        for _ in range(depth):
            layers += self._hidden()
        return stax.serial(*layers, self._readout(out_dim))

    def _layerwise_kernel_fn(self) -> Callable:
        """``kernel_fn(x1, x2=None, get='ntk')`` of the multi-head tree, as a scan.

        It evaluates exactly the layers of :meth:`stax_layers` (FanOut only copies
        the kernel, so head ``l`` is the readout applied to the kernel after ``l``
        hidden layers), but walks them as ``lax.scan`` over the identical hidden
        layers ``2..L`` instead of through the nested tree. neural-tangents re-infers
        the shapes of a whole sub-tree at every level of the nesting, so tracing the
        tree costs O(L^2), and XLA's compile time of the unrolled graph also grows
        quadratically (minutes at ``depth=100``); the scan traces and compiles one
        layer, whatever the depth.
        """
        first = stax.serial(*self._hidden())[2]
        hidden = stax.serial(*self._hidden())[2]
        readout = self._readout(1)[2]
        depth = self.depth

        def kernel_fn(x1, x2=None, get="ntk", **kwargs):
            gets = (get,) if isinstance(get, str) else tuple(get)
            if not gets or any(g not in ("nngp", "ntk") for g in gets):
                raise NFTKInputError(
                    f"get={get!r}; use 'ntk', 'nngp' or a tuple of them."
                )

            def head(k):
                out = readout(k)
                return tuple(getattr(out, g) for g in gets)

            def step(k, _):
                k = hidden(_clip_correlations(k))
                return k, head(k)

            k = first(x1, x2, None, **kwargs)  # the full Kernel after layer 1
            heads = tuple(h[None] for h in head(k))  # (1, n1, n2) each
            if depth > 1:
                _, rest = jax.lax.scan(step, k, None, length=depth - 1)
                heads = tuple(
                    jnp.concatenate([h, r]) for h, r in zip(heads, rest, strict=True)
                )
            return heads[0] if isinstance(get, str) else heads

        return kernel_fn

    def network(self, out_dim: int = 1) -> Network:
        """The multi-head network with flat outputs stacked over layers.

        Args:
            out_dim: outputs per readout (d classes). Kernels do not depend on it.
        """
        layers = self.stax_layers(out_dim)
        raw_init, raw_apply, _ = layers
        depth = self.depth

        def init_fn(key, input_shape):
            with _recursion_headroom(depth):
                return raw_init(key, input_shape)

        def apply_fn(params, x, **kwargs):
            with _recursion_headroom(depth):
                out = raw_apply(params, x, **kwargs)
            return jnp.stack(_flatten_heads(out, depth))

        kernel_fn = self._layerwise_kernel_fn()

        return Network(init_fn, apply_fn, kernel_fn, layers)
