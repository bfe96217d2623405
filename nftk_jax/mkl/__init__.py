"""mkl layer (see docs/architecture.md)."""

from ._constraints import CONSTRAINTS
from ._fit import (
    SOLVERS,
    MKLHistory,
    MKLStep,
    NFTKResult,
    fit_mkl,
    fit_mkl_kernels,
    refit_alpha,
    validation_split,
)
from ._objectives import OBJECTIVES
from ._ridge import RidgeSelection, default_ridge_grid, grid_edge, select_ridge
from ._select_spec import SpecSelection, select_spec
from ._stability import (
    OmegaStability,
    fit_split,
    omega_stability,
    rank_correlation,
    resample_splits,
    summarise_omegas,
)
from ._uncertainty import gaussian_class_probabilities, posterior_variance

__all__ = [
    "CONSTRAINTS",
    "MKLHistory",
    "MKLStep",
    "NFTKResult",
    "OBJECTIVES",
    "OmegaStability",
    "RidgeSelection",
    "SOLVERS",
    "SpecSelection",
    "default_ridge_grid",
    "fit_mkl",
    "fit_mkl_kernels",
    "fit_split",
    "gaussian_class_probabilities",
    "grid_edge",
    "omega_stability",
    "posterior_variance",
    "rank_correlation",
    "refit_alpha",
    "resample_splits",
    "select_ridge",
    "select_spec",
    "summarise_omegas",
    "validation_split",
]
