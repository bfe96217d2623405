"""linalg layer (see docs/architecture.md)."""

from ._krr import (
    KRRSolution,
    check_omega,
    check_ridge,
    cholesky_with_jitter,
    combine_kernels,
    encode_targets,
    krr_fit,
    krr_predict,
)
from ._nystrom_krr import (
    NormalEquations,
    accumulate_normal_equations,
    nystrom_predict,
    solve_normal_equations,
)
from ._solvers import (
    CholeskyPreconditioner,
    NystromPreconditioner,
    SolveResult,
    check_system,
    cholesky_preconditioner,
    default_memory_budget,
    memory_budget_or_default,
    nystrom_preconditioner,
    plan_solver,
    solve_cg,
    solve_cg_matrix_free,
    solve_dense,
)

__all__ = [
    "CholeskyPreconditioner",
    "KRRSolution",
    "NormalEquations",
    "NystromPreconditioner",
    "SolveResult",
    "accumulate_normal_equations",
    "check_omega",
    "check_ridge",
    "check_system",
    "cholesky_preconditioner",
    "cholesky_with_jitter",
    "combine_kernels",
    "default_memory_budget",
    "encode_targets",
    "krr_fit",
    "krr_predict",
    "memory_budget_or_default",
    "nystrom_preconditioner",
    "nystrom_predict",
    "plan_solver",
    "solve_cg",
    "solve_cg_matrix_free",
    "solve_dense",
    "solve_normal_equations",
]
