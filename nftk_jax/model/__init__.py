"""model layer (see docs/architecture.md)."""

from ._compat import CompatError, nt
from ._inputs import check_spec_inputs, input_features
from ._rnn import RNN, RNN_ACTIVATIONS
from ._sequences import as_packed, pack_sequences, packed_shape, unpack_sequences
from ._spec import ACTIVATIONS, MLP, Network

__all__ = [
    "ACTIVATIONS",
    "CompatError",
    "MLP",
    "Network",
    "RNN",
    "RNN_ACTIVATIONS",
    "as_packed",
    "check_spec_inputs",
    "input_features",
    "nt",
    "pack_sequences",
    "packed_shape",
    "unpack_sequences",
]
