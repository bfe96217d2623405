"""core layer (see docs/architecture.md): validation, io, checkpoint files and the
package's input-error classes, which every other folder imports from here."""

from ._buffers import aligned_empty, take_blocks
from ._checkpoint import (
    CheckpointError,
    load_checkpoint,
    problem_digest,
    save_checkpoint,
)
from ._errors import (
    NFTKDependencyError,
    NFTKFileNotFoundError,
    NFTKInputError,
    NFTKTypeError,
)
from ._identity import describe
from ._io import (
    atomic_path,
    check_writable_dir,
    ensure_writable_dir,
    jsonable,
    write_json,
    write_npy,
)
from ._progress import progress_bar
from ._validation import (
    as_real_array,
    check_inputs,
    check_positive_float,
    check_positive_int,
    check_positive_number,
    resolve_dtype,
)

__all__ = [
    "CheckpointError",
    "NFTKDependencyError",
    "NFTKFileNotFoundError",
    "NFTKInputError",
    "NFTKTypeError",
    "aligned_empty",
    "as_real_array",
    "atomic_path",
    "check_inputs",
    "check_positive_float",
    "check_positive_int",
    "check_positive_number",
    "check_writable_dir",
    "describe",
    "ensure_writable_dir",
    "jsonable",
    "load_checkpoint",
    "problem_digest",
    "progress_bar",
    "resolve_dtype",
    "save_checkpoint",
    "take_blocks",
    "write_json",
    "write_npy",
]
