r"""Layer operators: products with the L layerwise kernels, however they are stored.

A layer operator stands for the stack of layerwise NTKs
:math:`\Theta_l(X_1, X_2) \in \mathbb{R}^{n_1 \times n_2}`, :math:`l = 1..L`, of
shape ``(L, n1, n2)``, and offers the few operations a kernel solver needs:

* ``matmul(v)``: :math:`\Theta_l v` for every layer, ``(n2, k) -> (L, n1, k)``;
* ``rmatmul(u)``: :math:`\Theta_l^\top u` for every layer, ``(n1, k) -> (L, n2, k)``;
* ``combine(w)``: the dense mixture :math:`\sum_l w_l \Theta_l`, ``(n1, n2)``, e.g.
  to build a preconditioner;
* ``diagonal()``: :math:`\operatorname{diag}\Theta_l(X, X)`, ``(L, n)``, for a
  square operator (one set of inputs against itself).

Three storages share that interface:

* :class:`ArrayLayerOperator`: an in-memory ``(L, n1, n2)`` array.
* :class:`StreamedLayerOperator`: nothing stored; every product recomputes the
  kernel tiles (:func:`~nftk_jax.layerwise_matvec`), so memory is one tile
  plus the vectors and each product costs a full kernel evaluation.
* :class:`DiskLayerOperator`: the kernels computed once and written to a raw binary
  file as row panels; every product streams the panels back one at a time, so
  memory is one panel whatever ``n``. At ``n = 20,000`` and ``L = 10`` the float32
  kernels take 16 GB; a product then holds one 256 MiB panel.

Products are computed and returned in float64 when JAX's x64 mode is enabled (in
float32 otherwise). Stored float32 values are cast to float64 one tile or panel at
a time before multiplying, so the products agree to float64 round-off with
products of the stored values.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import (
    NFTKInputError,
    NFTKTypeError,
    atomic_path,
    check_positive_int,
    ensure_writable_dir,
    problem_digest,
    progress_bar,
    resolve_dtype,
    write_json,
)
from ..model import MLP, RNN, check_spec_inputs
from ._fast import resolve_engine
from ._layerwise import (
    _check_finite,
    _compute_tile,
    _padded_tile,
    _plan,
    _resolve_devices,
    _row_slice,
    _streamed_matvec,
    _tile_grid,
    _TileOptions,
    _tracked,
)

__all__ = [
    "LayerOperator",
    "ArrayLayerOperator",
    "StreamedLayerOperator",
    "DiskLayerOperator",
    "DEFAULT_PANEL_BUDGET",
]

#: Default size of one row panel of a :class:`DiskLayerOperator`, in bytes (256 MiB).
DEFAULT_PANEL_BUDGET = 256 << 20
# Edge of the tiles :meth:`StreamedLayerOperator.diagonal` evaluates: n * 256
# kernel entries instead of n**2.
_DIAGONAL_BLOCK = 256
_STORE_FORMAT = "nftk-layer-kernels"
_STORE_VERSION = 1


def is_layer_operator(theta: Any) -> bool:
    """A layer operator (``matmul``, ``rmatmul``), not an ``(L, n1, n2)`` array."""
    return hasattr(theta, "matmul") and hasattr(theta, "rmatmul")


def _product_dtype() -> np.dtype:
    """float64 when x64 is enabled, else float32: the dtype of every product."""
    return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)


def _storage_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """float32 or float64 (float64 needs x64), as :func:`resolve_dtype`."""
    return resolve_dtype(np.float32 if dtype is None else dtype, name)


class LayerOperator(abc.ABC):
    r"""Products with the layerwise kernels :math:`\Theta_l(X_1, X_2)`, ``(L, n1, n2)``.

    Attributes:
        shape: ``(L, n1, n2)``.
        dtype: the dtype the kernel values are stored (or computed) in.
        square: whether the operator is one set of inputs against itself, i.e.
            :math:`\Theta_l(X, X)`, so that :meth:`diagonal` is defined.
        fingerprint: a string that identifies the kernels the operator stands for
            (storage, dtype, and a SHA-256 digest of the values or of the spec and
            inputs they are computed from), e.g. for checkpoint digests.
    """

    shape: tuple[int, int, int]
    dtype: np.dtype
    square: bool

    # -- the interface ---------------------------------------------------------------
    @abc.abstractmethod
    def matmul(self, v: Any) -> jax.Array:
        r""":math:`\Theta_l v` for every layer.

        Args:
            v: ``(n2, k)`` block of vectors.

        Returns:
            ``(L, n1, k)``, float64 when x64 is enabled.
        """

    @abc.abstractmethod
    def rmatmul(self, u: Any) -> jax.Array:
        r""":math:`\Theta_l^\top u` for every layer.

        Args:
            u: ``(n1, k)`` block of vectors.

        Returns:
            ``(L, n2, k)``, float64 when x64 is enabled.
        """

    @abc.abstractmethod
    def combine(self, w: Any, *, dtype: Any = None) -> np.ndarray | jax.Array:
        r"""The dense mixture :math:`\sum_l w_l \Theta_l`, ``(n1, n2)``.

        Args:
            w: ``(L,)`` non-negative layer weights.
            dtype: dtype of the result; ``None``: float64 when x64 is enabled. The
                sum is accumulated in that precision or better.

        Returns:
            ``(n1, n2)``: a ``jax.Array`` for :class:`ArrayLayerOperator`, a NumPy
            array (assembled on the host) otherwise.
        """

    @abc.abstractmethod
    def diagonal(self) -> jax.Array:
        r""":math:`\operatorname{diag}\Theta_l(X, X)` for every layer, ``(L, n)``.

        Raises:
            ValueError: the operator is not square (it was built with ``x2``).
        """

    def weighted_matmul(self, v: Any, omega: Any) -> jax.Array:
        r"""Per-column mixtures :math:`\sum_l \Omega_{cl}\,\Theta_l v_{:,c}`.

        Column ``c`` of ``v`` is multiplied by its own kernel
        :math:`K_c = \sum_l \Omega_{cl}\Theta_l` (the products of batched
        per-class CG). The default forms :meth:`matmul` and mixes it; an operator
        that computes its kernels (:class:`StreamedLayerOperator`) mixes each tile
        before multiplying, one product per class instead of one per layer.

        Args:
            v: ``(n2, d)`` block of vectors.
            omega: ``(d, L)`` layer weights, one row per column of ``v``.

        Returns:
            ``(n1, d)``, float64 when x64 is enabled.
        """
        om = self._omega(omega, np.shape(v))
        return jnp.einsum("cl,lic->ic", om, self.matmul(v))

    # -- shared checks ---------------------------------------------------------------
    def _omega(self, omega: Any, v_shape: tuple) -> np.ndarray:
        L = self.shape[0]
        d = v_shape[1] if len(v_shape) == 2 else None
        arr = np.asarray(omega, dtype=np.float64)
        if arr.shape != (d, L):
            raise NFTKInputError(
                f"omega must have shape (d, L) = ({d}, {L}), one row per column of "
                f"v, got {arr.shape}."
            )
        if not np.all(np.isfinite(arr)):
            raise NFTKInputError("omega must be finite; it has NaN or inf entries.")
        return arr.astype(_product_dtype())

    def __repr__(self) -> str:
        L, n1, n2 = self.shape
        return (
            f"{type(self).__name__}(L={L}, n1={n1}, n2={n2}, "
            f"dtype={np.dtype(self.dtype).name}, square={self.square})"
        )

    def _vectors(self, v: Any, n: int, name: str) -> np.ndarray:
        arr = np.asarray(v)
        if arr.ndim != 2 or arr.shape[0] != n:
            hint = f"; reshape a vector with {name}[:, None]" if arr.ndim == 1 else ""
            raise NFTKInputError(
                f"{name} must have shape ({n}, k), got {arr.shape}{hint}."
            )
        if not (
            np.issubdtype(arr.dtype, np.floating)
            or np.issubdtype(arr.dtype, np.integer)
        ):
            raise NFTKTypeError(f"{name} must be a real array, got dtype {arr.dtype}.")
        return arr.astype(_product_dtype(), copy=False)

    def _weights(self, w: Any) -> np.ndarray:
        L = self.shape[0]
        arr = np.asarray(w, dtype=np.float64)
        if arr.shape != (L,):
            raise NFTKInputError(
                f"w must have shape (L,) = ({L},), one weight per layer, "
                f"got {arr.shape}."
            )
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise NFTKInputError(f"w must be finite and non-negative, got {arr}.")
        return arr.astype(_product_dtype())

    def _check_square(self) -> None:
        if not self.square:
            raise NFTKInputError(
                f"diagonal() needs a square operator (one set of inputs against "
                f"itself, built with x2=None); this one is {self.shape[1]} x "
                f"{self.shape[2]} cross kernels."
            )


# ------------------------------------------------------------------------- in memory


@jax.jit
def _array_matmul(theta, v):
    # One layer at a time, so a float32 stack is cast one (n1, n2) slice at a time.
    return jax.lax.map(lambda t: t.astype(v.dtype) @ v, theta)


@jax.jit
def _array_rmatmul(theta, u):
    return jax.lax.map(lambda t: t.astype(u.dtype).T @ u, theta)


@jax.jit
def _array_combine(theta, w):
    def body(l, acc):
        return acc + w[l] * theta[l].astype(w.dtype)

    zero = jnp.zeros(theta.shape[1:], w.dtype)
    return jax.lax.fori_loop(0, theta.shape[0], body, zero)


class ArrayLayerOperator(LayerOperator):
    r"""Layer operator over an in-memory ``(L, n1, n2)`` array of kernels.

    Args:
        theta: the layerwise kernels, e.g. from
            :func:`~nftk_jax.layerwise_kernels`; float32 or float64. It is kept
            as a ``jax.Array`` (on the default device).

    The operator is square when ``n1 == n2``.

    Example:
        >>> import numpy as np
        >>> from nftk_jax import MLP, layerwise_kernels
        >>> x = np.random.default_rng(0).normal(size=(6, 3))
        >>> op = ArrayLayerOperator(layerwise_kernels(MLP(depth=2), x))
        >>> op.shape, op.matmul(np.ones((6, 1))).shape
        ((2, 6, 6), (2, 6, 1))
    """

    def __init__(self, theta: Any):
        th = jnp.asarray(theta)
        if th.ndim != 3:
            raise NFTKInputError(
                f"theta must be the (L, n1, n2) layerwise kernels, got shape "
                f"{th.shape}."
            )
        if th.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise NFTKInputError(
                f"theta must be float32 or float64, got {th.dtype}; cast it first."
            )
        self.theta = th
        self.shape = tuple(int(s) for s in th.shape)
        self.dtype = np.dtype(th.dtype)
        self.square = self.shape[1] == self.shape[2]

    @functools.cached_property
    def fingerprint(self) -> str:
        values = problem_digest({"theta": np.asarray(self.theta)}, {})
        return f"array:{self.dtype.name}:{values}"

    def matmul(self, v: Any) -> jax.Array:
        return _array_matmul(self.theta, self._vectors(v, self.shape[2], "v"))

    def rmatmul(self, u: Any) -> jax.Array:
        return _array_rmatmul(self.theta, self._vectors(u, self.shape[1], "u"))

    def combine(self, w: Any, *, dtype: Any = None) -> jax.Array:
        dt = resolve_dtype(dtype)
        return _array_combine(self.theta, self._weights(w)).astype(dt)

    def diagonal(self) -> jax.Array:
        self._check_square()
        d = jnp.diagonal(self.theta, axis1=-2, axis2=-1)
        return d.astype(_product_dtype())


# -------------------------------------------------------------------------- streamed


@functools.partial(jax.jit, static_argnames="symmetrise")
def _combine_tile(tile, w, symmetrise: bool):
    """``sum_l w_l tile_l`` of a padded ``(1, L, b1, b2)`` tile, in ``w``'s dtype.

    A diagonal tile of the symmetric grid is symmetrised, as in the products.
    """
    k = _array_combine(tile[0], w)
    return 0.5 * (k + k.T) if symmetrise else k


class StreamedLayerOperator(LayerOperator):
    r"""Matrix-free layer operator: every product recomputes the kernel tiles.

    Nothing of size ``(L, n1, n2)`` is ever held: a product is one streamed pass of
    :func:`~nftk_jax.layerwise_matvec` (memory: one tile plus the vectors), and
    costs a full evaluation of the kernels (half of it for a square operator, whose
    tiles below the diagonal are mirrored). The transpose uses the symmetry of the
    NTK, :math:`\Theta_l(X_1, X_2)^\top = \Theta_l(X_2, X_1)`.

    Args:
        spec: the architecture.
        x1: ``(n1, m)`` inputs (the rows).
        x2: ``(n2, m)`` inputs (the columns), or ``None`` for the square operator
            :math:`\Theta_l(X_1, X_1)`.
        block_size: tile edge in rows; ``None`` picks it from ``memory_budget``.
        memory_budget: bytes per device for one tile's working set (default 1 GiB).
        dtype: dtype the kernel tiles are computed in; ``None``: float64 when x64 is
            enabled. float32 tiles are cast to float64 (with x64) before
            multiplying.
        devices: devices to shard tile rows over; ``None``: all local devices;
            ``False``: no sharding.
        progress: show a progress bar over the tiles of every product.
        engine: kernel engine, as in :func:`~nftk_jax.layerwise_kernels`
            (``'auto'``: the fast closed-form recursion where it exists).

    Example:
        >>> import numpy as np
        >>> from nftk_jax import MLP
        >>> x = np.random.default_rng(0).normal(size=(6, 3))
        >>> op = StreamedLayerOperator(MLP(depth=2), x, block_size=4)
        >>> op.matmul(np.ones((6, 2))).shape, op.diagonal().shape
        ((2, 6, 2), (2, 6))
    """

    def __init__(
        self,
        spec: MLP,
        x1: Any,
        x2: Any = None,
        *,
        block_size: int | None = None,
        memory_budget: int | None = None,
        dtype: Any = None,
        devices: Sequence | None | bool = None,
        progress: bool = False,
        engine: str = "auto",
    ):
        # Validates spec, inputs, dtype, tile size and engine once, up front.
        options = _TileOptions(block_size, memory_budget, dtype, devices, engine)
        plan = options.plan(spec, x1, x2)
        self.spec = spec
        self.x1 = plan.x1
        self.x2 = None if x2 is None else plan.x2
        self.square = x2 is None
        self.shape = (spec.depth, len(plan.x1), len(plan.x2))
        self.dtype = plan.dtype
        self._options = dataclasses.replace(
            options, dtype=plan.dtype, engine=resolve_engine(spec, engine)
        )
        self._tile_edge = max(plan.row_block, plan.col_block)
        self._progress = progress

    @functools.cached_property
    def fingerprint(self) -> str:
        return ":".join(
            [
                "streamed",
                self.dtype.name,
                self._options.engine,
                _spec_digest(self.spec),
                _input_digest(self.x1),
                str(_input_digest(self.x2)),
            ]
        )

    def _matvec(self, rows: np.ndarray, v: np.ndarray, cols: np.ndarray | None):
        return _streamed_matvec(
            self.spec, rows, v, cols, None, v.dtype, self._progress, self._options
        )

    def matmul(self, v: Any) -> jax.Array:
        return self._matvec(self.x1, self._vectors(v, self.shape[2], "v"), self.x2)

    def weighted_matmul(self, v: Any, omega: Any) -> jax.Array:
        vv = self._vectors(v, self.shape[2], "v")
        om = self._omega(omega, vv.shape)
        return _streamed_matvec(
            self.spec, self.x1, vv, self.x2, om, vv.dtype, self._progress,
            self._options,
        )  # fmt: skip

    def rmatmul(self, u: Any) -> jax.Array:
        uu = self._vectors(u, self.shape[1], "u")
        if self.square:  # the streamed square operator is exactly symmetric
            return self._matvec(self.x1, uu, None)
        return self._matvec(self.x2, uu, self.x1)

    def combine(self, w: Any, *, dtype: Any = None) -> np.ndarray:
        dt = resolve_dtype(dtype)
        ww = jnp.asarray(self._weights(w))
        plan = self._options.plan(self.spec, self.x1, self.x2)
        out = np.empty(self.shape[1:], dt)
        tiles = list(_tile_grid(plan, symmetric=plan.symmetric))
        for i0, j0 in _tracked(tiles, self._progress, "combine tiles"):
            rows, cols, tile = _padded_tile(plan, i0, j0)
            _check_finite(tile, self.spec, plan.dtype)
            k = np.asarray(_combine_tile(tile, ww, plan.symmetric and i0 == j0))
            k = k[: rows.stop - rows.start, : cols.stop - cols.start]
            out[rows, cols] = k
            if plan.symmetric and i0 != j0:
                out[cols, rows] = k.T
        return out

    def diagonal(self) -> jax.Array:
        """Diagonal entries from small tiles along the diagonal (``n * 256`` entries).

        The tiles are smaller than the products', so on activations whose
        self-kernel cancels (the ReLU family's arc-cosine step) an entry may differ
        from the one inside a product by round-off (~1e-7 relative in float64).
        """
        self._check_square()
        return jnp.asarray(
            _self_kernel_diagonal(
                self.spec,
                self.x1,
                block_size=min(self._tile_edge, _DIAGONAL_BLOCK),
                dtype=self.dtype,
                devices=self._options.devices,
                engine=self._options.engine,
            ),
            _product_dtype(),
        )


def _self_kernel_diagonal(
    spec, x, *, block_size, dtype, devices, engine="auto"
) -> np.ndarray:
    """``(L, n)`` diagonals of :math:`\\Theta_l(x, x)`, one small tile per row block."""
    plan = _TileOptions(block_size, None, dtype, devices, engine).plan(spec, x, None)
    out = np.empty((spec.depth, len(plan.x1)), plan.dtype)
    for i0 in range(0, len(plan.x1), plan.row_block):
        rows, _, tile = _compute_tile(plan, i0, i0)
        _check_finite(tile, spec, plan.dtype)
        out[:, rows] = np.asarray(jnp.diagonal(tile[0], axis1=-2, axis2=-1))
    return out


# ------------------------------------------------------------------------------ disk


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _input_digest(x: np.ndarray | None) -> str | None:
    """SHA-256 of an input's float64 values and shape (``None`` stays ``None``)."""
    if x is None:
        return None
    return problem_digest({"x": np.asarray(x, np.float64)}, {})


def _spec_digest(spec: MLP) -> str:
    return hashlib.sha256(repr(spec).encode()).hexdigest()


def _readinto(f, buf: np.ndarray, offset: int, path: Path) -> None:
    """Fill ``buf`` with the bytes at ``offset`` of the open raw file ``f``."""
    view = memoryview(buf).cast("B")
    f.seek(offset)
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise NFTKInputError(
                f"path={str(path)!r} ends after {offset + done} bytes, before the "
                "stored kernels do: the file is truncated. Rebuild it with "
                "DiskLayerOperator.build(..., overwrite=True)."
            )
        done += got


def _store_meta(spec, a1, a2, store_dt, comp_dt, panel_rows) -> dict:
    """The metadata of a kernel store: its problem (spec, inputs) and its layout."""
    L, n1 = spec.depth, len(a1)
    n2 = n1 if a2 is None else len(a2)
    meta = {
        "format": _STORE_FORMAT,
        "version": _STORE_VERSION,
        "shape": [L, n1, n2],
        "dtype": store_dt.name,
        "compute_dtype": comp_dt.name,
        "square": a2 is None,
        "panel_rows": panel_rows,
        "spec": repr(spec),
        "spec_digest": _spec_digest(spec),
        "x1_digest": _input_digest(a1),
        "x2_digest": _input_digest(a2),
        "diagonal_offset": None,
        "file_bytes": L * n1 * n2 * store_dt.itemsize,
    }
    if a2 is None:  # the (L, n) diagonal follows the panels
        meta["diagonal_offset"] = meta["file_bytes"]
        meta["file_bytes"] += L * n1 * store_dt.itemsize
    return meta


def _write_panels(
    dest, plan, spec, shape, square, panel_rows, row_block, store_dt, comp_dt, progress
) -> None:
    """Compute the kernels panel by panel into ``dest`` (then the diagonal)."""
    L, n1, n2 = shape
    panel = np.empty((L, panel_rows, n2), store_dt)
    diag = np.empty((L, n1), store_dt) if square else None
    n_panels = -(-n1 // panel_rows)
    bar = progress_bar(n_panels, "kernel panels", enabled=progress, unit="panel")
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        for p0 in range(0, n1, panel_rows):
            nr = min(panel_rows, n1 - p0)
            sub = _row_slice(plan, p0, p0 + nr, row_block)
            for i0, j0 in _tile_grid(sub, symmetric=False):
                rows, cols, tile = _compute_tile(sub, i0, j0)
                _check_finite(tile, spec, comp_dt)
                panel[:, rows, cols] = np.asarray(tile[0])
            block = panel[:, :nr]
            f.write(memoryview(np.ascontiguousarray(block)).cast("B"))
            if diag is not None:
                i = np.arange(nr)
                diag[:, p0 : p0 + nr] = block[:, i, p0 + i]
            if bar is not None:
                bar.update()
        if diag is not None:
            f.write(memoryview(diag).cast("B"))
    if bar is not None:
        bar.close()


class DiskLayerOperator(LayerOperator):
    r"""Layer operator over kernels computed once and stored on disk.

    :meth:`build` computes the kernels tile by tile and writes them to one raw
    binary file as row panels: panel :math:`p` holds rows
    :math:`[p b, (p+1) b)` of every layer, as one contiguous C-ordered
    ``(L, b, n2)`` block, and the panels follow each other (the last may be
    shorter). A square store is followed by its ``(L, n)`` diagonal. A JSON file
    beside it, ``<path>.json``, records the shape, dtypes, panel height ``b``, the
    spec and SHA-256 digests of the spec and of the inputs, so :meth:`open` (and a
    repeated :meth:`build`) can check that the file belongs to the problem and reuse
    it instead of recomputing.

    Every product reads the panels back one at a time into one reused buffer, with
    plain file reads (no memory mapping, whose pages would count towards the
    process's resident memory), so memory is one panel (``panel_budget`` bytes)
    plus its float64 copy of one layer and the vectors, whatever ``n``: at
    ``n = 20,000``, ``L = 10`` the float32 file is 16 GB and a product holds a
    256 MiB panel. :meth:`rmatmul` streams the same panels, accumulating
    :math:`\Theta_l[P, :]^\top u_P`.

    Use :meth:`build` or :meth:`open` rather than the constructor.

    Attributes:
        path: the data file.
        panel_rows: rows per panel, ``b``.
        compute_dtype: dtype the kernels were computed in before storing.
    """

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = Path(path)
        L, n1, n2 = (int(s) for s in meta["shape"])
        self.shape = (L, n1, n2)
        self.dtype = np.dtype(meta["dtype"])
        self.compute_dtype = np.dtype(meta["compute_dtype"])
        self.square = bool(meta["square"])
        self.panel_rows = int(meta["panel_rows"])
        self._diagonal_offset = meta["diagonal_offset"]
        self.fingerprint = ":".join(
            [
                "disk",
                self.dtype.name,
                self.compute_dtype.name,
                meta["spec_digest"],
                meta["x1_digest"],
                str(meta["x2_digest"]),
            ]
        )

    # -- building and opening --------------------------------------------------------
    @classmethod
    def build(
        cls,
        spec: MLP,
        x1: Any,
        x2: Any = None,
        *,
        path: str | os.PathLike,
        dtype: Any = np.float32,
        compute_dtype: Any = None,
        block_size: int | None = None,
        memory_budget: int | None = None,
        panel_budget: int = DEFAULT_PANEL_BUDGET,
        devices: Sequence | None | bool = None,
        overwrite: bool = False,
        progress: bool = False,
        engine: str = "auto",
    ) -> DiskLayerOperator:
        r"""Compute the layerwise kernels once and store them at ``path``.

        If ``path`` already holds a complete store for the same ``spec``, inputs and
        dtypes it is opened and reused (nothing is recomputed).

        The data go to a temporary file beside ``path``, which replaces ``path``
        only once every panel is written and synced, and the JSON metadata, written
        last, marks the store complete: an interrupted build never leaves a
        partial file under ``path`` that :meth:`open` would accept.

        Args:
            spec: the architecture.
            x1: ``(n1, m)`` inputs (the rows).
            x2: ``(n2, m)`` inputs (the columns), or ``None`` for the square store
                :math:`\Theta_l(X_1, X_1)`.
            path: the data file to write; its metadata goes to ``<path>.json``.
            dtype: storage dtype, ``float32`` (default; half the disk and I/O) or
                ``float64``.
            compute_dtype: dtype the kernels are computed in before storing;
                ``None``: float64 when x64 is enabled (stored values are then the
                correctly rounded float64 kernels).
            block_size: tile edge in rows; ``None`` picks it from ``memory_budget``.
            memory_budget: bytes per device for one tile's working set (default
                1 GiB).
            panel_budget: bytes of one row panel ``(L, b, n2)`` (default 256 MiB);
                it bounds the memory of building and of every product.
            devices: devices to shard tile rows over; ``None``: all local devices;
                ``False``: no sharding.
            overwrite: replace an existing file at ``path`` that is not a matching
                store, instead of raising.
            progress: show a progress bar over panels.
            engine: kernel engine, as in :func:`~nftk_jax.layerwise_kernels`.

        Returns:
            The operator over the stored kernels.

        Raises:
            ValueError: ``path`` exists and is not a store for this problem (and
                ``overwrite`` is False), or an argument is invalid.
        """
        if not isinstance(spec, (MLP, RNN)):
            raise NFTKTypeError(
                f"spec must be an nftk_jax.MLP or RNN, got {type(spec).__name__}."
            )
        store_dt = _storage_dtype(dtype)
        comp_dt = resolve_dtype(compute_dtype, "compute_dtype")
        budget = check_positive_int(panel_budget, "panel_budget")
        a1 = check_spec_inputs(spec, x1, "x1")
        a2 = None if x2 is None else check_spec_inputs(spec, x2, "x2", like=a1)
        L, n1 = spec.depth, len(a1)
        n2 = n1 if a2 is None else len(a2)
        row_bytes = L * n2 * store_dt.itemsize
        if budget < row_bytes:
            raise NFTKInputError(
                f"panel_budget={budget} bytes is smaller than one row of every "
                f"layer ({L} x {n2} {store_dt.name} = {row_bytes} bytes); raise it."
            )
        panel_rows = min(n1, budget // row_bytes)
        dest = Path(path)
        meta = _store_meta(spec, a1, a2, store_dt, comp_dt, panel_rows)
        if dest.exists() or _meta_path(dest).exists():
            try:
                found = _read_meta(dest)
                _verify(dest, found, _problem_keys(meta, store=True))
            except ValueError as e:
                if not overwrite:
                    raise NFTKInputError(
                        f"{e} Or pass overwrite=True to DiskLayerOperator.build to "
                        "replace it."
                    ) from None
            else:
                return cls(dest, found)
        ensure_writable_dir(dest.parent, "path")

        plan = _plan(
            spec,
            a1,
            a2,
            get="ntk",
            block_size=block_size,
            memory_budget=memory_budget,
            dtype=comp_dt,
            devices=devices,
            allow_symmetric=False,
            engine=engine,
        )
        devs = _resolve_devices(devices)
        n_dev = 1 if devs is None else len(devs)
        # Tiles of a panel: at most the budgeted tile height, at most the panel.
        row_block = min(plan.row_block, -(-panel_rows // n_dev) * n_dev)
        # A store that is about to be replaced is no longer complete.
        _meta_path(dest).unlink(missing_ok=True)
        _write_panels(dest, plan, spec, (L, n1, n2), a2 is None, panel_rows,
                      row_block, store_dt, comp_dt, progress)  # fmt: skip
        write_json(_meta_path(dest), meta)
        return cls(dest, meta)

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, spec: MLP, x1: Any, x2: Any = None
    ) -> DiskLayerOperator:
        """Open a store written by :meth:`build`, checking it belongs to the problem.

        Args:
            path: the data file given to :meth:`build`.
            spec: the architecture the kernels must have been computed for.
            x1: the row inputs they must have been computed for.
            x2: the column inputs, or ``None`` for a square store.

        Raises:
            ValueError: the store is missing, incomplete or truncated, or was built
                for another spec or other inputs; the message names the path and
                the remedy.
        """
        dest = Path(path)
        a1 = check_spec_inputs(spec, x1, "x1")
        a2 = None if x2 is None else check_spec_inputs(spec, x2, "x2", like=a1)
        found = _read_meta(dest)
        expected = {
            "spec_digest": _spec_digest(spec),
            "x1_digest": _input_digest(a1),
            "x2_digest": _input_digest(a2),
            "square": a2 is None,
        }
        _verify(dest, found, expected)
        return cls(dest, found)

    # -- streaming -------------------------------------------------------------------
    def _panels(self) -> Iterator[tuple[slice, np.ndarray]]:
        """``(rows, panel)`` for every row panel; ``panel`` is a reused buffer."""
        L, n1, n2 = self.shape
        buf = np.empty(L * self.panel_rows * n2, self.dtype)
        with open(self.path, "rb", buffering=0) as f:
            for p0 in range(0, n1, self.panel_rows):
                nr = min(self.panel_rows, n1 - p0)
                view = buf[: L * nr * n2]
                _readinto(f, view, p0 * L * n2 * self.dtype.itemsize, self.path)
                yield slice(p0, p0 + nr), view.reshape(L, nr, n2)

    def _layers(self) -> Iterator[tuple[slice, int, np.ndarray]]:
        """``(rows, l, Theta_l[rows, :])`` in the product dtype, panel by panel."""
        pdt = _product_dtype()
        scratch = None
        if self.dtype != pdt:
            scratch = np.empty((self.panel_rows, self.shape[2]), pdt)
        for rows, panel in self._panels():
            for l in range(self.shape[0]):
                a = panel[l]
                if scratch is not None:
                    a = scratch[: len(a)]
                    np.copyto(a, panel[l])
                yield rows, l, a

    def matmul(self, v: Any) -> jax.Array:
        vv = self._vectors(v, self.shape[2], "v")
        out = np.empty((self.shape[0], self.shape[1], vv.shape[1]), vv.dtype)
        for rows, l, a in self._layers():
            np.matmul(a, vv, out=out[l, rows])
        return jnp.asarray(out)

    def rmatmul(self, u: Any) -> jax.Array:
        uu = self._vectors(u, self.shape[1], "u")
        out = np.zeros((self.shape[0], self.shape[2], uu.shape[1]), uu.dtype)
        for rows, l, a in self._layers():
            out[l] += a.T @ uu[rows]
        return jnp.asarray(out)

    def combine(self, w: Any, *, dtype: Any = None) -> np.ndarray:
        dt = resolve_dtype(dtype)
        ww = self._weights(w)
        out = np.empty(self.shape[1:], dt)
        acc = np.zeros((self.panel_rows, self.shape[2]), ww.dtype)
        for rows, l, a in self._layers():
            nr = rows.stop - rows.start
            if l == 0:
                acc[:nr] = 0
            acc[:nr] += ww[l] * a
            if l == self.shape[0] - 1:
                out[rows] = acc[:nr]
        return out

    def diagonal(self) -> jax.Array:
        """The stored diagonal (written by :meth:`build`), read in one go."""
        self._check_square()
        L, n1, _ = self.shape
        d = np.empty((L, n1), self.dtype)
        with open(self.path, "rb", buffering=0) as f:
            _readinto(f, d, self._diagonal_offset, self.path)
        return jnp.asarray(d, _product_dtype())


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = _meta_path(path)
    if not meta_path.exists():
        what = "exists but has" if path.exists() else "does not exist and has"
        raise NFTKInputError(
            f"path={str(path)!r} {what} no metadata file {meta_path.name!r}: it is "
            "not a complete kernel store (never built, or its build was "
            "interrupted). Build it with DiskLayerOperator.build(spec, x1, x2, "
            "path=...)."
        )
    try:
        meta = json.loads(meta_path.read_text())
        ok = meta.get("format") == _STORE_FORMAT
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise NFTKInputError(
            f"path={str(path)!r}: {meta_path.name!r} is not the metadata of a "
            "kernel store; delete both files or choose another path."
        )
    if meta.get("version") != _STORE_VERSION:
        raise NFTKInputError(
            f"path={str(path)!r} has store format version {meta.get('version')}, "
            f"expected {_STORE_VERSION}; rebuild it with DiskLayerOperator.build."
        )
    size = path.stat().st_size if path.exists() else None
    expected = meta.get("file_bytes")
    if size != expected:
        raise NFTKInputError(
            f"path={str(path)!r} holds {size} bytes but its metadata describes "
            f"{expected}: the data file is missing, truncated or replaced. Rebuild "
            "it with DiskLayerOperator.build(..., overwrite=True)."
        )
    return meta


# Metadata that must agree for a store to serve a problem, in the order checked,
# with the argument a mismatch points at.
_PROBLEM_KEYS = {
    "spec_digest": "spec",
    "square": "x2",
    "x1_digest": "x1",
    "x2_digest": "x2",
    "shape": "x1",
}
_STORE_KEYS = {"dtype": "dtype", "compute_dtype": "compute_dtype"}


def _problem_keys(meta: dict[str, Any], *, store: bool) -> dict[str, Any]:
    keys = {**_PROBLEM_KEYS, **(_STORE_KEYS if store else {})}
    return {k: meta[k] for k in keys}


def _verify(path: Path, found: dict[str, Any], expected: dict[str, Any]) -> None:
    """Raise naming the first mismatch between a store's metadata and a problem."""
    names = {**_PROBLEM_KEYS, **_STORE_KEYS}
    for key, want in expected.items():
        if found.get(key) == want:
            continue
        name = names[key]
        if key == "spec_digest":
            detail = f"it holds kernels for {found.get('spec')}"
        elif key in _STORE_KEYS:
            detail = f"it stores {key}={found.get(key)!r}, not {want!r}"
        else:
            detail = f"it was computed for other {name} inputs"
        raise NFTKInputError(
            f"path={str(path)!r} does not match this problem's {name}: {detail}. "
            "Pass the same spec and inputs it was built with, or build a new "
            "store (another path)."
        )
