"""All the learner's settings as one value: :class:`LearnerOptions`.

``fit_mkl_kernels`` takes each setting either as an option object or in the loose
form users pass today (strings and numbers); :func:`learner_options` turns the
loose form into the objects once, so that what runs after it (the learner, the
refit, ``fit_mkl``) receives one validated value instead of re-listing keywords.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._constraints import as_constraint
from ._solver_options import as_solver
from ._steps import as_step_rule
from ._stopping import as_stopping

__all__ = ["LearnerOptions", "learner_options"]


class LearnerOptions(NamedTuple):
    """The option objects of one fit, each validated at construction."""

    constraint: Any  # NonNeg | Simplex | L1Ball | Box: the feasible set of Omega
    step_rule: Any  # Armijo | Fixed | Optax: how the step is chosen
    stopping: Any  # Stopping: rel_tol, grad_tol, max_steps
    solver: Any  # Auto | Dense | CG | MatrixFree, with its CG settings


def learner_options(
    *,
    constraint: Any = "simplex",
    radius: Any = 1.0,
    lower: Any = 0.0,
    step_rule: Any = None,
    learning_rate: Any = None,
    optimizer: Any = None,
    max_backtracks: Any = 40,
    stopping: Any = None,
    steps: Any = 100,
    tol: Any = 1e-5,
    grad_tol: Any = None,
    solver: Any = "auto",
    cg_tol: Any = 1e-10,
    cg_maxiter: Any = None,
    preconditioner: Any = "cholesky",
    precondition_rank: Any = 500,
) -> LearnerOptions:
    """The :class:`LearnerOptions` of ``fit_mkl_kernels``' keywords.

    Example:
        >>> learner_options(constraint="box", radius=2.0, solver="cg").solver.name
        'cg'
    """
    return LearnerOptions(
        constraint=as_constraint(constraint, radius=radius, lower=lower),
        step_rule=as_step_rule(
            step_rule,
            learning_rate=learning_rate,
            optimizer=optimizer,
            max_backtracks=max_backtracks,
        ),
        stopping=as_stopping(stopping, steps=steps, tol=tol, grad_tol=grad_tol),
        solver=as_solver(
            solver,
            cg_tol=cg_tol,
            cg_maxiter=cg_maxiter,
            preconditioner=preconditioner,
            precondition_rank=precondition_rank,
        ),
    )
