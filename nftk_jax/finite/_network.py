r"""The finite-width NFT-K network, its empirical kernels, and its training.

The network is the one :class:`~nftk_jax.MLP` describes, built by
``spec.network(out_dim=d)``: a shared trunk of ``L`` hidden layers with a readout
``V_l`` after every hidden layer. Class ``c`` reads

.. math::  f_c(x) = \sum_{l=1}^{L} \sqrt{\Omega_{cl}}\, f_{l,c}(x),

so that its neural tangent kernel tends to :math:`\sum_l \Omega_{cl}\Theta_l` as the
width grows (see ``docs/finite_width.md`` for the derivation). Training minimises

.. math::  J(\theta) = \frac{1}{n}\sum_{i=1}^{n} \lVert f(x_i;\theta) - y_i\rVert_2^2
           + \lambda_{\mathrm{wd}} \lVert \theta - \theta_0 \rVert_2^2 ,

whose linearised gradient flow converges to kernel ridge regression with ridge
:math:`\rho = n \lambda_{\mathrm{wd}}` (:func:`weight_decay_to_ridge`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ..core import (
    NFTKInputError,
    NFTKTypeError,
    check_positive_float,
    check_positive_int,
    progress_bar,
    resolve_dtype,
)
from ..linalg import check_omega, encode_targets
from ..model import MLP, RNN, check_spec_inputs, input_features, nt
from ._rnn_network import rnn_heads, rnn_init

__all__ = [
    "INITS",
    "OPTIMIZERS",
    "FiniteNetwork",
    "History",
    "TrainResult",
    "PaperHistory",
    "PaperModeResult",
    "nftk_network",
    "combined_empirical_ntk",
    "head_empirical_ntks",
    "ridge_to_weight_decay",
    "weight_decay_to_ridge",
    "train_network",
    "train_paper_mode",
]

#: Initialisations of the finite network.
INITS = ("ntk", "xavier_normal")
#: Optimiser names accepted by :func:`train_network` and :func:`train_paper_mode`.
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
#: neural-tangents' structured-derivatives empirical NTK: fastest for MLPs.
_STRUCTURED_DERIVATIVES = 3


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------
def _check_spec(spec: Any) -> MLP | RNN:
    if not isinstance(spec, (MLP, RNN)):
        raise NFTKTypeError(
            f"spec must be an nftk_jax.MLP or RNN, got {type(spec).__name__}."
        )
    return spec


def _inputs(spec: Any, x: Any, name: str, like: Any = None) -> np.ndarray:
    """Validated inputs: a design matrix, or packed sequences for an RNN."""
    return check_spec_inputs(spec, x, name, like=like)


def _check_init(init: Any) -> str:
    if init not in INITS:
        raise NFTKInputError(f"init={init!r}; choose one of {INITS}.")
    return init


def _check_omega(
    omega: Any, depth: int, *, name: str = "omega", n_classes: int | None = None
) -> np.ndarray:
    """``omega`` as a float64 ``(d, L)`` array: finite, non-negative (zero rows are
    allowed: that class's output is then identically zero)."""
    return check_omega(
        omega, n_classes=n_classes, depth=depth, name=name, allow_zero_rows=True
    )


def _targets(y: Any, n: int, n_classes: int | None) -> np.ndarray:
    """Integer labels ``(n,)`` -> one-hot ``(n, d)`` (not centred: the network's
    outputs start at the one-hot scale); real ``(n, d)`` targets as given."""
    return encode_targets(y, n, n_classes=n_classes, center=False)[0]


# --------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------
class FiniteNetwork(NamedTuple):
    r"""The finite NFT-K network: initialisation, combined output and head outputs.

    Attributes:
        init_fn: ``init_fn(key, input_dim) -> params``, a pytree of arrays
            (the neural-tangents ``stax`` parameters of the multi-head network).
        apply_fn: ``apply_fn(params, x, omega) -> (n, d)``:
            :math:`f_c(x) = \sum_l \sqrt{\Omega_{cl}} f_{l,c}(x)` for ``x`` ``(n, m)``
            and ``omega`` ``(d, L)``.
        heads_fn: ``heads_fn(params, x) -> (L, n, d)``: every readout's output
            :math:`f_{l,c}(x)`.
    """

    init_fn: Callable
    apply_fn: Callable
    heads_fn: Callable


def _network_spec(spec: MLP, init: str) -> MLP:
    """The spec whose ``stax`` network is used: Xavier needs plain ``x @ W + b``."""
    if init == "xavier_normal" and spec.parameterization != "standard":
        return dataclasses.replace(spec, parameterization="standard")
    return spec


def _xavier_normal(params: Any, key: jax.Array) -> Any:
    """Every weight ``W`` (fan_in, fan_out) ~ N(0, 2 / (fan_in + fan_out)); biases 0.

    In a ``stax`` Dense layer the parameters are the tuple ``(W, b)``, so a leaf's
    last path index says which it is (0: weight, 1: bias).
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = []
    for (path, leaf), k in zip(leaves, keys, strict=False):
        if path[-1].idx == 0:
            fan_in, fan_out = leaf.shape
            std = math.sqrt(2.0 / (fan_in + fan_out))
            out.append(std * jax.random.normal(k, leaf.shape, leaf.dtype))
        else:
            out.append(jnp.zeros_like(leaf))
    return jax.tree_util.tree_unflatten(treedef, out)


def _leaf_dtype(params: Any) -> Any:
    return jax.tree_util.tree_leaves(params)[0].dtype


def _combine(weights: jax.Array, heads: jax.Array) -> jax.Array:
    """``(d, L)`` head weights and ``(L, n, d)`` heads -> ``(n, d)``."""
    return jnp.einsum("cl,lnc->nc", weights, heads)


@functools.lru_cache(maxsize=64)
def _heads_apply(spec: MLP, init: str) -> Callable:
    """``heads(params, x) -> (L, n, d)``; the readout width comes from ``params``."""
    if isinstance(spec, RNN):
        return rnn_heads(spec)
    raw = _network_spec(spec, init).network(1).apply_fn

    def heads(params, x):
        return raw(params, jnp.asarray(x, _leaf_dtype(params)))

    return heads


def nftk_network(
    spec: MLP, n_classes: int, *, init: str = "ntk", dtype: Any = None
) -> FiniteNetwork:
    r"""The finite network of ``spec`` with ``n_classes`` outputs per readout.

    Class ``c`` outputs :math:`f_c(x) = \sum_l \sqrt{\Omega_{cl}}\, f_{l,c}(x)` with
    :math:`f_l = V_l h_l` the readout after hidden layer ``l``, so its NTK tends to
    :math:`\sum_l \Omega_{cl}\Theta_l` as ``spec.width`` grows.

    Args:
        spec: the architecture; ``spec.width`` is the hidden width.
        n_classes: outputs ``d`` of every readout.
        init: ``'ntk'``: neural-tangents' initialisation of ``spec`` (standard
            normal weights, scaled in the forward pass under the default NTK
            parameterisation), the one whose kernel is ``layerwise_kernels(spec)``.
            ``'xavier_normal'``: the paper's set-up, standard parameterisation
            (``x @ W + b``) with ``W ~ N(0, 2 / (fan_in + fan_out))`` and zero biases.
        dtype: parameter dtype, ``float32`` or ``float64``; ``None``: float64 when
            x64 is enabled, else float32. Inputs are cast to it.

    Returns:
        A :class:`FiniteNetwork` ``(init_fn, apply_fn, heads_fn)``.

    Example:
        >>> import jax, numpy as np
        >>> from nftk_jax import MLP, nftk_network
        >>> net = nftk_network(MLP(depth=3, width=64), 2, dtype=np.float32)
        >>> params = net.init_fn(jax.random.key(0), 5)
        >>> net.apply_fn(params, np.ones((4, 5)), np.ones((2, 3))).shape
        (4, 2)
    """
    _check_spec(spec)
    d = check_positive_int(n_classes, "n_classes")
    init = _check_init(init)
    dt = resolve_dtype(dtype)
    if isinstance(spec, RNN) and init != "ntk":
        raise NFTKInputError(f"init={init!r}: an RNN spec has only init='ntk'.")
    raw_init = None if isinstance(spec, RNN) else _network_spec(spec, init)
    raw_init = raw_init and raw_init.network(d).init_fn
    heads = _heads_apply(spec, init)
    depth = spec.depth

    def init_fn(key: jax.Array, input_dim: int) -> Any:
        if raw_init is None:
            return rnn_init(spec, key, input_dim, d, dt)
        m = check_positive_int(input_dim, "input_dim")
        k_init, k_xavier = jax.random.split(key)
        _, params = raw_init(k_init, (-1, m))
        if init == "xavier_normal":
            params = _xavier_normal(params, k_xavier)
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), params)

    def apply_fn(params: Any, x: jax.Array, omega: jax.Array) -> jax.Array:
        if jnp.shape(omega) != (d, depth):
            raise NFTKInputError(
                f"omega must have shape (d, L) = ({d}, {depth}), got "
                f"{jnp.shape(omega)}."
            )
        w = jnp.sqrt(jnp.asarray(omega, _leaf_dtype(params)))
        return _combine(w, heads(params, x))

    return FiniteNetwork(init_fn, apply_fn, heads)


def _readout_weights(params: Any, depth: int) -> list:
    """The readout matrices ``[V_1, ..., V_L]`` (each ``(width, d)``) of ``params``."""
    out, block = [], params
    for _ in range(depth - 1):
        out.append(block[3][0][0])
        block = block[3][1]
    out.append(block[2][0])
    return out


# --------------------------------------------------------------------------------------
# Empirical kernels
# --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _combined_ntk_fn(spec: MLP, init: str, implementation: int) -> Callable:
    heads = _heads_apply(spec, init)

    def f(params, x, weights):
        return _combine(weights, heads(params, x))

    ntk = nt.empirical_ntk_fn(
        f,
        trace_axes=(),
        diagonal_axes=(-1,),
        vmap_axes=0,
        implementation=implementation,
    )

    @jax.jit
    def fn(x1, x2, params, weights):
        return jnp.moveaxis(ntk(x1, x2, params, weights=weights), -1, 0)

    return fn


@functools.lru_cache(maxsize=64)
def _heads_ntk_fn(spec: MLP, init: str, implementation: int) -> Callable:
    heads = _heads_apply(spec, init)

    def f(params, x):
        return jnp.moveaxis(heads(params, x), 0, 1)  # (n, L, d)

    # Trace (mean) over the d outputs, diagonal over heads: (n1, n2, L).
    ntk = nt.empirical_ntk_fn(
        f,
        trace_axes=(-1,),
        diagonal_axes=(1,),
        vmap_axes=0,
        implementation=implementation,
    )

    @jax.jit
    def fn(x1, x2, params):
        return jnp.moveaxis(ntk(x1, x2, params), -1, 0)

    return fn


def _ntk_inputs(
    params: Any, x1: Any, x2: Any, spec: Any = None
) -> tuple[jax.Array, jax.Array]:
    dt = _leaf_dtype(params)
    a1 = _inputs(spec, x1, "x1")
    a2 = a1 if x2 is None else _inputs(spec, x2, "x2", like=a1)
    return jnp.asarray(a1, dt), jnp.asarray(a2, dt)


def combined_empirical_ntk(
    spec: MLP,
    params: Any,
    x1: Any,
    x2: Any,
    omega: Any,
    *,
    init: str = "ntk",
    implementation: int = _STRUCTURED_DERIVATIVES,
) -> jax.Array:
    r"""Empirical NTK of every class output of the finite network, ``(d, n1, n2)``.

    .. math::  \hat K_c(x, x') = \langle \nabla_\theta f_c(x), \nabla_\theta f_c(x')
               \rangle,\qquad f_c = \sum_l \sqrt{\Omega_{cl}} f_{l,c},

    with the gradient over every trunk and readout parameter. At initialisation it
    tends to :math:`\sum_l \Omega_{cl}\Theta_l(x, x')` as the width grows, with
    fluctuations of order ``width ** -0.5``. Cross-class entries are not returned
    (they vanish in the same limit).

    Args:
        spec: the architecture (the width is read from ``params``).
        params: parameters from :class:`FiniteNetwork` ``init_fn`` (or trained ones).
        x1: ``(n1, m)`` inputs.
        x2: ``(n2, m)`` inputs, or ``None`` for ``x1``.
        omega: ``(d, L)`` non-negative layer weights.
        init: the initialisation ``params`` came from (it fixes the forward pass).
        implementation: neural-tangents ``NtkImplementation`` (default 3,
            structured derivatives; 1 is Jacobian contraction; 0 compiles all
            three and keeps the one with the fewest FLOPs, docs/compat.md).

    Returns:
        ``(d, n1, n2)``.
    """
    _check_spec(spec)
    init = _check_init(init)
    om = _check_omega(omega, spec.depth)
    a1, a2 = _ntk_inputs(params, x1, x2, spec)
    weights = jnp.sqrt(jnp.asarray(om, _leaf_dtype(params)))
    return _combined_ntk_fn(spec, init, int(implementation))(a1, a2, params, weights)


def head_empirical_ntks(
    spec: MLP,
    params: Any,
    x1: Any,
    x2: Any = None,
    *,
    init: str = "ntk",
    implementation: int = _STRUCTURED_DERIVATIVES,
) -> jax.Array:
    r"""Empirical NTK of every readout, traced over its outputs: ``(L, n1, n2)``.

    .. math::  \hat\Theta_l(x, x') = \frac{1}{d}\sum_{c=1}^{d}
               \langle \nabla_\theta f_{l,c}(x), \nabla_\theta f_{l,c}(x') \rangle ,

    the finite-width counterpart of ``layerwise_kernels(spec, x1, x2)`` (the trace
    over outputs is neural-tangents' ``trace_axes``, which averages).

    Args:
        spec: the architecture.
        params: network parameters (any width, any readout size ``d``).
        x1: ``(n1, m)`` inputs.
        x2: ``(n2, m)`` inputs, or ``None`` for ``x1``.
        init: the initialisation ``params`` came from.
        implementation: neural-tangents ``NtkImplementation`` (default 3; 0
            picks the cheapest by FLOPs, see :func:`combined_empirical_ntk`).

    Returns:
        ``(L, n1, n2)``.
    """
    _check_spec(spec)
    init = _check_init(init)
    a1, a2 = _ntk_inputs(params, x1, x2, spec)
    return _heads_ntk_fn(spec, init, int(implementation))(a1, a2, params)


# --------------------------------------------------------------------------------------
# Ridge <-> weight decay
# --------------------------------------------------------------------------------------
def ridge_to_weight_decay(ridge: float, n: int) -> float:
    r"""Weight decay :math:`\lambda_{\mathrm{wd}} = \rho / n` matching a KRR ridge.

    For the objective
    :math:`\frac1n\sum_i\lVert f(x_i)-y_i\rVert^2 + \lambda_{\mathrm{wd}}
    \lVert\theta-\theta_0\rVert^2`, linearised gradient flow converges to
    :math:`f_0 + K(x, X)(K(X, X) + n\lambda_{\mathrm{wd}} I)^{-1}(Y - f_0(X))`:
    with :math:`f = f_0 + J\delta` the stationarity condition
    :math:`\frac2n J^\top(J\delta - r) + 2\lambda_{\mathrm{wd}}\delta = 0`
    (:math:`r = Y - f_0(X)`) gives
    :math:`\delta = J^\top(JJ^\top + n\lambda_{\mathrm{wd}} I)^{-1} r`, and
    :math:`JJ^\top = K(X, X)`.

    Args:
        ridge: the KRR ridge :math:`\rho \ge 0`.
        n: number of training examples.

    Returns:
        :math:`\rho / n`.
    """
    rho = check_positive_float(ridge, "ridge", allow_zero=True)
    return rho / check_positive_int(n, "n")


def weight_decay_to_ridge(weight_decay: float, n: int) -> float:
    r"""KRR ridge :math:`\rho = n \lambda_{\mathrm{wd}}` of a weight decay (inverse of
    :func:`ridge_to_weight_decay`)."""
    wd = check_positive_float(weight_decay, "weight_decay", allow_zero=True)
    return wd * check_positive_int(n, "n")


def _resolve_weight_decay(ridge: Any, weight_decay: Any, n: int) -> float:
    if ridge is not None and weight_decay is not None:
        raise NFTKInputError(
            "pass either ridge or weight_decay, not both (ridge = n * weight_decay)."
        )
    if ridge is not None:
        return ridge_to_weight_decay(ridge, n)
    if weight_decay is not None:
        return check_positive_float(weight_decay, "weight_decay", allow_zero=True)
    return 0.0


# --------------------------------------------------------------------------------------
# Training machinery
# --------------------------------------------------------------------------------------
def _make_optimizer(
    optimizer: Any, learning_rate: Any, momentum: float, name: str = "optimizer"
) -> optax.GradientTransformation:
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise NFTKInputError(
            f"{name}={optimizer!r}; choose one of {OPTIMIZERS} or pass an "
            "optax.GradientTransformation."
        )
    lr = check_positive_float(learning_rate, "learning_rate", allow_zero=True)
    mom = check_positive_float(momentum, "momentum", allow_zero=True)
    if mom >= 1:
        raise NFTKInputError(f"momentum must be in [0, 1), got {momentum!r}.")
    if optimizer == "sgd":
        return optax.sgd(lr)
    if optimizer == "momentum":
        return optax.sgd(lr, momentum=mom)
    if optimizer == "nesterov":
        return optax.sgd(lr, momentum=mom, nesterov=True)
    return optax.adam(lr)


def _check_batch(batch_size: Any, n: int) -> int | None:
    if batch_size is None:
        return None
    b = check_positive_int(batch_size, "batch_size")
    if b > n:
        raise NFTKInputError(f"batch_size={b} exceeds the {n} training examples.")
    return b


def _batch_indices(key: jax.Array, step: jax.Array, n: int, batch: int) -> jax.Array:
    """Indices of mini-batch ``step``: a fresh permutation every epoch, remainder
    dropped."""
    per_epoch = n // batch
    epoch, pos = jnp.divmod(step, per_epoch)
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    return lax.dynamic_slice_in_dim(perm, pos * batch, batch)


def _select_batch(xj, yj, heads0, key, step, batch):
    """Inputs, targets and initial head outputs of mini-batch ``step`` (all of them
    when ``batch`` is ``None``)."""
    if batch is None:
        return xj, yj, heads0
    idx = _batch_indices(key, step, xj.shape[0], batch)
    return xj[idx], yj[idx], None if heads0 is None else heads0[:, idx]


def _sq_dist(a: Any, b: Any) -> jax.Array:
    return sum(
        jnp.sum(jnp.square(u - v))
        for u, v in zip(
            jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True
        )
    )


def _run(
    step_fn: Callable,
    state: Any,
    args: tuple,
    *,
    steps: int,
    log_every: int,
    progress: bool | str = False,
):
    """Run ``steps`` of ``step_fn`` in jitted blocks of ``log_every`` (a ``lax.scan``).

    ``progress`` shows a bar over the steps (a string labels it); each block is
    then waited for, so the bar shows real progress.

    Returns ``(state, block_ends, metrics, seconds, compile_seconds)`` where
    ``metrics`` maps a name to a list of per-block ``(length,)`` arrays.
    """

    def block(state, start, args, length):
        def body(st, s):
            return step_fn(st, s, *args)

        return lax.scan(body, state, start + jnp.arange(length, dtype=jnp.int32))

    jitted = jax.jit(block, static_argnames="length")
    lengths = [log_every] * (steps // log_every)
    if steps % log_every:
        lengths.append(steps % log_every)
    t0 = time.perf_counter()
    compiled = {
        ln: jitted.lower(state, np.int32(0), args, length=ln).compile()
        for ln in sorted(set(lengths))
    }
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs, start = [], 0
    bar = progress_bar(steps, "training", enabled=progress, unit="step", leave=False)
    for ln in lengths:
        state, metrics = compiled[ln](state, np.int32(start), args)
        start += ln
        outs.append((start, metrics))
        if bar is not None:
            jax.block_until_ready(state)
            bar.update(ln)
    if bar is not None:
        bar.close()
    jax.block_until_ready(state)
    seconds = time.perf_counter() - t0
    ends = np.array([e for e, _ in outs], dtype=np.int64)
    names = outs[0][1].keys() if outs else ()
    metrics = {k: [np.asarray(m[k]) for _, m in outs] for k in names}
    return state, ends, metrics, seconds, compile_seconds


class History(NamedTuple):
    """Training curve of :func:`train_network`, one record per ``log_every`` steps.

    Attributes:
        step: ``(k,)`` int64, steps completed at each record.
        loss: ``(k,)`` data term :math:`\\frac1B\\sum\\lVert f - y\\rVert^2`
            averaged over the block's steps (evaluated before each update).
        penalty: ``(k,)`` :math:`\\lambda_{wd}\\lVert\\theta-\\theta_0\\rVert^2`
            after the block's last update.
    """

    step: np.ndarray  # (k,) int64
    loss: np.ndarray  # (k,) float
    penalty: np.ndarray  # (k,) float


class TrainResult(NamedTuple):
    """Result of :func:`train_network`.

    Attributes:
        params: trained parameters :math:`\\theta` (pytree).
        params0: initial parameters :math:`\\theta_0` (pytree).
        omega: ``(d, L)`` the fixed layer weights used.
        history: the :class:`History`.
        predict: ``predict(x) -> (m, d)``, the trained network (centred or
            linearised exactly as it was trained).
        weight_decay: :math:`\\lambda_{wd}` used.
        ridge: the matching KRR ridge :math:`n \\lambda_{wd}`.
        examples_per_second: training throughput, ``steps * batch / seconds``
            (compilation excluded).
        train_seconds: wall time of the training steps (compilation excluded).
    """

    params: Any  # pytree of (.., ..) arrays, dtype of the run
    params0: Any  # pytree, same structure
    omega: jax.Array  # (d, L)
    history: History
    predict: Callable  # (m, m_in) -> (m, d)
    weight_decay: float
    ridge: float
    examples_per_second: float
    train_seconds: float


def _model(heads: Callable, *, centered: bool, linearized: bool) -> Callable:
    """``model(params, params0, x, heads0) -> (L, n, d)`` head outputs as trained.

    ``heads0`` are the head outputs at ``params0`` on ``x`` (used when centred or
    linearised; ``None`` otherwise).
    """

    def model(params, params0, x, heads0):
        if linearized:
            delta = jax.tree_util.tree_map(jnp.subtract, params, params0)
            _, tangent = jax.jvp(lambda p: heads(p, x), (params0,), (delta,))
            return tangent if centered else heads0 + tangent
        out = heads(params, x)
        return out - heads0 if centered else out

    return model


def _make_predict(
    heads, model, params, params0, weights, needs0, spec=None
) -> Callable:
    @jax.jit
    def _predict(params, params0, weights, x):
        h0 = heads(params0, x) if needs0 else None
        return _combine(weights, model(params, params0, x, h0))

    def predict(x: Any) -> jax.Array:
        a = _inputs(spec, x, "x")
        return _predict(params, params0, weights, jnp.asarray(a, _leaf_dtype(params)))

    return predict


def _default_log_every(steps: int) -> int:
    return max(1, steps // 100)


def _train_step(model: Callable, opt, batch: int | None, wd: float) -> Callable:
    """One optimiser step on the penalised squared loss of :func:`train_network`."""

    def step_fn(state, s, xj, yj, heads0, params0, weights, k_batch):
        params, opt_state = state
        xb, yb, h0b = _select_batch(xj, yj, heads0, k_batch, s, batch)

        def objective(p):
            pred = _combine(weights, model(p, params0, xb, h0b))
            data = jnp.mean(jnp.sum(jnp.square(pred - yb), axis=-1))
            pen = wd * _sq_dist(p, params0)
            return data + pen, (data, pen)

        (_, (data, pen)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), {"loss": data, "penalty": pen}

    return step_fn


def train_network(
    spec: MLP,
    x: Any,
    y: Any,
    *,
    omega: Any,
    steps: int,
    learning_rate: float | None,
    ridge: float | None = None,
    weight_decay: float | None = None,
    batch_size: int | None = None,
    optimizer: str | optax.GradientTransformation = "sgd",
    momentum: float = 0.9,
    centered: bool = False,
    linearized: bool = False,
    init: str = "ntk",
    seed: int = 0,
    params0: Any = None,
    dtype: Any = None,
    log_every: int | None = None,
    progress: bool | str = False,
) -> TrainResult:
    r"""Train the finite network for a fixed :math:`\Omega` with optax.

    Minimises, by full-batch or mini-batch steps,

    .. math::  J(\theta) = \frac{1}{n}\sum_{i=1}^n \lVert f(x_i;\theta)-y_i\rVert_2^2
               + \lambda_{wd} \lVert\theta-\theta_0\rVert_2^2 ,

    the mean over examples of the squared error summed over the ``d`` outputs. In the
    infinite-width limit, with ``centered=True`` and small steps, the trained network
    converges to the kernel ridge regression predictor of Theorem 1,
    :math:`f_c(x) = K_c(x, X)(K_c(X, X) + \rho I)^{-1} Y_c` with
    :math:`K_c = \sum_l\Omega_{cl}\Theta_l` and :math:`\rho = n\lambda_{wd}`.

    Args:
        spec: the architecture; ``spec.width`` is the hidden width.
        x: ``(n, m)`` training inputs.
        y: ``(n,)`` integer labels (one-hot encoded to ``d = omega.shape[0]``
            columns) or ``(n, d)`` real targets.
        omega: ``(d, L)`` non-negative layer weights, fixed during training.
        steps: number of optimiser steps (>= 1).
        learning_rate: step size of the named optimiser (ignored, and may be
            ``None``, when ``optimizer`` is an ``optax.GradientTransformation``).
        ridge: KRR ridge :math:`\rho`; sets ``weight_decay = ridge / n``.
        weight_decay: :math:`\lambda_{wd}` directly. Pass at most one of ``ridge``
            and ``weight_decay``; neither means 0.
        batch_size: mini-batch size; ``None`` (default): full batch. Mini-batches
            walk a fresh permutation every epoch, dropping the remainder.
        optimizer: ``'sgd'`` (default), ``'momentum'``, ``'nesterov'``, ``'adam'`` or
            an ``optax.GradientTransformation``.
        momentum: momentum of ``'momentum'`` / ``'nesterov'`` (default 0.9).
        centered: train :math:`f(x;\theta) - f(x;\theta_0)` (default ``False``); the
            output starts at 0, as Theorem 1 assumes.
        linearized: train the linearisation
            :math:`f(x;\theta_0) + J_0(x)(\theta-\theta_0)` (default ``False``), whose
            minimiser is exactly KRR with the *empirical* NTK at :math:`\theta_0`.
        init: ``'ntk'`` (default) or ``'xavier_normal'`` (see :func:`nftk_network`).
        seed: seeds the initialisation and the mini-batch order (default 0).
        params0: start from these parameters instead of a fresh initialisation.
        dtype: ``float32`` / ``float64``; ``None``: float64 when x64 is enabled.
        log_every: steps per history record; ``None``: ``max(1, steps // 100)``.
        progress: a progress bar over the steps (a string labels it).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: on a bad argument, naming it (negative or wrongly shaped
            ``omega``, both ``ridge`` and ``weight_decay``, ``batch_size > n``, ...).
    """
    _check_spec(spec)
    init = _check_init(init)
    dt = resolve_dtype(dtype)
    xa = _inputs(spec, x, "x")
    n = xa.shape[0]
    om = _check_omega(omega, spec.depth)
    d = om.shape[0]
    ya = _targets(y, n, d)
    steps = check_positive_int(steps, "steps")
    log_every = _default_log_every(steps) if log_every is None else log_every
    log_every = check_positive_int(log_every, "log_every")
    batch = _check_batch(batch_size, n)
    wd = _resolve_weight_decay(ridge, weight_decay, n)
    opt = _make_optimizer(optimizer, learning_rate, momentum)

    net = nftk_network(spec, d, init=init, dtype=dt)
    key = jax.random.key(check_positive_int(seed, "seed", minimum=0))
    k_init, k_batch = jax.random.split(key)
    if params0 is None:
        params0 = net.init_fn(k_init, input_features(spec, xa))
    else:
        params0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), params0)
    heads = net.heads_fn
    model = _model(heads, centered=centered, linearized=linearized)
    needs0 = centered or linearized
    xj, yj = jnp.asarray(xa, dt), jnp.asarray(ya, dt)
    weights = jnp.sqrt(jnp.asarray(om, dt))
    heads0 = jax.jit(heads)(params0, xj) if needs0 else None

    step_fn = _train_step(model, opt, batch, wd)
    state = (params0, opt.init(params0))
    args = (xj, yj, heads0, params0, weights, k_batch)
    (params, _), ends, metrics, seconds, _ = _run(
        step_fn, state, args, steps=steps, log_every=log_every, progress=progress
    )
    history = History(
        step=ends,
        loss=np.array([m.mean() for m in metrics["loss"]]),
        penalty=np.array([m[-1] for m in metrics["penalty"]]),
    )
    examples = steps * (n if batch is None else batch)
    return TrainResult(
        params=params,
        params0=params0,
        omega=jnp.asarray(om, dt),
        history=history,
        predict=_make_predict(heads, model, params, params0, weights, needs0, spec),
        weight_decay=wd,
        ridge=wd * n,
        examples_per_second=examples / max(seconds, 1e-12),
        train_seconds=seconds,
    )


# --------------------------------------------------------------------------------------
# Paper mode: alternating theta / Omega training
# --------------------------------------------------------------------------------------
class PaperHistory(NamedTuple):
    """Training curve of :func:`train_paper_mode`, one record per ``log_every`` steps.

    Attributes:
        step: ``(k,)`` int64, steps completed at each record.
        loss: ``(k,)`` mini-batch data term averaged over the block (before each
            theta update).
        penalty: ``(k,)`` theta weight-decay term after the block.
        min_head_weight: ``(k,)`` smallest entry of the head weights
            :math:`\\sqrt{\\Omega}` over every step of the block, after projection.
        omega: ``(k, d, L)`` :math:`\\Omega` after the block.
    """

    step: np.ndarray  # (k,) int64
    loss: np.ndarray  # (k,) float
    penalty: np.ndarray  # (k,) float
    min_head_weight: np.ndarray  # (k,) float
    omega: np.ndarray  # (k, d, L) float


class PaperModeResult(NamedTuple):
    """Result of :func:`train_paper_mode`.

    Attributes:
        params: trained :math:`\\theta` (pytree).
        params0: initial :math:`\\theta_0` (pytree).
        head_weights: ``(d, L)`` the trained output coefficients (the paper's
            :math:`\\omega_l` of eq. 8), ``>= 0``.
        omega: ``(d, L)`` the kernel weights ``head_weights ** 2`` (:math:`\\Omega`
            of eq. 15 in this package's convention).
        history: the :class:`PaperHistory`.
        predict: ``predict(x) -> (m, d)``.
        examples_per_second: throughput, ``steps * batch_size / seconds``.
        train_seconds: wall time of the training steps (compilation excluded).
    """

    params: Any  # pytree
    params0: Any  # pytree
    head_weights: jax.Array  # (d, L) >= 0
    omega: jax.Array  # (d, L) >= 0
    history: PaperHistory
    predict: Callable  # (m, m_in) -> (m, d)
    examples_per_second: float
    train_seconds: float


def _paper_step(
    model, opt_theta, opt_w, batch, wd, wd_om, omega_every, project
) -> Callable:
    """One step of :func:`train_paper_mode`: theta, then (every ``omega_every``
    steps) the head weights, projected onto ``w >= 0`` when ``project``."""

    def step_fn(state, s, xj, yj, heads0, params0, k_batch):
        params, w, st_theta, st_w = state
        xb, yb, h0b = _select_batch(xj, yj, heads0, k_batch, s, batch)

        def data_term(p, w):
            pred = _combine(w, model(p, params0, xb, h0b))
            return jnp.mean(jnp.sum(jnp.square(pred - yb), axis=-1))

        def theta_objective(p):
            data = data_term(p, w)
            pen = wd * _sq_dist(p, params0)
            return data + pen, (data, pen)

        (_, (data, pen)), g = jax.value_and_grad(theta_objective, has_aux=True)(params)
        upd, st_theta = opt_theta.update(g, st_theta, params)
        params = optax.apply_updates(params, upd)

        def omega_step(args):
            w, st_w = args
            gw = jax.grad(lambda v: data_term(params, v) + wd_om * jnp.sum(v * v))(w)
            upd, st_w = opt_w.update(gw, st_w, w)
            w = optax.apply_updates(w, upd)
            if project:
                w = optax.projections.projection_non_negative(w)
            return w, st_w

        w, st_w = lax.cond(s % omega_every == 0, omega_step, lambda a: a, (w, st_w))
        metrics = {"loss": data, "penalty": pen, "min_w": jnp.min(w), "w": w}
        return (params, w, st_theta, st_w), metrics

    return step_fn


def _paper_targets(spec, y, n, omega_init, n_classes) -> tuple:
    """``(om0, d, ya)``: the starting Omega (uniform when not given) and targets."""
    if omega_init is not None:
        om0 = _check_omega(omega_init, spec.depth, name="omega_init")
        return om0, om0.shape[0], _targets(y, n, om0.shape[0])
    if n_classes is not None:
        n_classes = check_positive_int(n_classes, "n_classes")
    ya = _targets(y, n, n_classes)
    d = ya.shape[1]
    return np.full((d, spec.depth), 1.0 / spec.depth), d, ya


def train_paper_mode(
    spec: MLP,
    x: Any,
    y: Any,
    *,
    steps: int,
    omega_init: Any = None,
    n_classes: int | None = None,
    batch_size: int | None = 50,
    theta_learning_rate: float = 0.02,
    omega_learning_rate: float = 0.05,
    weight_decay: float = 1e-6,
    omega_weight_decay: float = 1e-6,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    omega_every: int = 1,
    project: bool = True,
    centered: bool = False,
    init: str = "xavier_normal",
    seed: int = 0,
    dtype: Any = None,
    log_every: int | None = None,
) -> PaperModeResult:
    r"""The paper's alternating training of :math:`\theta` and :math:`\Omega`.

    Every step takes a mini-batch :math:`B` and

    1. updates :math:`\theta` with :math:`\Omega` fixed (optimiser 1, step
       ``theta_learning_rate``) on
       :math:`\frac1{|B|}\sum_{i\in B}\lVert f(x_i)-y_i\rVert^2
       + \lambda_{wd}\lVert\theta-\theta_0\rVert^2`;
    2. every ``omega_every`` steps, updates the head weights
       :math:`w = \sqrt{\Omega}` with the new :math:`\theta` fixed (optimiser 2, step
       ``omega_learning_rate``) on the same batch's data term
       :math:`+\ \lambda_{\Omega}\lVert w\rVert^2`, then projects :math:`w` onto
       :math:`w \ge 0` (``optax.projections.projection_non_negative``; eq. 16).

    The output is :math:`f_c = \sum_l w_{cl} f_{l,c}` (the paper's eq. 8 with
    :math:`\omega_l = w_{:,l}`), whose NTK is :math:`\sum_l w_{cl}^2\Theta_l`; the
    returned ``omega`` is :math:`w^2`. Optimising :math:`w` rather than
    :math:`\Omega` keeps the gradient finite at :math:`\Omega_{cl} = 0`, where
    :math:`\sqrt{\Omega}` is not differentiable.

    Defaults are the paper's MNIST set-up (Sec. 4.2): SGD, ``theta_learning_rate``
    0.02, ``omega_learning_rate`` 0.05, mini-batch 50, Xavier-normal initialisation,
    projection onto :math:`\Omega \ge 0`. The paper's weight decay 2e-6 is the
    coefficient in the update rule (its eq. 13, :math:`\theta \leftarrow \theta -
    \eta(\nabla\mathcal L + \lambda(\theta-\theta_0))`), which is the gradient of
    :math:`\frac{\lambda}{2}\lVert\theta-\theta_0\rVert^2`; in this package's
    objective convention that is ``weight_decay = omega_weight_decay = 1e-6``.
    Use ``MLP(depth=10, width=256)`` for the paper's network.

    Args:
        spec: the architecture; ``spec.width`` is the hidden width.
        x: ``(n, m)`` training inputs.
        y: ``(n,)`` integer labels or ``(n, d)`` targets.
        steps: number of alternating steps (>= 1).
        omega_init: ``(d, L)`` initial :math:`\Omega \ge 0`; ``None``: every entry
            ``1 / L``.
        n_classes: ``d`` when ``y`` holds labels and ``omega_init`` is ``None``;
            default ``max(y) + 1``.
        batch_size: mini-batch size (default 50, the paper's); ``None``: full batch.
        theta_learning_rate: step size for :math:`\theta` (default 0.02).
        omega_learning_rate: step size for :math:`w` (default 0.05); 0 freezes
            :math:`\Omega` (then the run is :func:`train_network` with mini-batches).
        weight_decay: :math:`\lambda_{wd}` on :math:`\lVert\theta-\theta_0\rVert^2`
            (default 1e-6).
        omega_weight_decay: :math:`\lambda_\Omega` on :math:`\lVert w\rVert^2`
            (default 1e-6).
        optimizer: optimiser for both groups: ``'sgd'`` (default, the paper's),
            ``'momentum'``, ``'nesterov'`` or ``'adam'``.
        momentum: momentum for ``'momentum'`` / ``'nesterov'`` (default 0.9).
        omega_every: theta steps per :math:`\Omega` step (default 1).
        project: project onto :math:`w \ge 0` after every :math:`\Omega` step
            (default ``True``; ``False`` only for ablations).
        centered: train :math:`f(\theta) - f(\theta_0)` per head (default ``False``).
        init: ``'xavier_normal'`` (default, the paper's) or ``'ntk'``.
        seed: seeds the initialisation and the batch order (default 0).
        dtype: ``float32`` / ``float64``; ``None``: float64 when x64 is enabled.
        log_every: steps per history record; ``None``: ``max(1, steps // 100)``.

    Returns:
        A :class:`PaperModeResult`.
    """
    _check_spec(spec)
    init = _check_init(init)
    dt = resolve_dtype(dtype)
    xa = _inputs(spec, x, "x")
    n = xa.shape[0]
    om0, d, ya = _paper_targets(spec, y, n, omega_init, n_classes)
    steps = check_positive_int(steps, "steps")
    log_every = _default_log_every(steps) if log_every is None else log_every
    log_every = check_positive_int(log_every, "log_every")
    omega_every = check_positive_int(omega_every, "omega_every")
    batch = _check_batch(batch_size, n)
    wd = check_positive_float(weight_decay, "weight_decay", allow_zero=True)
    wd_om = check_positive_float(
        omega_weight_decay, "omega_weight_decay", allow_zero=True
    )
    opt_theta = _make_optimizer(optimizer, theta_learning_rate, momentum)
    opt_w = _make_optimizer(optimizer, omega_learning_rate, momentum)

    net = nftk_network(spec, d, init=init, dtype=dt)
    k_init, k_batch = jax.random.split(
        jax.random.key(check_positive_int(seed, "seed", minimum=0))
    )
    params0 = net.init_fn(k_init, input_features(spec, xa))
    heads = net.heads_fn
    model = _model(heads, centered=centered, linearized=False)
    xj, yj = jnp.asarray(xa, dt), jnp.asarray(ya, dt)
    heads0 = jax.jit(heads)(params0, xj) if centered else None
    w0 = jnp.sqrt(jnp.asarray(om0, dt))

    step_fn = _paper_step(
        model, opt_theta, opt_w, batch, wd, wd_om, omega_every, project
    )
    state = (params0, w0, opt_theta.init(params0), opt_w.init(w0))
    args = (xj, yj, heads0, params0, k_batch)
    (params, w, _, _), ends, metrics, seconds, _ = _run(
        step_fn, state, args, steps=steps, log_every=log_every
    )
    history = PaperHistory(
        step=ends,
        loss=np.array([m.mean() for m in metrics["loss"]]),
        penalty=np.array([m[-1] for m in metrics["penalty"]]),
        min_head_weight=np.array([m.min() for m in metrics["min_w"]]),
        omega=np.stack([np.square(m[-1]) for m in metrics["w"]]),
    )
    examples = steps * (n if batch is None else batch)
    return PaperModeResult(
        params=params,
        params0=params0,
        head_weights=w,
        omega=jnp.square(w),
        history=history,
        predict=_make_predict(heads, model, params, params0, w, centered, spec),
        examples_per_second=examples / max(seconds, 1e-12),
        train_seconds=seconds,
    )
