"""NFT-K in JAX: layerwise neural tangent kernels and learned per-class mixtures.

The top level holds what a user of the method needs (``__all__``, docs/api.md);
the advanced pieces (tiling, layer operators, solvers and preconditioners, normal
equations, registries, loaders) live in the sub-namespaces ``nftk_jax.model``,
``.kernels``, ``.linalg``, ``.mkl``, ``.finite``, ``.experiment``, ``.data`` and
``.core``. Names that used to be re-exported here still resolve, with a
``DeprecationWarning`` that names their new home.
"""

from . import experiment, finite, kernels, linalg, mkl, model
from .core import CheckpointError as CheckpointError
from .core import NFTKInputError as NFTKInputError
from .experiment import interpretability_matrices as interpretability_matrices
from .experiment import plot_omega_heatmaps as plot_omega_heatmaps
from .experiment import run_scalable_fit as run_scalable_fit
from .finite import compare_widths as compare_widths
from .finite import nftk_network as nftk_network
from .finite import ridge_to_weight_decay as ridge_to_weight_decay
from .finite import train_network as train_network
from .kernels import layerwise_kernels as layerwise_kernels
from .kernels import layerwise_matvec as layerwise_matvec
from .linalg import krr_fit as krr_fit
from .linalg import krr_predict as krr_predict
from .mkl import CG as CG
from .mkl import Armijo as Armijo
from .mkl import Box as Box
from .mkl import Fixed as Fixed
from .mkl import L1Ball as L1Ball
from .mkl import MatrixFree as MatrixFree
from .mkl import NFTKResult as NFTKResult
from .mkl import Nystrom as Nystrom
from .mkl import Optax as Optax
from .mkl import Simplex as Simplex
from .mkl import Stopping as Stopping
from .mkl import fit_mkl as fit_mkl
from .mkl import fit_mkl_kernels as fit_mkl_kernels
from .mkl import (
    gaussian_class_probabilities as gaussian_class_probabilities,
)
from .mkl import omega_stability as omega_stability
from .mkl import posterior_variance as posterior_variance
from .mkl import select_ridge as select_ridge
from .mkl import select_spec as select_spec
from .model import MLP as MLP
from .model import RNN as RNN

__version__ = "0.1.0"

__all__ = [
    # architecture and kernels
    "MLP",
    "RNN",
    "layerwise_kernels",
    "layerwise_matvec",
    # Theorem 1 for a fixed Omega
    "krr_fit",
    "krr_predict",
    "select_ridge",
    # learning Omega
    "fit_mkl",
    "fit_mkl_kernels",
    "NFTKResult",
    "NFTKClassifier",
    "NFTKRegressor",
    "select_spec",
    "omega_stability",
    "posterior_variance",
    "gaussian_class_probabilities",
    # options of fit_mkl / fit_mkl_kernels that carry a setting
    "CG",
    "MatrixFree",
    "Nystrom",
    "Armijo",
    "Fixed",
    "Optax",
    "Stopping",
    "Simplex",
    "L1Ball",
    "Box",
    # interpretability, finite networks, full-scale data
    "interpretability_matrices",
    "plot_omega_heatmaps",
    "nftk_network",
    "train_network",
    "compare_widths",
    "ridge_to_weight_decay",
    "run_scalable_fit",
    # errors
    "NFTKInputError",
    "CheckpointError",
]

# The scikit-learn estimators load on first use (``nftk_jax.mkl`` imports them
# lazily: scikit-learn takes seconds to import), so `import nftk_jax` stays fast.
_LAZY = ("NFTKClassifier", "NFTKRegressor")

#: Names the top level used to re-export -> the sub-namespace that holds them now.
_MOVED = {
    **dict.fromkeys(
        ["ACTIVATIONS", "CompatError", "Network", "RNN_ACTIVATIONS"]
        + ["pack_sequences", "unpack_sequences"],
        model,
    ),
    **dict.fromkeys(
        ["DEFAULT_MEMORY_BUDGET", "ArrayLayerOperator", "DiskLayerOperator"]
        + ["KernelTile", "LayerOperator", "StreamedLayerOperator"]
        + ["choose_block_size", "kernel_tiles"],
        kernels,
    ),
    **dict.fromkeys(
        ["CholeskyPreconditioner", "KRRSolution", "NormalEquations"]
        + ["NystromPreconditioner", "SolveResult", "accumulate_normal_equations"]
        + ["cholesky_preconditioner", "combine_kernels", "encode_targets"]
        + ["nystrom_preconditioner", "nystrom_predict", "plan_solver", "solve_cg"]
        + ["solve_cg_matrix_free", "solve_dense", "solve_normal_equations"],
        linalg,
    ),
    **dict.fromkeys(
        ["CONSTRAINTS", "OBJECTIVES", "MKLHistory", "MKLStep", "OmegaStability"]
        + ["RidgeSelection"],
        mkl,
    ),
    **dict.fromkeys(
        ["PaperModeResult", "TrainResult", "WidthStudy", "combined_empirical_ntk"]
        + ["head_empirical_ntks", "plot_width_study", "train_paper_mode"]
        + ["weight_decay_to_ridge", "FiniteNetwork"],
        finite,
    ),
    **dict.fromkeys(
        ["ScalePlan", "plan_scalable", "plot_omega_trajectory", "row_normalise"],
        experiment,
    ),
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(mkl, name)
        globals()[name] = value
        return value
    if name in _MOVED:
        import warnings

        home = _MOVED[name]
        warnings.warn(
            f"{__name__}.{name} moved to {home.__name__}.{name}; import it from there.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(home, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
