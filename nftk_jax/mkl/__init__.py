"""mkl layer (see docs/architecture.md)."""

from ._constraints import CONSTRAINT_REGISTRY, CONSTRAINTS, Box, L1Ball, NonNeg, Simplex
from ._fit import fit_mkl
from ._learner import fit_mkl_kernels
from ._loo_omega import LOOOmega, learn_omega_loo
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
from ._split import array_kernels, learn_and_refit, refit_alpha, validation_split
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
    "LOOOmega",
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
    "NFTKClassifier",
    "NFTKRegressor",
    "NFTKResult",
    "OBJECTIVES",
    "OmegaStability",
    "RidgeSelection",
    "SOLVERS",
    "SpecSelection",
    "array_kernels",
    "default_ridge_grid",
    "fit_mkl",
    "fit_mkl_kernels",
    "fit_split",
    "gaussian_class_probabilities",
    "grid_edge",
    "learn_and_refit",
    "learn_omega_loo",
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
