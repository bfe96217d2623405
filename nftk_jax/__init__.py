"""NFT-K in JAX: layerwise neural tangent kernels and learned per-class mixtures.

The public API is re-exported here; implementation modules are private.
"""

from .core._checkpoint import CheckpointError as CheckpointError
from .experiment._figures import interpretability_matrices as interpretability_matrices
from .experiment._figures import plot_omega_heatmaps as plot_omega_heatmaps
from .experiment._figures import plot_omega_trajectory as plot_omega_trajectory
from .experiment._figures import row_normalise as row_normalise
from .experiment._plan import ScalePlan as ScalePlan
from .experiment._plan import plan_scalable as plan_scalable
from .experiment._run_scalable import run_scalable_fit as run_scalable_fit
from .finite._network import FiniteNetwork as FiniteNetwork
from .finite._network import PaperModeResult as PaperModeResult
from .finite._network import TrainResult as TrainResult
from .finite._network import combined_empirical_ntk as combined_empirical_ntk
from .finite._network import head_empirical_ntks as head_empirical_ntks
from .finite._network import nftk_network as nftk_network
from .finite._network import ridge_to_weight_decay as ridge_to_weight_decay
from .finite._network import train_network as train_network
from .finite._network import train_paper_mode as train_paper_mode
from .finite._network import weight_decay_to_ridge as weight_decay_to_ridge
from .finite._width_study import WidthStudy as WidthStudy
from .finite._width_study import compare_widths as compare_widths
from .finite._width_study import plot_width_study as plot_width_study
from .kernels._layerwise import DEFAULT_MEMORY_BUDGET as DEFAULT_MEMORY_BUDGET
from .kernels._layerwise import KernelTile as KernelTile
from .kernels._layerwise import choose_block_size as choose_block_size
from .kernels._layerwise import kernel_tiles as kernel_tiles
from .kernels._layerwise import layerwise_kernels as layerwise_kernels
from .kernels._layerwise import layerwise_matvec as layerwise_matvec
from .kernels._operators import ArrayLayerOperator as ArrayLayerOperator
from .kernels._operators import DiskLayerOperator as DiskLayerOperator
from .kernels._operators import LayerOperator as LayerOperator
from .kernels._operators import StreamedLayerOperator as StreamedLayerOperator
from .linalg._krr import KRRSolution as KRRSolution
from .linalg._krr import combine_kernels as combine_kernels
from .linalg._krr import encode_targets as encode_targets
from .linalg._krr import krr_fit as krr_fit
from .linalg._krr import krr_predict as krr_predict
from .linalg._nystrom_krr import NormalEquations as NormalEquations
from .linalg._nystrom_krr import (
    accumulate_normal_equations as accumulate_normal_equations,
)
from .linalg._nystrom_krr import nystrom_predict as nystrom_predict
from .linalg._nystrom_krr import solve_normal_equations as solve_normal_equations
from .linalg._solvers import CholeskyPreconditioner as CholeskyPreconditioner
from .linalg._solvers import NystromPreconditioner as NystromPreconditioner
from .linalg._solvers import SolveResult as SolveResult
from .linalg._solvers import cholesky_preconditioner as cholesky_preconditioner
from .linalg._solvers import nystrom_preconditioner as nystrom_preconditioner
from .linalg._solvers import plan_solver as plan_solver
from .linalg._solvers import solve_cg as solve_cg
from .linalg._solvers import solve_cg_matrix_free as solve_cg_matrix_free
from .linalg._solvers import solve_dense as solve_dense
from .mkl._constraints import CONSTRAINTS as CONSTRAINTS
from .mkl._fit import MKLHistory as MKLHistory
from .mkl._fit import MKLStep as MKLStep
from .mkl._fit import NFTKResult as NFTKResult
from .mkl._fit import fit_mkl as fit_mkl
from .mkl._fit import fit_mkl_kernels as fit_mkl_kernels
from .mkl._objectives import OBJECTIVES as OBJECTIVES
from .mkl._ridge import RidgeSelection as RidgeSelection
from .mkl._ridge import select_ridge as select_ridge
from .mkl._stability import OmegaStability as OmegaStability
from .mkl._stability import omega_stability as omega_stability
from .mkl._uncertainty import (
    gaussian_class_probabilities as gaussian_class_probabilities,
)
from .mkl._uncertainty import posterior_variance as posterior_variance
from .model._compat import CompatError as CompatError
from .model._rnn import RNN as RNN
from .model._rnn import RNN_ACTIVATIONS as RNN_ACTIVATIONS
from .model._sequences import pack_sequences as pack_sequences
from .model._sequences import unpack_sequences as unpack_sequences
from .model._spec import ACTIVATIONS as ACTIVATIONS
from .model._spec import MLP as MLP
from .model._spec import Network as Network

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
