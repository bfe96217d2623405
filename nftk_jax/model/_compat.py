"""The one place that imports ``neural_tangents``.

neural-tangents 0.6.5, the newest release, was written against JAX 0.4. Later JAX
releases moved or removed a handful of names it imports at module level. This module
provides each missing name *only where JAX no longer has it* (every patch is a no-op
on a JAX that still carries the name), then imports neural-tangents with its
TensorFlow-only ``experimental`` subpackage kept lazy, so that TensorFlow is loaded
only if a user touches ``neural_tangents.experimental`` themselves.

What moved, and what is provided here:

* ``jax.core.{Jaxpr, JaxprEqn, Literal, Var, Primitive, ClosedJaxpr}`` now live in
  ``jax.extend.core``; they are aliased back onto ``jax.core``.
* ``jax.util`` was removed (JAX 0.8); a module with length-checked ``safe_map`` and
  ``safe_zip`` is registered as ``jax.util``.
* ``jax.interpreters.ad.zeros_like_p`` (nt registers rules for it at import) is
  provided as an inert primitive; ``ad.source_info_util`` points at
  ``jax.extend.source_info_util``; ``ad.config`` at ``jax.config``;
  ``ad.reducing_transposes`` is an empty dict.
* ``Primitive.map_primitive`` / ``Primitive.call_primitive`` default to ``False``.
* ``jax.core.DShapedArray`` (dynamic shapes, removed) is a placeholder class that no
  value is ever an instance of.
* nt's private pullback helper for the STRUCTURED_DERIVATIVES empirical NTK relied on
  the private ``ad.linearize`` whose signature changed; it is rebuilt on the public
  ``jax.linearize`` + ``jax.make_jaxpr``.

:func:`check` verifies every one of these facts and raises :class:`CompatError` that
names what moved, so a JAX upgrade that breaks the layer fails loudly.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.extend.core
from jax.interpreters import ad

__all__ = ["nt", "stax", "CompatError", "check", "PATCHES"]

#: Names of every patch applied on this JAX (empty on a JAX nt supports natively).
PATCHES: list[str] = []


class CompatError(ImportError):
    """neural-tangents cannot be made to work on the installed JAX."""


_MOVED_CORE_NAMES = ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive", "ClosedJaxpr")


def _safe_map(f: Callable, *args: Any) -> list:
    args = list(map(list, args))
    n = len(args[0])
    for arg in args[1:]:
        if len(arg) != n:
            raise ValueError(f"safe_map: length mismatch: {list(map(len, args))}")
    return list(map(f, *args))


def _safe_zip(*args: Any) -> list:
    args = list(map(list, args))
    n = len(args[0])
    for arg in args[1:]:
        if len(arg) != n:
            raise ValueError(f"safe_zip: length mismatch: {list(map(len, args))}")
    return list(zip(*args, strict=True))


def _patch_jax() -> None:
    for name in _MOVED_CORE_NAMES:
        if not hasattr(jax.core, name):
            if not hasattr(jax.extend.core, name):
                raise CompatError(
                    f"jax.core.{name} is in neither jax.core nor jax.extend.core on "
                    f"jax {jax.__version__}; the compatibility layer needs updating."
                )
            setattr(jax.core, name, getattr(jax.extend.core, name))
            PATCHES.append(f"jax.core.{name} <- jax.extend.core.{name}")

    if not hasattr(jax.core, "DShapedArray"):

        class DShapedArray:  # noqa: D401 - placeholder, never instantiated
            """Placeholder for the removed dynamic-shape aval type."""

        jax.core.DShapedArray = DShapedArray
        PATCHES.append("jax.core.DShapedArray <- placeholder")

    try:
        importlib.import_module("jax.util")
    except ImportError:
        util = types.ModuleType("jax.util")
        util.safe_map = _safe_map
        util.safe_zip = _safe_zip
        sys.modules["jax.util"] = util
        jax.util = util
        PATCHES.append("jax.util <- length-checked safe_map/safe_zip")

    if not hasattr(ad, "zeros_like_p"):
        ad.zeros_like_p = jax.extend.core.Primitive("zeros_like")
        PATCHES.append("jax.interpreters.ad.zeros_like_p <- inert primitive")
    if not hasattr(ad, "source_info_util"):
        import jax.extend.source_info_util as siu

        ad.source_info_util = siu
        PATCHES.append("jax.interpreters.ad.source_info_util <- jax.extend")
    if not hasattr(ad, "config"):
        ad.config = jax.config
        PATCHES.append("jax.interpreters.ad.config <- jax.config")
    if not hasattr(ad, "reducing_transposes"):
        ad.reducing_transposes = {}
        PATCHES.append("jax.interpreters.ad.reducing_transposes <- {}")

    prim = jax.extend.core.Primitive
    for attr in ("map_primitive", "call_primitive"):
        if not hasattr(prim, attr):
            setattr(prim, attr, False)
            PATCHES.append(f"Primitive.{attr} <- False")


class _LazyModule(types.ModuleType):
    """A module whose code runs on first access of a non-dunder attribute."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        self.__class__ = types.ModuleType  # stop being lazy before running the code
        self.__spec__.loader.exec_module(self)
        return getattr(self, attr)


def _lazy_experimental() -> None:
    """Register ``neural_tangents.experimental`` as a lazily executed module."""
    name = "neural_tangents.experimental"
    if name in sys.modules:
        return
    parent = importlib.util.find_spec("neural_tangents")
    if parent is None:
        raise CompatError(
            "neural_tangents is not installed; see README.md for the set-up command."
        )
    # Locate the subpackage without executing the parent's __init__ (which would
    # import it eagerly, and TensorFlow with it).
    spec = importlib.machinery.PathFinder.find_spec(
        name, parent.submodule_search_locations
    )
    if spec is None or spec.loader is None:  # pragma: no cover - broken install
        return
    module = _LazyModule(name)
    module.__spec__ = spec
    module.__file__ = spec.origin
    module.__loader__ = spec.loader
    module.__package__ = name
    module.__path__ = list(spec.submodule_search_locations or [])
    sys.modules[name] = module


def _make_pullback_helper(empirical: types.ModuleType) -> Callable:
    """nt's ``_get_primals_out_and_pullback`` on public ``jax.linearize``."""
    from jax.tree_util import tree_flatten, tree_unflatten

    def get_primals_out_and_pullback(fn, mode, _j_rules, _s_rules, _fwd, *primals_in):
        primals_in_flat, in_tree = tree_flatten(primals_in)

        def fn_flat(*flat):
            out = fn(*tree_unflatten(in_tree, flat))
            out_flat, out_tree_ = tree_flatten(out)
            out_trees.append(out_tree_)
            return out_flat

        out_trees: list = []
        with jax.disable_jit():
            primals_out_flat, f_jvp = jax.linearize(fn_flat, *primals_in_flat)
            closed = jax.make_jaxpr(f_jvp)(*primals_in_flat)
        primals_out = tree_unflatten(out_trees[0], primals_out_flat)
        jaxpr, consts = closed.jaxpr, closed.consts

        def pullback_fn(*cts_in):
            cts_in, _ = tree_flatten(cts_in)
            dummy_args = [ad.UndefinedPrimal(v.aval) for v in jaxpr.invars]
            cts_out = empirical._backward_pass(
                jaxpr,
                mode=mode,
                consts=consts,
                primals_in=dummy_args,
                cotangents_in=tuple(cts_in),
                _j_rules=_j_rules,
                _s_rules=_s_rules,
                _fwd=_fwd,
            )
            return tree_unflatten(in_tree, cts_out)

        return primals_out, pullback_fn

    return get_primals_out_and_pullback


def _import_nt() -> types.ModuleType:
    _patch_jax()
    _lazy_experimental()
    try:
        module = importlib.import_module("neural_tangents")
    except ImportError as e:
        raise CompatError(
            f"neural_tangents failed to import on jax {jax.__version__} even with "
            f"the compatibility patches ({e!r}). Install the supported range given in "
            "pyproject.toml, or update nftk_jax/_compat.py."
        ) from e
    from neural_tangents._src import empirical

    if not hasattr(empirical, "_get_primals_out_and_pullback"):
        raise CompatError(
            "neural_tangents._src.empirical._get_primals_out_and_pullback is gone; "
            "the structured-derivatives empirical NTK patch needs updating."
        )
    if "_get_primals_out_and_pullback" not in getattr(empirical, "_nftk_patched", ()):
        empirical._get_primals_out_and_pullback = _make_pullback_helper(empirical)
        empirical._nftk_patched = ("_get_primals_out_and_pullback",)
        PATCHES.append("nt empirical pullback <- jax.linearize + jax.make_jaxpr")
    return module


def check() -> None:
    """Verify that every name the compatibility layer relies on is in place.

    Raises:
        CompatError: naming the first missing piece and where it used to live.
    """
    for name in _MOVED_CORE_NAMES + ("DShapedArray", "ShapedArray"):
        if not hasattr(jax.core, name):
            raise CompatError(f"jax.core.{name} missing after patching")
    for name in ("zeros_like_p", "source_info_util", "config", "reducing_transposes"):
        if not hasattr(ad, name):
            raise CompatError(f"jax.interpreters.ad.{name} missing after patching")
    for name in ("linearize", "make_jaxpr"):
        if not hasattr(jax, name):
            raise CompatError(f"jax.{name} is gone; the empirical NTK patch needs it")
    util = sys.modules.get("jax.util")
    if util is None or not hasattr(util, "safe_map") or not hasattr(util, "safe_zip"):
        raise CompatError("jax.util.safe_map / safe_zip missing after patching")
    for name in ("FanOut", "parallel", "serial", "Dense", "Relu"):
        if not hasattr(stax, name):
            raise CompatError(f"neural_tangents.stax.{name} is missing")


nt = _import_nt()
stax = nt.stax
