"""The one place that imports ``neural_tangents``, kept out of other JAX code's way.

neural-tangents 0.6.5, the newest release, was written against JAX 0.4. Later JAX
releases moved or removed a handful of names it uses. This module supplies each
missing name *only where JAX no longer has it*, and only where neural-tangents
looks for it, so that other code in the process sees JAX exactly as installed.
Every adaptation is listed in :data:`PATCHES` with its scope (docs/compat.md):

* ``"import"``: names neural-tangents binds at module level (``from jax.core import
  Jaxpr``, ``from jax.util import safe_map``, rules keyed on
  ``ad.zeros_like_p``). They are added to ``jax.core``, ``jax.interpreters.ad`` and
  ``sys.modules["jax.util"]`` while ``import neural_tangents`` runs, then removed.
* ``"nt"``: names neural-tangents reads at call time through its own module globals
  (``core.DShapedArray``, ``ad.source_info_util``, ``ad.config``,
  ``ad.reducing_transposes``) and two private helpers (the structured-derivatives
  pullback, the FLOP count behind ``NtkImplementation.AUTO``). Its ``empirical``
  module gets read-through views of ``jax.core`` / ``jax.interpreters.ad`` and the
  two rebuilt helpers; the JAX modules themselves are untouched.
* ``"backward pass"``: ``Primitive.call_primitive`` / ``map_primitive`` (class
  attributes nt reads on every equation) are ``False`` only while nt's
  structured-derivatives backward pass runs (a lock serialises the window).

:func:`check` verifies every one of these facts and raises :class:`CompatError`
naming what moved, so a JAX upgrade that breaks the layer fails loudly.
``neural_tangents.experimental`` (TensorFlow-only) is registered as a lazy module, so
TensorFlow is loaded only if a user touches it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.core
import jax.extend.core
from jax.interpreters import ad

from ..core import NFTKDependencyError, NFTKInputError

__all__ = ["nt", "stax", "CompatError", "check", "PATCHES", "Patch"]


class Patch(NamedTuple):
    """One adaptation of neural-tangents to the installed JAX.

    Attributes:
        target: what neural-tangents sees (``"jax.core.Jaxpr"``, ``"nt: ad.config"``).
        source: what it is made of.
        scope: ``"import"`` (visible in JAX only while neural-tangents is
            imported), ``"nt"`` (neural-tangents' own module globals) or
            ``"backward pass"`` (while nt's structured-derivatives pass runs).
    """

    target: str
    source: str
    scope: str


#: Every adaptation made on this JAX (empty on a JAX nt supports natively).
PATCHES: list[Patch] = []


class CompatError(NFTKDependencyError):
    """neural-tangents cannot be made to work on the installed JAX."""


#: Names nt imports from ``jax.core`` at module level.
_IMPORTED_CORE_NAMES = (
    "AbstractValue",
    "Jaxpr",
    "JaxprEqn",
    "Literal",
    "Primitive",
    "ShapedArray",
    "Value",
    "Var",
)
#: Class attributes nt reads on ``eqn.primitive`` in its backward pass.
_PRIMITIVE_FLAGS = ("call_primitive", "map_primitive")


def _safe_map(f: Callable, *args: Any) -> list:
    args = list(map(list, args))
    n = len(args[0])
    for arg in args[1:]:
        if len(arg) != n:
            raise NFTKInputError(f"safe_map: length mismatch: {list(map(len, args))}")
    return list(map(f, *args))


def _safe_zip(*args: Any) -> list:
    args = list(map(list, args))
    n = len(args[0])
    for arg in args[1:]:
        if len(arg) != n:
            raise NFTKInputError(f"safe_zip: length mismatch: {list(map(len, args))}")
    return list(zip(*args, strict=True))


def _has_jax_util() -> bool:
    try:
        importlib.import_module("jax.util")
    except ImportError:
        return False
    return True


def _import_time_names() -> list[tuple[Any, str, Any, str]]:
    """``(owner, attribute, value, source)`` for each import-time name JAX lacks."""
    names = []
    for name in _IMPORTED_CORE_NAMES:
        if hasattr(jax.core, name):
            continue
        if not hasattr(jax.extend.core, name):
            raise CompatError(
                f"jax.core.{name} is in neither jax.core nor jax.extend.core on "
                f"jax {jax.__version__}; the compatibility layer needs updating."
            )
        value = getattr(jax.extend.core, name)
        names.append((jax.core, name, value, f"jax.extend.core.{name}"))
    if not hasattr(ad, "zeros_like_p"):
        inert = jax.extend.core.Primitive("zeros_like")
        names.append((ad, "zeros_like_p", inert, "inert primitive (rule-table key)"))
    if not _has_jax_util():
        util = types.ModuleType("jax.util")
        util.safe_map, util.safe_zip = _safe_map, _safe_zip
        names.append((jax, "util", util, "module with length-checked safe_map/zip"))
    return names


def _qualified(owner: Any, attr: str) -> str:
    return f"{owner.__name__}.{attr}"


@contextlib.contextmanager
def _import_window(names: list[tuple[Any, str, Any, str]]) -> Iterator[None]:
    """Make ``names`` visible in JAX for the ``with`` body only."""
    added: list[tuple[Any, str]] = []
    try:
        for owner, attr, value, _ in names:
            setattr(owner, attr, value)
            added.append((owner, attr))
            if owner is jax and attr == "util":
                sys.modules["jax.util"] = value
        yield
    finally:
        for owner, attr in reversed(added):
            delattr(owner, attr)
            if owner is jax and attr == "util":
                sys.modules.pop("jax.util", None)


class _ModuleView(types.ModuleType):
    """A read-through view of a module with a few extra attributes of its own."""

    def __init__(self, base: types.ModuleType, extras: dict[str, Any]) -> None:
        super().__init__(base.__name__, base.__doc__)
        self.__dict__["_view_of"] = base
        self.__dict__.update(extras)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["_view_of"], attr)


class _ConfigView:
    """``jax.config`` as nt's backward pass reads it.

    nt's own debug check under ``jax_enable_checks`` calls ``jax.core.get_aval``,
    ``jax.core.lattice_join`` and ``ShapedArray.strip_named_shape``, all removed from
    JAX; this view reports the flag as off to that one check only. JAX's own checks
    still follow the real flag.
    """

    jax_enable_checks = False

    def __getattr__(self, attr: str) -> Any:
        return getattr(jax.config, attr)


class _DShapedArray:
    """Placeholder for the removed dynamic-shape aval type (nothing is one)."""


def _core_view() -> tuple[_ModuleView, list[Patch]]:
    extras: dict[str, Any] = {}
    for name in ("Var", "Primitive", "DShapedArray"):
        if not hasattr(jax.core, name):
            extras[name] = getattr(jax.extend.core, name, _DShapedArray)
    patches = [
        Patch(
            f"nt: core.{k}",
            "placeholder class" if v is _DShapedArray else f"jax.extend.core.{k}",
            "nt",
        )
        for k, v in extras.items()
    ]
    return _ModuleView(jax.core, extras), patches


def _nt_checks_work() -> bool:
    """Whether JAX still has what nt's ``jax_enable_checks`` branch calls."""
    return (
        hasattr(jax.core, "get_aval")
        and hasattr(jax.core, "lattice_join")
        and hasattr(jax.core.ShapedArray, "strip_named_shape")
    )


def _ad_view() -> tuple[_ModuleView, list[Patch]]:
    import jax.extend.source_info_util as siu

    candidates = {
        "source_info_util": (siu, "jax.extend.source_info_util"),
        "config": (_ConfigView(), "jax.config, jax_enable_checks read as False"),
        "reducing_transposes": ({}, "{} (no reducing transposes)"),
    }
    extras, patches = {}, []
    for name, (value, source) in candidates.items():
        if (name == "config" and not _nt_checks_work()) or not hasattr(ad, name):
            extras[name] = value
            patches.append(Patch(f"nt: ad.{name}", source, "nt"))
    return _ModuleView(ad, extras), patches


_flag_lock = threading.RLock()


@contextlib.contextmanager
def _primitive_flags() -> Iterator[None]:
    """``Primitive.call_primitive`` / ``map_primitive`` = False inside the body."""
    prim = jax.extend.core.Primitive
    with _flag_lock:
        missing = [a for a in _PRIMITIVE_FLAGS if a not in vars(prim)]
        try:
            for attr in missing:
                setattr(prim, attr, False)
            yield
        finally:
            for attr in missing:
                delattr(prim, attr)


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
            with _primitive_flags():
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


def _flops(f: Callable, optimize: bool, *args: Any, **kwargs: Any) -> float:
    """FLOPs of ``f`` per XLA's cost analysis (a dict now; a list of one before)."""
    lowered = jax.jit(f).lower(*args, **kwargs)
    analysis = (
        lowered.compile().cost_analysis() if optimize else lowered.cost_analysis()
    )
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else {}
    if not analysis or "flops" not in analysis:
        raise CompatError(
            "XLA's cost analysis reports no 'flops' on this backend, so "
            "implementation=0 (AUTO) cannot choose; pass implementation=1, 2 or 3."
        )
    return float(analysis["flops"])


def _adapt_empirical(empirical: types.ModuleType) -> list[Patch]:
    """Point nt's ``empirical`` module at views and rebuilt helpers."""
    for name in ("_get_primals_out_and_pullback", "_get_flops", "core", "ad"):
        if not hasattr(empirical, name):
            raise CompatError(
                f"neural_tangents._src.empirical.{name} is gone; the empirical NTK "
                "adaptation in nftk_jax/model/_compat.py needs updating."
            )
    core_view, patches = _core_view()
    ad_view, ad_patches = _ad_view()
    empirical.core, empirical.ad = core_view, ad_view
    empirical._get_primals_out_and_pullback = _make_pullback_helper(empirical)
    empirical._get_flops = _flops
    flags = [a for a in _PRIMITIVE_FLAGS if a not in vars(jax.extend.core.Primitive)]
    return [
        *patches,
        *ad_patches,
        Patch("nt: empirical pullback", "jax.linearize + jax.make_jaxpr", "nt"),
        Patch("nt: empirical _get_flops", "cost_analysis() as dict or list", "nt"),
        *(Patch(f"Primitive.{a}", "False", "backward pass") for a in flags),
    ]


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


def _import_nt() -> types.ModuleType:
    names = _import_time_names()
    _lazy_experimental()
    try:
        with _import_window(names):
            module = importlib.import_module("neural_tangents")
    except ImportError as e:
        raise CompatError(
            f"neural_tangents failed to import on jax {jax.__version__} even with "
            f"the compatibility layer ({e!r}). Install the supported range given in "
            "pyproject.toml, or update nftk_jax/model/_compat.py."
        ) from e
    from neural_tangents._src import empirical

    PATCHES.extend(
        Patch(_qualified(owner, attr), source, "import")
        for owner, attr, _, source in names
    )
    PATCHES.extend(_adapt_empirical(empirical))
    return module


def check() -> None:
    """Verify that every name the compatibility layer relies on is in place.

    Raises:
        CompatError: naming the first missing piece and where it used to live.
    """
    from neural_tangents._src import empirical

    for name in ("DShapedArray", "ShapedArray", "Var", "Primitive"):
        if not hasattr(empirical.core, name):
            raise CompatError(f"neural-tangents' view of jax.core lacks {name}")
    needed = ("source_info_util", "config", "reducing_transposes", "UndefinedPrimal")
    for name in needed:
        if not hasattr(empirical.ad, name):
            raise CompatError(
                f"neural-tangents' view of jax.interpreters.ad lacks {name}"
            )
    for name in ("linearize", "make_jaxpr"):
        if not hasattr(jax, name):
            raise CompatError(f"jax.{name} is gone; the empirical NTK patch needs it")
    for patch in PATCHES:
        if patch.scope == "import" and _import_name_visible(patch.target):
            raise CompatError(f"{patch.target} is still visible after the import")
    for name in ("FanOut", "parallel", "serial", "Dense", "Relu"):
        if not hasattr(stax, name):
            raise CompatError(f"neural_tangents.stax.{name} is missing")


def _import_name_visible(target: str) -> bool:
    if target == "jax.util":
        return "jax.util" in sys.modules or hasattr(jax, "util")
    owner, _, attr = target.rpartition(".")
    return hasattr(sys.modules[owner], attr)


nt = _import_nt()
stax = nt.stax
