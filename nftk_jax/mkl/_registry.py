"""The registries of the learner's option objects: ``name -> class``, and the rule
that turns a user's string into an object.

An option is a small frozen dataclass (keyword-only fields, validated once in
``__post_init__``), in the manner of ``lineax.CG(rtol, atol, max_steps)``. Each
kind of option has one registry, ``name -> class``, from which the command line's
``choices`` and the tables of docs/mkl.md are checked, so they cannot drift:
:data:`~nftk_jax.mkl._solver_options.SOLVER_REGISTRY`,
:data:`~nftk_jax.mkl._solver_options.PRECONDITIONER_REGISTRY`,
:data:`~nftk_jax.mkl._steps.STEP_RULE_REGISTRY` and
:data:`~nftk_jax.mkl._constraints.CONSTRAINT_REGISTRY`.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

from ..core import NFTKInputError

__all__ = ["from_registry", "make_registry", "same_as_default"]


def make_registry(*classes: type) -> Mapping[str, type]:
    """A read-only ``{cls.name: cls}`` mapping, in the order given."""
    return types.MappingProxyType({cls.name: cls for cls in classes})


def from_registry(value: Any, registry: Mapping[str, type], argname: str) -> Any:
    """``value`` if it is an option of ``registry``, else ``registry[value]()``.

    Raises:
        NFTKInputError: ``value`` is neither an option object of ``registry`` nor
            one of its names; the message names ``argname`` and the choices.
    """
    if isinstance(value, tuple(registry.values())):
        return value
    if isinstance(value, str) and value in registry:
        return registry[value]()
    kinds = ", ".join(cls.__name__ for cls in registry.values())
    raise NFTKInputError(
        f"{argname}={value!r} is unknown; choose one of {list(registry)} "
        f"(or pass an option object: {kinds})."
    )


def same_as_default(loose: dict[str, Any], defaults: dict[str, Any], what: str) -> None:
    """Refuse loose keywords that an option object passed as ``what`` would ignore.

    Raises:
        NFTKInputError: a keyword of ``loose`` differs from its default.
    """
    changed = sorted(k for k, v in loose.items() if v != defaults[k])
    if changed:
        raise NFTKInputError(
            f"{', '.join(changed)} cannot be combined with an option object passed "
            f"as {what}; set them on the object instead."
        )
