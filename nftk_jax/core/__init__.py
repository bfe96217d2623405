"""core layer (see docs/architecture.md): validation, io, checkpoint files and the
package's input-error classes, which every other folder imports from here."""

from ._checkpoint import CheckpointError
from ._errors import (
    NFTKDependencyError,
    NFTKFileNotFoundError,
    NFTKInputError,
    NFTKTypeError,
)
from ._identity import describe

__all__ = [
    "CheckpointError",
    "NFTKDependencyError",
    "NFTKFileNotFoundError",
    "NFTKInputError",
    "NFTKTypeError",
    "describe",
]
