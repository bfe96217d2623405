"""The package's user-input errors.

Every error that bad input (an argument, a file, a missing optional dependency)
raises derives from :class:`NFTKInputError`, a :class:`ValueError`. The ``nftk``
command prints these as one line and exits with code 2; any other exception is a bug
and keeps its traceback.

Subclasses also derive from the built-in exception a caller would expect, so code
that catches ``TypeError``, ``FileNotFoundError`` or ``ImportError`` keeps working.

Example:
    >>> from nftk_jax.core import NFTKInputError, NFTKTypeError
    >>> issubclass(NFTKTypeError, NFTKInputError)
    True
    >>> issubclass(NFTKTypeError, TypeError)
    True
"""

from __future__ import annotations

__all__ = [
    "NFTKDependencyError",
    "NFTKFileNotFoundError",
    "NFTKInputError",
    "NFTKTypeError",
]


class NFTKInputError(ValueError):
    """Bad user input; the message names the argument and the fix."""


class NFTKTypeError(NFTKInputError, TypeError):
    """An argument of the wrong type."""


class NFTKFileNotFoundError(NFTKInputError, FileNotFoundError):
    """A file or directory the user pointed at does not exist."""


class NFTKDependencyError(NFTKInputError, ImportError):
    """An optional dependency needed for the requested feature is not installed."""
