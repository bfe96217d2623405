"""mkl layer (see docs/architecture.md)."""

from ._constraints import CONSTRAINT_REGISTRY, CONSTRAINTS, Box, L1Ball, NonNeg, Simplex
from ._fit import fit_mkl, refit_alpha, validation_split
from ._learner import fit_mkl_kernels
from ._objectives import OBJECTIVES
from ._options import LearnerOptions, learner_options
from ._result import MKLHistory, MKLStep, NFTKResult
from ._ridge import RidgeSelection, default_ridge_grid, grid_edge, select_ridge
from ._select_spec import SpecSelection, select_spec
from ._solver_options import (
    CG,
    PRECONDITIONER_REGISTRY,
    SOLVER_REGISTRY,
    SOLVERS,
    Auto,
    Cholesky,
    Dense,
    MatrixFree,
    NoPreconditioner,
    Nystrom,
)
from ._stability import (
    OmegaStability,
    fit_split,
    omega_stability,
    rank_correlation,
    resample_splits,
    summarise_omegas,
)
from ._steps import STEP_RULE_REGISTRY, Armijo, Fixed, Optax
from ._stopping import Stopping
from ._uncertainty import gaussian_class_probabilities, posterior_variance

__all__ = [
    "CG",
    "CONSTRAINTS",
    "CONSTRAINT_REGISTRY",
    "PRECONDITIONER_REGISTRY",
    "SOLVER_REGISTRY",
    "STEP_RULE_REGISTRY",
    "Armijo",
    "Auto",
    "Box",
    "Cholesky",
    "Dense",
    "Fixed",
    "L1Ball",
    "LearnerOptions",
    "MatrixFree",
    "NoPreconditioner",
    "NonNeg",
    "Nystrom",
    "Optax",
    "Simplex",
    "Stopping",
    "learner_options",
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
