"""Layerwise kernels: every depth from one recursion, tiled, streamed and sharded.

``layerwise_kernels`` evaluates the multi-head network's ``kernel_fn`` (see
:mod:`nftk_jax.model._spec`), so the L kernels share one pass through the recursion.
Large problems are cut into tiles of ``block_size`` rows and columns; the rows of a
tile are sharded over every local device with ``jax.shard_map`` (each device gets
its own rows and all of the tile's columns; no communication is needed). The last
tile is padded by repeating a real row, so any ``n1``, ``n2`` work and only one
tile shape is ever compiled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..core import (
    NFTKInputError,
    NFTKTypeError,
    aligned_empty,
    check_inputs,
    check_positive_int,
    progress_bar,
    resolve_dtype,
)
from ..model import MLP, RNN, as_packed, packed_shape
from ._fast import diag_layers, fast_heads, resolve_engine, row_keys
from ._fast_cpu import cpu_heads, cpu_kernel_available, cpu_products
from ._rntk import rntk_block_size, rntk_tile_fn, square_tile_edge

__all__ = [
    "layerwise_kernels",
    "kernel_tiles",
    "layerwise_matvec",
    "KernelTile",
    "choose_block_size",
    "DEFAULT_MEMORY_BUDGET",
]

#: Default device-memory budget for one tile's working set, in bytes (1 GiB).
DEFAULT_MEMORY_BUDGET = 1 << 30
_GETS = ("nngp", "ntk")
# Working arrays per kernel entry besides the outputs: nt keeps a handful of
# (b1, b2) intermediates alive per layer step (cov, nngp, ntk, derivative terms).
_INTERMEDIATES_PER_ENTRY = 8
#: Kernel entries (rows x columns x gets) the fast engine takes through all L
#: layers at once: a cache-sized block (see benchmarks/bench_kernels.py).
FAST_CHUNK_ENTRIES = 1 << 15


class KernelTile(NamedTuple):
    """One streamed tile of the layerwise kernels.

    Attributes:
        rows: slice of ``x1`` rows this tile covers.
        cols: slice of ``x2`` rows this tile covers.
        values: ``(L, len(rows), len(cols))`` (or ``(G, L, ...)`` for a tuple
            ``get``), on device.
    """

    rows: slice
    cols: slice
    values: jax.Array


def _normalise_get(get: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    single = isinstance(get, str)
    gets = (get,) if single else tuple(get)
    if not gets or any(g not in _GETS for g in gets):
        raise NFTKInputError(f"get={get!r}; use 'ntk', 'nngp' or a tuple of them.")
    return gets, single


def choose_block_size(
    depth: int,
    *,
    n_get: int = 1,
    dtype: Any = np.float32,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    n_devices: int = 1,
    intermediates: int = _INTERMEDIATES_PER_ENTRY,
) -> int:
    """Largest square tile edge whose working set fits ``memory_budget`` per device.

    A ``b x b`` tile holds ``n_get * L`` outputs plus ``intermediates`` arrays per
    entry (XLA's working arrays; the compiled CPU kernel keeps only the Gram).
    """
    itemsize = np.dtype(dtype).itemsize
    per_entry = itemsize * (n_get * depth + intermediates)
    return square_tile_edge(
        per_entry, depth=depth, memory_budget=memory_budget, n_devices=n_devices
    )


def _fast_local(spec: MLP, gets: tuple[str, ...], chunk_rows: int | None):
    """``(x1, x2, sq1, sq2, key1, key2) -> (G, L, b1, b2)`` of the fast engine.

    The Gram GEMM runs on the whole tile; the elementwise recursion then runs all
    L layers on ``chunk_rows`` rows at a time (a cache-sized block), writing each
    block's outputs in place.
    """

    def local(x1, x2, sq1, sq2, key1, key2):
        m = x1.shape[1]
        # the angle-0 recursion of the rows and columns, once per tile
        d1, d2 = diag_layers(spec, sq1, m), diag_layers(spec, sq2, m)

        def heads(gram, sq1, key1, d1):
            same = key1[:, None] == key2[None, :]
            return fast_heads(
                spec, gram, sq1, sq2, m, gets=gets, same=same, diags=(d1, d2)
            )

        gram = x1 @ x2.T
        b1 = x1.shape[0]
        rows = b1 if chunk_rows is None else _divisor_at_most(b1, chunk_rows)
        if rows >= b1:
            return heads(gram, sq1, key1, d1)
        n_chunks = b1 // rows

        def body(i, out):
            r0 = i * rows

            def cut(a, axis=0):
                return jax.lax.dynamic_slice_in_dim(a, r0, rows, axis)

            d1c = (cut(d1[0], 1), cut(d1[1], 1))
            tile = heads(cut(gram), cut(sq1), cut(key1), d1c)
            return jax.lax.dynamic_update_slice_in_dim(out, tile, r0, 2)

        out = jnp.zeros((len(gets), spec.depth, b1, x2.shape[0]), gram.dtype)
        return jax.lax.fori_loop(0, n_chunks, body, out)

    return local


@functools.lru_cache(maxsize=64)
def _cpu_tile_fn(spec: MLP, gets: tuple[str, ...]):
    """``(x1, x2, sq1, sq2, key1, key2) -> (G, L, b1, b2)`` numpy, on the host.

    The Gram GEMM and the angle-0 recursion of the rows and columns run as one
    XLA program; the elementwise recursion runs in the compiled CPU kernel
    (:mod:`._fast_cpu`).
    """

    @functools.partial(jax.jit, static_argnames="symmetric")
    def prologue(x1, x2, sq1, sq2, symmetric):
        m = x1.shape[1]
        diags = diag_layers(spec, sq1, m), diag_layers(spec, sq2, m)
        return _gram_fn(x1, x2, symmetric), *diags

    def fn(x1, x2, sq1, sq2, key1, key2, *, symmetric=False):
        gram, d1, d2 = jax.device_get(prologue(x1, x2, sq1, sq2, symmetric))
        m = x1.shape[1]
        out, finite = cpu_heads(
            spec, gram, sq1, sq2, key1, key2, (d1, d2), m, gets=gets
        )
        if not finite:
            _not_finite(spec, out.dtype)
        return out

    return fn


def _on_cpus(devices: tuple | None) -> bool:
    devs = jax.local_devices() if devices is None else devices
    return all(d.platform == "cpu" for d in devs)


def _balanced(n: int, block: int) -> int:
    """The smallest block that covers ``n`` in as many blocks as ``block`` does."""
    return -(-n // -(-n // block))


def _divisor_at_most(n: int, k: int) -> int:
    """The largest divisor of ``n`` not above ``max(k, 1)``."""
    for d in range(max(1, min(k, n)), 0, -1):
        if n % d == 0:
            return d
    return 1  # pragma: no cover - d = 1 always divides


@functools.lru_cache(maxsize=64)
def _tile_fn(
    spec: MLP | RNN,
    gets: tuple[str, ...],
    devices: tuple | None,
    features: int = 0,
    engine: str = "stax",
    chunk_rows: int | None = None,
):
    """Jitted ``(x1_block, x2_block[, sq1, sq2, key1, key2]) -> (G, L, b1, b2)``.

    Sharded over rows. The fast engine also takes the blocks' squared row norms
    and duplicate keys (see :func:`~nftk_jax.kernels._fast.row_keys`). For an
    :class:`RNN` the blocks are packed sequences with ``features`` per step.
    """
    row, rep = PartitionSpec("rows"), PartitionSpec()
    if isinstance(spec, RNN):
        local = rntk_tile_fn(spec, gets, features)
        specs = (row, rep)
    elif engine in ("fast", "fast_xla"):
        local = _fast_local(spec, gets, chunk_rows)
        specs = (row, rep, row, rep, row, rep)
    else:
        kernel_fn = spec.network().kernel_fn

        def local(x1, x2):
            return jnp.stack(kernel_fn(x1, x2, gets))

        specs = (row, rep)

    if devices is None:
        return jax.jit(local)
    mesh = Mesh(np.asarray(devices), ("rows",))
    sharded = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=specs,
        out_specs=PartitionSpec(None, None, "rows"),
        check_vma=False,
    )
    return jax.jit(
        sharded,
        in_shardings=tuple(NamedSharding(mesh, p) for p in specs),
        out_shardings=NamedSharding(mesh, PartitionSpec(None, None, "rows")),
    )


def _dtype_scope(dtype: np.dtype):
    """Context in which jitted kernel work really computes in ``dtype``.

    neural-tangents casts its inputs to the widest enabled float, i.e. to float64
    whenever ``jax_enable_x64`` is on, so a float32 request would silently compute
    (and return) float64. Tracing and running float32 work with x64 switched off
    keeps it in float32.
    """
    if dtype == np.float32 and jax.config.jax_enable_x64:
        return jax.enable_x64(False)
    return contextlib.nullcontext()


def _pad_rows(x: np.ndarray, size: int) -> np.ndarray:
    """Pad to ``size`` rows by repeating the last real row (a valid input)."""
    if len(x) == size:
        return x
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)])


def _resolve_devices(devices: Sequence | None | bool) -> tuple | None:
    if devices is False:
        return None
    if devices is None or devices is True:
        devices = jax.local_devices()
    devices = tuple(devices)
    if len(devices) == 0:
        raise NFTKInputError("devices is empty; pass None to use all local devices.")
    return devices if len(devices) > 1 else None


class _Plan(NamedTuple):
    x1: np.ndarray
    x2: np.ndarray
    symmetric: bool
    gets: tuple[str, ...]
    single: bool
    dtype: np.dtype
    row_block: int
    col_block: int
    fn: Any
    extra: tuple | None = None  # fast engine: (sq1, sq2, key1, key2)
    host: bool = False  # fn is the compiled CPU kernel: numpy tiles, exact symmetry


def _blocks(
    spec, n1, n2, n_get, dt, block_size, memory_budget, *, n_dev, host, symmetric
) -> tuple[int, int]:
    """``(row_block, col_block)`` of a plan: given, or the largest that fit."""
    if block_size is None:
        budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget
        check_positive_int(budget, "memory_budget")
        chooser = rntk_block_size if isinstance(spec, RNN) else choose_block_size
        kw = {"intermediates": 1} if host else {}  # the compiled kernel: gram only
        block = chooser(
            spec.depth,
            n_get=n_get,
            dtype=dt,
            memory_budget=budget,
            n_devices=n_dev,
            **kw,
        )
    else:
        block = check_positive_int(block_size, "block_size")
    # Rows are split evenly over devices: round the row block to a multiple.
    # Fewer rows than devices: the tile is padded up to one row per device.
    row_block = max(n_dev, (min(block, n1) // n_dev) * n_dev)
    col_block = min(block, n2)
    if host and block_size is None:  # equal blocks: the least padding
        row_block, col_block = _balanced(n1, row_block), _balanced(n2, col_block)
    if symmetric:
        col_block = row_block = max(row_block, n_dev)
    return row_block, col_block


def _plan(
    spec,
    x1,
    x2,
    *,
    get,
    block_size,
    memory_budget,
    dtype,
    devices,
    allow_symmetric,
    engine="auto",
) -> _Plan:
    if not isinstance(spec, (MLP, RNN)):
        raise NFTKTypeError(
            f"spec must be an nftk_jax.MLP or RNN, got {type(spec).__name__}."
        )
    if isinstance(spec, RNN):
        if engine not in ("auto", "stax"):
            raise NFTKInputError(
                f"engine={engine!r} has no fast path for an RNN; use engine='auto'."
            )
        engine = "stax"  # the recurrent recursion has one engine (kernels/_rntk.py)
    else:
        engine = resolve_engine(spec, engine)
    gets, single = _normalise_get(get)
    dt = resolve_dtype(dtype)
    recurrent = isinstance(spec, RNN)
    check = _check_sequences if recurrent else check_inputs
    a1 = check(x1, "x1").astype(dt, copy=False)
    features = packed_shape(a1)[2] if recurrent else a1.shape[1]
    symmetric = x2 is None and allow_symmetric
    a2 = a1 if x2 is None else check(x2, "x2", feature_dim=features)
    a2 = a2.astype(dt, copy=False)
    devs = _resolve_devices(devices)
    n_dev = 1 if devs is None else len(devs)
    host = engine == "fast" and _on_cpus(devs) and cpu_kernel_available(spec)
    row_block, col_block = _blocks(
        spec,
        len(a1),
        len(a2),
        len(gets),
        dt,
        block_size,
        memory_budget,
        n_dev=n_dev,
        host=host,
        symmetric=symmetric,
    )
    extra, chunk = None, None
    if engine in ("fast", "fast_xla"):
        keys, sq = row_keys(a1, *(() if x2 is None else (a2,)), dtype=dt)
        extra = (sq[0], sq[-1], keys[0], keys[-1])
        chunk = max(1, FAST_CHUNK_ENTRIES // (col_block * max(1, len(gets))))
        chunk = max(1, chunk // n_dev) * n_dev if n_dev > 1 else chunk
    if host:
        fn = _cpu_tile_fn(spec, gets)
    else:
        fn = _tile_fn(spec, gets, devs, features if recurrent else 0, engine, chunk)
    return _Plan(
        a1,
        a2,
        symmetric,
        gets,
        single,
        dt,
        row_block,
        col_block,
        fn,
        extra,
        host,
    )


def _row_slice(plan: _Plan, start: int, stop: int, row_block: int) -> _Plan:
    """The plan of rows ``start:stop`` of ``x1`` against all of ``x2`` (rectangular)."""
    extra = plan.extra
    if extra is not None:
        extra = (extra[0][start:stop], extra[1], extra[2][start:stop], extra[3])
    return plan._replace(
        x1=plan.x1[start:stop], row_block=row_block, extra=extra, symmetric=False
    )


def _check_sequences(x: Any, name: str, *, feature_dim: int | None = None):
    """Sequence inputs of an :class:`RNN` as a validated packed array."""
    return as_packed(x, name, features=feature_dim)


def _tile_grid(plan: _Plan, *, symmetric: bool):
    n1, n2 = len(plan.x1), len(plan.x2)
    for i0 in range(0, n1, plan.row_block):
        for j0 in range(0, n2, plan.col_block):
            if symmetric and j0 < i0:
                continue
            yield i0, j0


def _padded_tile(plan: _Plan, i0: int, j0: int) -> tuple[slice, slice, jax.Array]:
    """The tile at ``(i0, j0)`` at its full, padded ``(G, L, row_block, col_block)``."""
    rows = slice(i0, min(i0 + plan.row_block, len(plan.x1)))
    cols = slice(j0, min(j0 + plan.col_block, len(plan.x2)))
    args = [_pad_rows(plan.x1[rows], plan.row_block)]
    args.append(_pad_rows(plan.x2[cols], plan.col_block))
    if plan.extra is not None:
        sq1, sq2, key1, key2 = plan.extra
        args += [_pad_rows(sq1[rows], plan.row_block)]
        args += [_pad_rows(sq2[cols], plan.col_block)]
        args += [_pad_rows(key1[rows], plan.row_block)]
        args += [_pad_rows(key2[cols], plan.col_block)]
    with _dtype_scope(plan.dtype):
        if plan.host:  # a diagonal tile of x against itself: exactly symmetric
            out = plan.fn(*args, symmetric=plan.symmetric and i0 == j0)
        else:
            out = plan.fn(*args)
    return rows, cols, out


def _compute_tile(plan: _Plan, i0: int, j0: int) -> tuple[slice, slice, jax.Array]:
    rows, cols, out = _padded_tile(plan, i0, j0)
    return rows, cols, out[:, :, : rows.stop - rows.start, : cols.stop - cols.start]


def _check_finite(values: jax.Array, spec: MLP, dtype: np.dtype) -> None:
    """Raise instead of returning a kernel with NaN or infinite entries.

    With every input finite (``check_inputs``) and correlations kept within
    Cauchy-Schwarz (``_spec._clip_correlations``), non-finite entries mean that the
    kernel's true values leave the range or precision of ``dtype``: exploding
    variance at large ``W_std`` and depth, e.g. ReLU in float32 past about
    1e38 (``W_std=5``, depth 35).
    """
    if not bool(jnp.all(jnp.isfinite(values))):
        _not_finite(spec, dtype)


def _not_finite(spec: MLP | RNN, dtype: np.dtype):
    raise NFTKInputError(
        f"the layerwise kernels are not finite in dtype={np.dtype(dtype).name} "
        f"for activation={spec.activation!r}, depth={spec.depth}, "
        f"{_scale_name(spec)}={_scale(spec)}: their values outgrow the dtype's "
        "range or precision. Use dtype=float64, a smaller weight scale, or "
        "fewer layers."
    )


def _scale_name(spec: MLP | RNN) -> str:
    return "sigma_w" if isinstance(spec, RNN) else "W_std"


def _scale(spec: MLP | RNN) -> float:
    return getattr(spec, _scale_name(spec))


@dataclasses.dataclass(frozen=True)
class _TileOptions:
    """The tiling keywords of :func:`layerwise_kernels`, :func:`kernel_tiles`,
    :func:`layerwise_matvec` and the layer operators, as one value.

    They are checked, with the spec and the inputs, by :meth:`plan`.
    """

    block_size: int | None = None
    memory_budget: int | None = None
    dtype: Any = None
    devices: Sequence | None | bool = None
    engine: str = "auto"

    def plan(self, spec, x1, x2, *, get="ntk", allow_symmetric=True) -> _Plan:
        """The validated tiling of ``spec``'s kernels between ``x1`` and ``x2``."""
        return _plan(
            spec,
            x1,
            x2,
            get=get,
            block_size=self.block_size,
            memory_budget=self.memory_budget,
            dtype=self.dtype,
            devices=self.devices,
            allow_symmetric=allow_symmetric,
            engine=self.engine,
        )


def _tracked(items: list, enabled: bool | str, desc: str) -> Iterator:
    """``items`` one by one, with a progress bar over them when ``enabled``."""
    bar = progress_bar(len(items), desc, enabled=enabled, unit="tile")
    for item in items:
        yield item
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()


def layerwise_kernels(
    spec: MLP,
    x1: Any,
    x2: Any = None,
    *,
    get: str | Sequence[str] = "ntk",
    block_size: int | None = None,
    memory_budget: int | None = None,
    dtype: Any = None,
    devices: Sequence | None | bool = None,
    engine: str = "auto",
    progress: bool | str = False,
    host: bool = False,
) -> jax.Array | tuple[jax.Array, ...]:
    r"""Every layerwise kernel :math:`\Theta^{(1..L)}(x_1, x_2)` from one recursion.

    Args:
        spec: the architecture.
        x1: ``(n1, m)`` inputs.
        x2: ``(n2, m)`` inputs, or ``None`` for ``x1`` against itself (then only the
            upper triangle of tiles is computed and mirrored, so the result is
            exactly symmetric).
        get: ``'ntk'``, ``'nngp'`` or a tuple of both.
        block_size: tile edge in rows; ``None`` picks it from ``memory_budget``.
        memory_budget: bytes per device for one tile's working set (default 1 GiB).
        dtype: ``float32`` or ``float64``; ``None``: float64 when x64 is enabled.
        devices: devices to shard tile rows over; ``None``: all local devices;
            ``False``: no sharding.
        engine: ``'auto'`` (the fast closed-form recursion when the activation
            has one, see :mod:`nftk_jax.kernels._fast`; else neural-tangents),
            ``'fast'``, ``'fast_xla'`` (the same recursion as one XLA program, also on
            CPUs) or ``'stax'`` (neural-tangents' ``kernel_fn``).
        progress: show a progress bar over tiles; a string also labels it (e.g.
            ``"train kernels"``).
        host: return writable numpy arrays instead of JAX arrays (no copy either
            way: the kernels are written into 64-byte aligned host buffers, which
            ``jax.device_put`` takes as they are on CPU); for callers that scale or
            slice them in place.

    Returns:
        ``(L, n1, n2)`` for a single ``get``; a tuple of those, in order, otherwise.

    Example:
        >>> import numpy as np
        >>> from nftk_jax import MLP, layerwise_kernels
        >>> x = np.random.default_rng(0).normal(size=(5, 3))
        >>> layerwise_kernels(MLP(depth=4), x, dtype=np.float32).shape
        (4, 5, 5)
    """
    options = _TileOptions(block_size, memory_budget, dtype, devices, engine)
    plan = options.plan(spec, x1, x2, get=get)
    outs = _fill_kernels(plan, spec, progress)
    if not host:  # aligned buffers: device_put takes them without a copy on CPU
        outs = [jax.device_put(out) for out in outs]
    return outs[0] if plan.single else tuple(outs)


def _fill_kernels(plan: _Plan, spec, progress) -> list[np.ndarray]:
    """One aligned ``(L, n1, n2)`` host buffer per ``get``, filled tile by tile.

    Diagonal tiles of a symmetric plan are symmetrised as they arrive and the
    off-diagonal ones mirrored, so the result is exactly symmetric without a
    second ``(L, n, n)`` array; finiteness is checked per tile. The compiled
    CPU kernel fills whole rows instead (:func:`_fill_rows`).
    """
    if plan.host:
        return _fill_rows(plan, spec, progress)
    n1, n2 = len(plan.x1), len(plan.x2)
    tiles = list(_tile_grid(plan, symmetric=plan.symmetric))
    outs = [aligned_empty((spec.depth, n1, n2), plan.dtype) for _ in plan.gets]
    shown = progress if len(tiles) > 1 else False
    for i0, j0 in _tracked(tiles, shown, "kernel tiles"):
        rows, cols, tile = _compute_tile(plan, i0, j0)
        _check_finite(tile, spec, plan.dtype)
        tile = np.asarray(tile)
        for out, t in zip(outs, tile, strict=True):
            out[:, rows, cols] = t
            if plan.symmetric and j0 != i0:
                out[:, cols, rows] = np.swapaxes(t, -1, -2)
            elif plan.symmetric:  # in place, layer by layer
                for block in out[:, rows, cols]:
                    block += block.T
                    block *= 0.5
    return outs


def _fill_rows(plan: _Plan, spec: MLP, progress) -> list[np.ndarray]:
    """The compiled kernel writes blocks of whole rows straight into the result.

    No tile is copied or mirrored. A symmetric plan's Gram matrix is formed once,
    exactly symmetric (:func:`_host_gram`: ``n^2`` entries beside the ``L n^2``
    result), and its rows' and columns' diagonal recursions are one array, so an
    entry and its mirror see the same numbers and arithmetic; a rectangular
    plan's Gram is formed block by block, each block of rows as large as the
    plan's tile area.
    """
    n1, n2 = len(plan.x1), len(plan.x2)
    m = plan.x1.shape[1]
    sq1, sq2, key1, key2 = plan.extra
    out = aligned_empty((len(plan.gets), spec.depth, n1, n2), plan.dtype)
    rows = max(1, min(n1, plan.row_block * plan.col_block // max(n2, 1)))
    starts = list(range(0, n1, rows))
    with _dtype_scope(plan.dtype):
        d1 = jax.device_get(_diag_fn(spec, m)(sq1))
        d2 = d1 if plan.symmetric else jax.device_get(_diag_fn(spec, m)(sq2))
        gram = _host_gram(plan.x1) if plan.symmetric else None
        for r0 in _tracked(
            starts, progress if len(starts) > 1 else False, "kernel tiles"
        ):
            r1 = min(r0 + rows, n1)
            if gram is None:
                g = _host_gram(plan.x1[r0:r1], plan.x2)
            else:
                g = gram[r0:r1]
            d1r = (d1[0][:, r0:r1], d1[1][:, r0:r1])
            _, finite = cpu_heads(
                spec,
                g,
                sq1[r0:r1],
                sq2,
                key1[r0:r1],
                key2,
                (d1r, d2),
                m,
                gets=plan.gets,
                out=out,
                row0=r0,
            )
            if not finite:
                _not_finite(spec, plan.dtype)
    return list(out)


def _host_gram(x1: np.ndarray, x2: np.ndarray | None = None) -> np.ndarray:
    """``x1 x2^T`` by the host's BLAS, for the compiled kernel's host tiles.

    ``x2=None``: ``x1 x1^T``, which numpy hands to BLAS as a symmetric rank-k
    update: half the GEMM's work, and exactly symmetric (one triangle is
    computed and copied). On CPUs this is also faster than XLA's dot.
    """
    x1 = np.ascontiguousarray(x1)
    return x1 @ x1.T if x2 is None else x1 @ np.ascontiguousarray(x2).T


@functools.partial(jax.jit, static_argnames="symmetric")
def _gram_fn(x1, x2, symmetric):
    """``x1 x2^T``; with ``symmetric`` (x1 is x2) exactly symmetrised."""
    gram = x1 @ x2.T
    return 0.5 * (gram + gram.T) if symmetric else gram


@functools.lru_cache(maxsize=64)
def _diag_fn(spec: MLP, m: int):
    return jax.jit(lambda sq: diag_layers(spec, sq, m))


def kernel_tiles(
    spec: MLP,
    x1: Any,
    x2: Any = None,
    *,
    get: str | Sequence[str] = "ntk",
    block_size: int | None = None,
    memory_budget: int | None = None,
    dtype: Any = None,
    devices: Sequence | None | bool = None,
    engine: str = "auto",
) -> Iterator[KernelTile]:
    """Stream the layerwise kernels tile by tile without materialising ``(L, n, n)``.

    Every tile of the full ``(n1, n2)`` grid is yielded once (no symmetry trick),
    row-major. Arguments are as in :func:`layerwise_kernels`.
    """
    options = _TileOptions(block_size, memory_budget, dtype, devices, engine)
    plan = options.plan(spec, x1, x2, get=get, allow_symmetric=False)
    for i0, j0 in _tile_grid(plan, symmetric=False):
        rows, cols, tile = _compute_tile(plan, i0, j0)
        if not plan.host:  # the compiled kernel checks as it writes
            _check_finite(tile, spec, plan.dtype)
        yield KernelTile(rows, cols, tile[0] if plan.single else tile)


@functools.lru_cache(maxsize=64)
def _tile_product_fn(weighted: bool, role: str):
    """Jitted products of one padded tile with blocks of ``v``, in ``v``'s dtype.

    ``role`` says how the tile enters the product: ``'block'``, any tile of the full
    grid; ``'diagonal'``, a diagonal tile of the symmetric grid, symmetrised first
    (as :func:`layerwise_kernels` symmetrises its result); ``'pair'``, an
    off-diagonal tile of the symmetric grid, which stands for itself and its mirror,
    so it returns the product with the tile and with its transpose.
    """

    def product(k, vb, omega, transposed=False):
        if transposed:  # Theta_l^T v as (v^T Theta_l)^T, layer by layer: each
            # layer's block is read in place (one batched dot transposed the tile)
            kv = jnp.stack([(vb.T @ k[lay]).T for lay in range(k.shape[0])])
        else:
            kv = jnp.einsum("lij,jk->lik", k, vb)  # one GEMM per layer
        if weighted:
            # sum_l omega[c, l] (Theta_l @ v)[:, c]  -> (b1, d); contracting the
            # small (L, b1, d) products, not an Omega-weighted (d, b1, b2) kernel
            return jnp.einsum("cl,lic->ic", omega, kv)
        return kv

    def f(tile, v_cols, v_rows, omega):
        k = tile[0].astype(v_cols.dtype)  # (L, b1, b2), cast before multiplying
        if role == "diagonal":
            k = 0.5 * (k + jnp.swapaxes(k, -1, -2))
        to_rows = product(k, v_cols, omega)
        if role != "pair":
            return to_rows, None
        return to_rows, product(k, v_rows, omega, transposed=True)

    return jax.jit(f)


def _tile_roles(plan: _Plan) -> list[tuple[int, int, str]]:
    """The tiles a product needs, with their role (see :func:`_tile_product_fn`)."""
    if not plan.symmetric:
        return [(i0, j0, "block") for i0, j0 in _tile_grid(plan, symmetric=False)]
    # the compiled kernel's diagonal tiles are exactly symmetric already
    diagonal = "block" if plan.host else "diagonal"
    return [
        (i0, j0, diagonal if i0 == j0 else "pair")
        for i0, j0 in _tile_grid(plan, symmetric=True)
    ]


def layerwise_matvec(
    spec: MLP,
    x1: Any,
    v: Any,
    *,
    x2: Any = None,
    omega: Any = None,
    block_size: int | None = None,
    memory_budget: int | None = None,
    dtype: Any = None,
    product_dtype: Any = None,
    devices: Sequence | None | bool = None,
    engine: str = "auto",
    progress: bool = False,
) -> jax.Array:
    r"""Matrix-free products with the layerwise NTKs, streamed over tiles.

    Without ``omega``: ``v`` is ``(n2, k)`` and the result is ``(L, n1, k)``,
    :math:`\Theta_l(x_1, x_2) v` for every layer. With ``omega`` of shape ``(d, L)``:
    ``v`` is ``(n2, d)`` and the result is ``(n1, d)`` with column ``c`` equal to
    :math:`\sum_l \Omega_{cl} \Theta_l(x_1, x_2) v_{:, c}`, the per-class MKL matvec.
    Peak memory is one tile plus the output; the tile never leaves the device.

    With ``x2=None`` the kernel :math:`\Theta_l(x_1, x_1)` is symmetric, so only the
    tiles on and above the diagonal are computed (:math:`B(B+1)/2` of the
    :math:`B^2`, for :math:`B` row blocks): an off-diagonal tile
    :math:`T = \Theta_l[R, C]` adds :math:`T v_C` to the rows :math:`R` and
    :math:`T^\top v_R` to the rows :math:`C`. Diagonal tiles are symmetrised
    first, so the product is with exactly the symmetric matrix that
    :func:`layerwise_kernels` returns.

    Args:
        spec: the architecture.
        x1: ``(n1, m)`` inputs (the rows of the kernel).
        v: ``(n2, k)`` block of vectors (``(n2, d)`` with ``omega``).
        x2: ``(n2, m)`` inputs (the columns), or ``None`` for ``x1`` itself.
        omega: optional ``(d, L)`` per-class layer weights.
        block_size: tile edge in rows; ``None`` picks it from ``memory_budget``.
        memory_budget: bytes per device for one tile's working set (default 1 GiB).
        dtype: dtype the kernel tiles are computed in, ``float32`` or ``float64``;
            ``None``: float64 when x64 is enabled.
        product_dtype: dtype of ``v``, the products and the result; ``None``: the
            same as ``dtype``. ``float64`` with ``dtype=float32`` computes float32
            tiles and casts each one to float64 before multiplying.
        devices: devices to shard tile rows over; ``None``: all local devices;
            ``False``: no sharding.
        engine: ``'auto'`` (the fast closed-form recursion when the activation
            has one, see :mod:`nftk_jax.kernels._fast`; else neural-tangents),
            ``'fast'``, ``'fast_xla'`` (the same recursion as one XLA program, also on
            CPUs) or ``'stax'`` (neural-tangents' ``kernel_fn``).
        progress: show a progress bar over tiles.

    Returns:
        ``(L, n1, k)`` without ``omega``, ``(n1, d)`` with it, in ``product_dtype``.
    """
    options = _TileOptions(block_size, memory_budget, dtype, devices, engine)
    return _streamed_matvec(spec, x1, v, x2, omega, product_dtype, progress, options)


def _streamed_matvec(
    spec, x1, v, x2, omega, product_dtype, progress, options: _TileOptions
) -> jax.Array:
    """:func:`layerwise_matvec` with its tiling keywords as one value."""
    plan = options.plan(spec, x1, x2)
    pdt = (
        plan.dtype
        if product_dtype is None
        else resolve_dtype(product_dtype, "product_dtype")
    )
    vv = np.asarray(v, dtype=pdt)
    n1, n2 = len(plan.x1), len(plan.x2)
    if vv.ndim != 2 or vv.shape[0] != n2:
        raise NFTKInputError(f"v must have shape ({n2}, k), got {vv.shape}.")
    k = vv.shape[1]
    weighted = omega is not None
    if weighted:
        om = np.asarray(omega, dtype=pdt)
        if om.shape != (k, spec.depth):
            raise NFTKInputError(
                f"omega must have shape (d, L) = ({k}, {spec.depth}) to "
                f"match v's {k} columns, got {om.shape}."
            )
        out = jnp.zeros((n1, k), pdt)
    else:
        om = np.zeros((1, 1), pdt)
        out = jnp.zeros((spec.depth, n1, k), pdt)
    if plan.host:
        return _host_matvec(plan, spec, vv, om if weighted else None, progress)
    # Zero rows past the end, so padded tile columns (and, for a mirrored tile,
    # padded tile rows) contribute nothing.
    vpad = np.zeros((n2 + max(plan.row_block, plan.col_block), k), pdt)
    vpad[:n2] = vv
    for i0, j0, role in _tracked(_tile_roles(plan), progress, "matvec tiles"):
        rows, cols, tile = _padded_tile(plan, i0, j0)
        v_cols = vpad[j0 : j0 + plan.col_block]
        v_rows = vpad[i0 : i0 + plan.row_block] if role == "pair" else None
        to_rows, to_cols = _tile_product_fn(weighted, role)(tile, v_cols, v_rows, om)
        nr, nc = rows.stop - rows.start, cols.stop - cols.start
        if weighted:
            out = out.at[rows].add(to_rows[:nr])
            if to_cols is not None:
                out = out.at[cols].add(to_cols[:nc])
        else:
            out = out.at[:, rows].add(to_rows[:, :nr])
            if to_cols is not None:
                out = out.at[:, cols].add(to_cols[:, :nc])
    _check_finite(out, spec, plan.dtype)
    return out


def _host_matvec(plan: _Plan, spec: MLP, v: np.ndarray, omega, progress) -> jax.Array:
    """:func:`_streamed_matvec` with the compiled kernel: every tile's heads are
    multiplied as they are computed (:func:`cpu_products`), never stored.

    A symmetric plan visits the tiles on and above the diagonal; a diagonal tile
    only its entries on and above the diagonal, so every entry of the upper
    triangle is computed once and enters the products of its row and of its
    column: the product is with an exactly symmetric matrix.
    """
    m = plan.x1.shape[1]
    sq1, sq2 = plan.extra[:2]
    weights = None if omega is None else np.ascontiguousarray(omega.T)
    n_groups = 1 if omega is None else 0
    shape = (spec.depth,) * n_groups + (len(plan.x1), v.shape[1])
    out = np.zeros(shape, v.dtype)
    tiles = list(_tile_grid(plan, symmetric=plan.symmetric))
    with _dtype_scope(plan.dtype):
        d1 = jax.device_get(_diag_fn(spec, m)(sq1))
        d2 = d1 if plan.symmetric else jax.device_get(_diag_fn(spec, m)(sq2))
        for i0, j0 in _tracked(tiles, progress, "matvec tiles"):
            rows, cols, to_rows, to_cols = _host_tile_product(
                plan, spec, i0, j0, (d1, d2), v, weights
            )
            out[..., rows, :] += to_rows if omega is None else to_rows[0]
            if to_cols is not None:
                out[..., cols, :] += to_cols if omega is None else to_cols[0]
    _check_finite(out, spec, plan.dtype)
    return jnp.asarray(out)


def _host_tile_product(plan: _Plan, spec: MLP, i0: int, j0: int, diags, v, weights):
    """``(rows, cols, to_rows, to_cols)`` of the tile at ``(i0, j0)`` (see
    :func:`cpu_products`); ``to_cols`` is ``None`` unless the plan is
    symmetric."""
    rows = slice(i0, min(i0 + plan.row_block, len(plan.x1)))
    cols = slice(j0, min(j0 + plan.col_block, len(plan.x2)))
    diagonal = plan.symmetric and i0 == j0
    gram = _host_gram(plan.x1[rows], None if diagonal else plan.x2[cols])
    sq1, sq2, key1, key2 = plan.extra
    (pre1, post1), (pre2, post2) = diags
    to_rows, to_cols = cpu_products(
        spec,
        gram,
        sq1[rows],
        sq2[cols],
        key1[rows],
        key2[cols],
        ((pre1[:, rows], post1[:, rows]), (pre2[:, cols], post2[:, cols])),
        plan.x1.shape[1],
        v_cols=v[cols],
        v_rows=v[rows] if plan.symmetric else None,
        weights=weights,
        triangle=diagonal,
    )
    return rows, cols, to_rows, to_cols
