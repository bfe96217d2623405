"""Layer operators (in memory, streamed, on disk) against the dense layerwise kernels.

Reference: ``layerwise_kernels`` in float64 and its products formed with NumPy.
The disk store keeps float32 by default, so its reference is the float64 product
with the float32-rounded kernels.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from nftk_jax import MLP, layerwise_kernels
from nftk_jax.kernels import _operators as ops
from nftk_jax.kernels._operators import (
    ArrayLayerOperator,
    DiskLayerOperator,
    StreamedLayerOperator,
)

from helpers import assert_close, random_inputs

# Erf keeps self-kernels free of the arc-cosine cancellation, so diagonal entries
# agree across tilings to float64 round-off as well (see test_kernels.py).
SPEC = MLP(depth=3, activation="erf", b_std=0.2)
N1, N2, M = 23, 17, 4
X1 = random_inputs(N1, M, seed=30)
X2 = random_inputs(N2, M, seed=31)
# 5 rows per panel: 23 = 4 * 5 + 3 rows, so the last panel is short.
PANEL_ROWS = 5
KINDS = ["array", "streamed", "disk32", "disk64"]


def _panel_budget(n2: int, itemsize: int) -> int:
    return PANEL_ROWS * SPEC.depth * n2 * itemsize


def _operator(kind, square, tmp_path, **kwargs):
    x2 = None if square else X2
    if kind == "array":
        return ArrayLayerOperator(layerwise_kernels(SPEC, X1, x2, devices=False))
    if kind == "streamed":
        return StreamedLayerOperator(SPEC, X1, x2, block_size=7, **kwargs)
    dtype = np.float32 if kind == "disk32" else np.float64
    n2 = N1 if square else N2
    return DiskLayerOperator.build(
        SPEC,
        X1,
        x2,
        path=tmp_path / "theta.bin",
        dtype=dtype,
        block_size=4,
        panel_budget=_panel_budget(n2, np.dtype(dtype).itemsize),
        **kwargs,
    )


def _reference(kind, square):
    """Dense kernels as the operator stores them, in float64; and the tolerance."""
    theta = np.asarray(layerwise_kernels(SPEC, X1, None if square else X2))
    if kind == "disk32":
        return theta.astype(np.float32).astype(np.float64), 1e-10
    return theta, 1e-12 if kind == "disk64" else 1e-10


def _close(actual, expected, tol):
    expected = np.asarray(expected)
    assert_close(actual, expected, rtol=tol, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("square", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_operator_equals_dense(kind, square, tmp_path):
    op = _operator(kind, square, tmp_path)
    theta, tol = _reference(kind, square)
    L, n1, n2 = theta.shape
    assert op.shape == (L, n1, n2) and op.square == square
    assert op.dtype == (np.float32 if kind == "disk32" else np.float64)
    rng = np.random.default_rng(32)
    v, u = rng.normal(size=(n2, 3)), rng.normal(size=(n1, 2))
    w = np.array([0.5, 0.0, 2.0])

    got = op.matmul(v)
    assert got.dtype == np.float64
    _close(got, np.einsum("lij,jk->lik", theta, v), tol)
    _close(op.rmatmul(u), np.einsum("lij,ik->ljk", theta, u), tol)
    combined = op.combine(w)
    assert combined.dtype == np.float64
    _close(combined, np.einsum("l,lij->ij", w, theta), tol)
    assert op.combine(w, dtype=np.float32).dtype == np.float32
    if square:
        _close(op.diagonal(), np.diagonal(theta, axis1=1, axis2=2), tol)
    else:
        with pytest.raises(ValueError, match="square"):
            op.diagonal()


@pytest.mark.parametrize("devices", [False, None])
def test_streamed_square_is_symmetric_and_sharded(devices):
    op = StreamedLayerOperator(SPEC, X1, block_size=6, devices=devices)
    theta, _ = _reference("streamed", True)
    u = np.random.default_rng(33).normal(size=(N1, 2))
    assert np.array_equal(np.asarray(op.rmatmul(u)), np.asarray(op.matmul(u)))
    _close(op.matmul(u), np.einsum("lij,jk->lik", theta, u), 1e-10)
    combined = op.combine(np.ones(3))
    assert np.array_equal(combined, combined.T)
    _close(combined, theta.sum(0), 1e-10)


def test_streamed_float32_tiles_give_float64_products():
    op = StreamedLayerOperator(SPEC, X1, X2, block_size=6, dtype=np.float32)
    theta32 = layerwise_kernels(SPEC, X1, X2, block_size=6, dtype=np.float32)
    v = np.random.default_rng(34).normal(size=(N2, 2))
    got = op.matmul(v)
    assert op.dtype == np.float32 and got.dtype == np.float64
    _close(got, np.einsum("lij,jk->lik", np.asarray(theta32, np.float64), v), 1e-12)


def test_disk_layout_is_row_panels(tmp_path):
    op = _operator("disk64", False, tmp_path)
    theta, _ = _reference("disk64", False)
    assert op.panel_rows == PANEL_ROWS
    raw = np.fromfile(op.path, dtype=np.float64)
    assert raw.size == theta.size  # a cross store has no diagonal
    start = 0
    for p0 in range(0, N1, PANEL_ROWS):
        block = theta[:, p0 : p0 + PANEL_ROWS]
        _close(raw[start : start + block.size].reshape(block.shape), block, 1e-12)
        start += block.size
    meta = json.loads(op.path.with_name("theta.bin.json").read_text())
    assert meta["shape"] == [3, N1, N2] and meta["panel_rows"] == PANEL_ROWS
    assert meta["dtype"] == "float64" and meta["spec"] == repr(SPEC)


def test_disk_products_never_map_the_file(tmp_path, monkeypatch):
    op = _operator("disk32", True, tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("np.memmap must not be used")

    monkeypatch.setattr(np, "memmap", forbidden)
    v = np.ones((N1, 1))
    op.matmul(v), op.rmatmul(v), op.combine(np.ones(3)), op.diagonal()


def test_disk_reopen_reuses_without_recomputing(tmp_path, monkeypatch):
    op = _operator("disk32", True, tmp_path)
    meta_path = op.path.with_name(op.path.name + ".json")
    stamps = (op.path.stat().st_mtime_ns, meta_path.stat().st_mtime_ns)
    v = np.random.default_rng(35).normal(size=(N1, 2))
    before = np.asarray(op.matmul(v))

    def no_tiles(*args, **kwargs):
        raise AssertionError("kernels recomputed")

    monkeypatch.setattr(ops, "_compute_tile", no_tiles)
    again = _operator("disk32", True, tmp_path)  # build finds the store: reuse
    opened = DiskLayerOperator.open(op.path, spec=SPEC, x1=X1)
    assert (op.path.stat().st_mtime_ns, meta_path.stat().st_mtime_ns) == stamps
    for other in (again, opened):
        assert other.shape == op.shape and other.panel_rows == op.panel_rows
        assert np.array_equal(np.asarray(other.matmul(v)), before)


def test_disk_open_rejects_another_problem(tmp_path):
    op = _operator("disk32", True, tmp_path)
    path = op.path
    cases = [
        ({"spec": SPEC, "x1": X1 + 1e-9}, "x1"),
        ({"spec": MLP(depth=3, activation="relu"), "x1": X1}, "spec"),
        ({"spec": SPEC, "x1": X1, "x2": X1}, "x2"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=f"{name}.*build a new store") as err:
            DiskLayerOperator.open(path, **kwargs)
        assert str(path) in str(err.value)
    # Building over it with other inputs: refused unless overwrite=True.
    with pytest.raises(ValueError, match="overwrite=True"):
        DiskLayerOperator.build(SPEC, X1[:-1], path=path)
    rebuilt = DiskLayerOperator.build(
        SPEC, X1[:-1], path=path, dtype=np.float64, overwrite=True
    )
    assert rebuilt.shape == (3, N1 - 1, N1 - 1) and rebuilt.dtype == np.float64
    DiskLayerOperator.open(path, spec=SPEC, x1=X1[:-1])


def test_disk_incomplete_or_truncated_store_is_refused(tmp_path):
    missing = tmp_path / "none.bin"
    with pytest.raises(ValueError, match="none.bin.*DiskLayerOperator.build"):
        DiskLayerOperator.open(missing, spec=SPEC, x1=X1)
    op = _operator("disk32", False, tmp_path)
    with open(op.path, "r+b") as f:
        f.truncate(op.path.stat().st_size - 4)
    with pytest.raises(ValueError, match="truncated.*overwrite=True"):
        DiskLayerOperator.open(op.path, spec=SPEC, x1=X1, x2=X2)
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"not kernels")
    with pytest.raises(ValueError, match="no metadata.*overwrite=True"):
        DiskLayerOperator.build(SPEC, X1, path=foreign)


def test_disk_interrupted_build_leaves_no_file(tmp_path, monkeypatch):
    real = ops._compute_tile
    calls = []

    def failing(plan, i0, j0):
        calls.append((i0, j0))
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(plan, i0, j0)

    monkeypatch.setattr(ops, "_compute_tile", failing)
    with pytest.raises(KeyboardInterrupt):
        _operator("disk32", True, tmp_path)
    assert os.listdir(tmp_path) == []


X = random_inputs(6, 3, seed=36)
THETA = np.asarray(layerwise_kernels(SPEC, X))
BAD_CALLS = [
    # (call, argument name the message must contain)
    (
        lambda op: op.matmul(np.ones((5, 2))),
        r"^v must have shape \(6, k\), got \(5, 2\)",
    ),
    (lambda op: op.matmul(np.ones(6)), r"^v must have shape \(6, k\), got \(6,\)"),
    (lambda op: op.rmatmul(np.ones((7, 1))), r"^u must have shape \(6, k\)"),
    (
        lambda op: op.combine(np.array([1.0, -1.0, 1.0])),
        r"^w must be finite and non-negative",
    ),
    (lambda op: op.combine(np.ones(2)), r"^w must have shape \(L,\)"),
    (lambda op: op.combine(np.array([1.0, np.nan, 1.0])), r"^w must be finite"),
    (lambda op: op.combine(np.ones(3), dtype=np.float16), "dtype"),
]


@pytest.mark.parametrize("call,name", BAD_CALLS)
@pytest.mark.parametrize("kind", ["array", "streamed", "disk"])
def test_invalid_arguments_name_the_argument(kind, call, name, tmp_path):
    if kind == "array":
        op = ArrayLayerOperator(THETA)
    elif kind == "streamed":
        op = StreamedLayerOperator(SPEC, X)
    else:
        op = DiskLayerOperator.build(SPEC, X, path=tmp_path / "k.bin")
    with pytest.raises(ValueError, match=name):
        call(op)


BAD_CONSTRUCTIONS = [
    (lambda p: ArrayLayerOperator(THETA[0]), "theta"),
    (lambda p: ArrayLayerOperator(THETA.astype(np.float16)), "theta"),
    (lambda p: StreamedLayerOperator(SPEC, X[0]), "x1"),
    (lambda p: StreamedLayerOperator(SPEC, X, np.ones((2, 4))), "x2"),
    (lambda p: StreamedLayerOperator(SPEC, X, block_size=0), "block_size"),
    (lambda p: DiskLayerOperator.build(SPEC, X, path=p, panel_budget=8), "panel"),
    (lambda p: DiskLayerOperator.build(SPEC, X, path=p, dtype=np.int8), "dtype"),
    (lambda p: DiskLayerOperator.build(SPEC, X[None], path=p), "x1"),
]


@pytest.mark.parametrize("call,name", BAD_CONSTRUCTIONS)
def test_invalid_construction_names_the_argument(call, name, tmp_path):
    with pytest.raises(ValueError, match=name):
        call(tmp_path / "k.bin")


def test_repr_names_the_shape():
    assert "L=3, n1=6, n2=6" in repr(ArrayLayerOperator(THETA))


def test_fingerprint_identifies_the_kernels(tmp_path):
    streamed = StreamedLayerOperator(SPEC, X, block_size=4)
    assert streamed.fingerprint == StreamedLayerOperator(SPEC, X).fingerprint
    assert streamed.fingerprint != StreamedLayerOperator(SPEC, X + 1).fingerprint
    assert streamed.fingerprint != StreamedLayerOperator(SPEC, X, X).fingerprint
    assert streamed.fingerprint != StreamedLayerOperator(MLP(depth=3), X).fingerprint
    array = ArrayLayerOperator(THETA)
    assert array.fingerprint == ArrayLayerOperator(THETA.copy()).fingerprint
    assert array.fingerprint != ArrayLayerOperator(THETA * 2).fingerprint
    disk = DiskLayerOperator.build(SPEC, X, path=tmp_path / "k.bin")
    reopened = DiskLayerOperator.open(tmp_path / "k.bin", spec=SPEC, x1=X)
    assert disk.fingerprint == reopened.fingerprint
    fingerprints = {array.fingerprint, streamed.fingerprint, disk.fingerprint}
    assert len(fingerprints) == 3
