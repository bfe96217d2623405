"""NFT-K in JAX: layerwise neural tangent kernels and learned per-class mixtures.

The public API is re-exported here; implementation modules are private.
"""

from ._checkpoint import CheckpointError as CheckpointError
from ._compat import CompatError as CompatError
from ._constraints import CONSTRAINTS as CONSTRAINTS
from ._figures import interpretability_matrices as interpretability_matrices
from ._figures import plot_omega_heatmaps as plot_omega_heatmaps
from ._figures import plot_omega_trajectory as plot_omega_trajectory
from ._figures import row_normalise as row_normalise
from ._finite import FiniteNetwork as FiniteNetwork
from ._finite import PaperModeResult as PaperModeResult
from ._finite import TrainResult as TrainResult
from ._finite import combined_empirical_ntk as combined_empirical_ntk
from ._finite import head_empirical_ntks as head_empirical_ntks
from ._finite import nftk_network as nftk_network
from ._finite import ridge_to_weight_decay as ridge_to_weight_decay
from ._finite import train_network as train_network
from ._finite import train_paper_mode as train_paper_mode
from ._finite import weight_decay_to_ridge as weight_decay_to_ridge
from ._kernels import DEFAULT_MEMORY_BUDGET as DEFAULT_MEMORY_BUDGET
from ._kernels import KernelTile as KernelTile
from ._kernels import choose_block_size as choose_block_size
from ._kernels import kernel_tiles as kernel_tiles
from ._kernels import layerwise_kernels as layerwise_kernels
from ._kernels import layerwise_matvec as layerwise_matvec
from ._krr import KRRSolution as KRRSolution
from ._krr import combine_kernels as combine_kernels
from ._krr import encode_targets as encode_targets
from ._krr import krr_fit as krr_fit
from ._krr import krr_predict as krr_predict
from ._mkl import MKLHistory as MKLHistory
from ._mkl import MKLStep as MKLStep
from ._mkl import NFTKResult as NFTKResult
from ._mkl import fit_mkl as fit_mkl
from ._mkl import fit_mkl_kernels as fit_mkl_kernels
from ._objectives import OBJECTIVES as OBJECTIVES
from ._operators import ArrayLayerOperator as ArrayLayerOperator
from ._operators import DiskLayerOperator as DiskLayerOperator
from ._operators import LayerOperator as LayerOperator
from ._operators import StreamedLayerOperator as StreamedLayerOperator
from ._ridge import RidgeSelection as RidgeSelection
from ._ridge import select_ridge as select_ridge
from ._solvers import CholeskyPreconditioner as CholeskyPreconditioner
from ._solvers import NystromPreconditioner as NystromPreconditioner
from ._solvers import SolveResult as SolveResult
from ._solvers import cholesky_preconditioner as cholesky_preconditioner
from ._solvers import nystrom_preconditioner as nystrom_preconditioner
from ._solvers import plan_solver as plan_solver
from ._solvers import solve_cg as solve_cg
from ._solvers import solve_cg_matrix_free as solve_cg_matrix_free
from ._solvers import solve_dense as solve_dense
from ._spec import ACTIVATIONS as ACTIVATIONS
from ._spec import MLP as MLP
from ._spec import Network as Network
from ._width_study import WidthStudy as WidthStudy
from ._width_study import compare_widths as compare_widths
from ._width_study import plot_width_study as plot_width_study

__version__ = "0.1.0"

# scikit-learn costs seconds to import (it pulls in pandas and scipy.stats), so the
# scikit-learn estimators load on first use: `import nftk_jax` stays fast.
_LAZY = {"NFTKClassifier": "._estimators", "NFTKRegressor": "._estimators"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
