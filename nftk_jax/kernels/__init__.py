"""kernels layer (see docs/architecture.md)."""

from ._layerwise import (
    DEFAULT_MEMORY_BUDGET,
    KernelTile,
    choose_block_size,
    kernel_tiles,
    layerwise_kernels,
    layerwise_matvec,
)
from ._operators import (
    ArrayLayerOperator,
    DiskLayerOperator,
    LayerOperator,
    StreamedLayerOperator,
    is_layer_operator,
)

__all__ = [
    "ArrayLayerOperator",
    "DEFAULT_MEMORY_BUDGET",
    "DiskLayerOperator",
    "KernelTile",
    "LayerOperator",
    "StreamedLayerOperator",
    "choose_block_size",
    "is_layer_operator",
    "kernel_tiles",
    "layerwise_kernels",
    "layerwise_matvec",
]
