"""A stable, JSON-able description of a configuration object, for checkpoint identity.

A checkpoint must only be resumed by the same problem. For plain settings (numbers,
strings) that is their value; for an optax optimiser it is its hyperparameters, which
live in the closures of its ``init``/``update`` functions. :func:`describe` walks
functions (qualified name, closure cells, defaults), ``functools.partial``, tuples
(named tuples keep their class), dicts, dataclasses and arrays (dtype, shape, SHA-256),
so ``optax.adam(0.05)`` and ``optax.adam(5.0)`` describe differently while two calls
of ``optax.adam(0.05)`` describe the same.

Example:
    >>> import optax
    >>> describe(optax.adam(0.05)) == describe(optax.adam(0.05))
    True
    >>> describe(optax.adam(0.05)) == describe(optax.adam(5.0))
    False
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import types
from typing import Any

import numpy as np

__all__ = ["describe"]

#: Deeper structures are described by their type only.
_MAX_DEPTH = 24


def _name(obj: Any) -> str:
    t = obj if isinstance(obj, type) else type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _array(obj: Any) -> dict[str, Any]:
    a = np.ascontiguousarray(np.asarray(obj))
    digest = hashlib.sha256(memoryview(a).cast("B")).hexdigest()
    return {"array": a.dtype.str, "shape": list(a.shape), "sha256": digest}


def _function(fn: types.FunctionType, walk) -> dict[str, Any]:
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(walk(cell.cell_contents))
        except ValueError:  # an empty cell
            cells.append("<empty>")
    return {
        "function": f"{fn.__module__}.{fn.__qualname__}",
        "closure": cells,
        "defaults": walk(fn.__defaults__),
        "kwdefaults": walk(fn.__kwdefaults__),
    }


def describe(obj: Any) -> Any:
    """JSON-able description of ``obj`` that changes when its settings change."""
    active: set[int] = set()

    def walk(x: Any, depth: int = 0) -> Any:
        if x is None or isinstance(x, (bool, int, str)):
            return x
        if isinstance(x, float):
            return repr(x)
        if isinstance(x, (np.ndarray, np.generic)) or hasattr(x, "__array__"):
            return _array(x)
        if isinstance(x, type):
            return {"type": _name(x)}
        if depth > _MAX_DEPTH or id(x) in active:
            return {"ref": _name(x)}
        active.add(id(x))
        try:
            return _compound(x, lambda y: walk(y, depth + 1))
        finally:
            active.discard(id(x))

    return walk(obj)


def _compound(x: Any, walk) -> Any:
    if isinstance(x, (tuple, list)):
        return {"sequence": _name(x), "items": [walk(v) for v in x]}
    if isinstance(x, dict):
        return {"mapping": [[repr(k), walk(v)] for k, v in sorted(x.items(), key=repr)]}
    if isinstance(x, functools.partial):
        return {"partial": walk(x.func), "args": walk(x.args), "kw": walk(x.keywords)}
    if isinstance(x, types.FunctionType):
        return _function(x, walk)
    if isinstance(x, types.MethodType):
        return {"method": walk(x.__func__), "self": walk(x.__self__)}
    wrapped = getattr(x, "__wrapped__", None)
    if wrapped is not None:  # jax.jit and functools.wraps wrappers
        return {"wrapper": _name(x), "wrapped": walk(wrapped)}
    if dataclasses.is_dataclass(x):
        fields = {f.name: walk(getattr(x, f.name)) for f in dataclasses.fields(x)}
        return {"object": _name(x), "fields": fields}
    state = getattr(x, "__dict__", None)
    if state is not None:
        return {"object": _name(x), "state": walk(dict(state))}
    return {"object": _name(x), "repr": repr(x) if " at 0x" not in repr(x) else ""}
