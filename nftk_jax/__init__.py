"""NFT-K in JAX: layerwise neural tangent kernels and learned per-class mixtures.

The public API is re-exported here; implementation modules are private.
"""

from .core import CheckpointError as CheckpointError
from .experiment import ScalePlan as ScalePlan
from .experiment import interpretability_matrices as interpretability_matrices
from .experiment import plan_scalable as plan_scalable
from .experiment import plot_omega_heatmaps as plot_omega_heatmaps
from .experiment import plot_omega_trajectory as plot_omega_trajectory
from .experiment import row_normalise as row_normalise
from .experiment import run_scalable_fit as run_scalable_fit
from .finite import FiniteNetwork as FiniteNetwork
from .finite import PaperModeResult as PaperModeResult
from .finite import TrainResult as TrainResult
from .finite import WidthStudy as WidthStudy
from .finite import combined_empirical_ntk as combined_empirical_ntk
from .finite import compare_widths as compare_widths
from .finite import head_empirical_ntks as head_empirical_ntks
from .finite import nftk_network as nftk_network
from .finite import plot_width_study as plot_width_study
from .finite import ridge_to_weight_decay as ridge_to_weight_decay
from .finite import train_network as train_network
from .finite import train_paper_mode as train_paper_mode
from .finite import weight_decay_to_ridge as weight_decay_to_ridge
from .kernels import DEFAULT_MEMORY_BUDGET as DEFAULT_MEMORY_BUDGET
from .kernels import ArrayLayerOperator as ArrayLayerOperator
from .kernels import DiskLayerOperator as DiskLayerOperator
from .kernels import KernelTile as KernelTile
from .kernels import LayerOperator as LayerOperator
from .kernels import StreamedLayerOperator as StreamedLayerOperator
from .kernels import choose_block_size as choose_block_size
from .kernels import kernel_tiles as kernel_tiles
from .kernels import layerwise_kernels as layerwise_kernels
from .kernels import layerwise_matvec as layerwise_matvec
from .linalg import CholeskyPreconditioner as CholeskyPreconditioner
from .linalg import KRRSolution as KRRSolution
from .linalg import NormalEquations as NormalEquations
from .linalg import NystromPreconditioner as NystromPreconditioner
from .linalg import SolveResult as SolveResult
from .linalg import (
    accumulate_normal_equations as accumulate_normal_equations,
)
from .linalg import cholesky_preconditioner as cholesky_preconditioner
from .linalg import combine_kernels as combine_kernels
from .linalg import encode_targets as encode_targets
from .linalg import krr_fit as krr_fit
from .linalg import krr_predict as krr_predict
from .linalg import nystrom_preconditioner as nystrom_preconditioner
from .linalg import nystrom_predict as nystrom_predict
from .linalg import plan_solver as plan_solver
from .linalg import solve_cg as solve_cg
from .linalg import solve_cg_matrix_free as solve_cg_matrix_free
from .linalg import solve_dense as solve_dense
from .linalg import solve_normal_equations as solve_normal_equations
from .mkl import CONSTRAINTS as CONSTRAINTS
from .mkl import OBJECTIVES as OBJECTIVES
from .mkl import MKLHistory as MKLHistory
from .mkl import MKLStep as MKLStep
from .mkl import NFTKResult as NFTKResult
from .mkl import OmegaStability as OmegaStability
from .mkl import RidgeSelection as RidgeSelection
from .mkl import fit_mkl as fit_mkl
from .mkl import fit_mkl_kernels as fit_mkl_kernels
from .mkl import (
    gaussian_class_probabilities as gaussian_class_probabilities,
)
from .mkl import omega_stability as omega_stability
from .mkl import posterior_variance as posterior_variance
from .mkl import select_ridge as select_ridge
from .model import ACTIVATIONS as ACTIVATIONS
from .model import MLP as MLP
from .model import RNN as RNN
from .model import RNN_ACTIVATIONS as RNN_ACTIVATIONS
from .model import CompatError as CompatError
from .model import Network as Network
from .model import pack_sequences as pack_sequences
from .model import unpack_sequences as unpack_sequences

__version__ = "0.1.0"

# scikit-learn costs seconds to import (it pulls in pandas and scipy.stats), so the
# scikit-learn estimators load on first use: `import nftk_jax` stays fast.
_LAZY = {"NFTKClassifier": ".mkl._estimators", "NFTKRegressor": ".mkl._estimators"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
