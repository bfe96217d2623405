"""NFT-K in JAX: layerwise neural tangent kernels and learned per-class mixtures.

The public API is re-exported here; implementation modules are private.
"""

from ._compat import CompatError as CompatError
from ._kernels import DEFAULT_MEMORY_BUDGET as DEFAULT_MEMORY_BUDGET
from ._kernels import KernelTile as KernelTile
from ._kernels import choose_block_size as choose_block_size
from ._kernels import kernel_tiles as kernel_tiles
from ._kernels import layerwise_kernels as layerwise_kernels
from ._kernels import layerwise_matvec as layerwise_matvec
from ._spec import ACTIVATIONS as ACTIVATIONS
from ._spec import MLP as MLP
from ._spec import Network as Network

__version__ = "0.1.0"
