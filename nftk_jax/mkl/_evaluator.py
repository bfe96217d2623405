r"""The objective the learner descends, at one Omega: value, linear solves,
gradient, and how many of each it has done.

Every evaluated Omega needs the ``d`` solves with :math:`K_c + \rho I` (plus one
adjoint solve for ``'train_mse'``/``'val_mse'``). They all go through one function,
:func:`make_linear_solver`: a batched dense Cholesky (the factor serves the value
and the adjoint solve), or conjugate gradients from :mod:`nftk_jax.linalg._solvers`
warm-started at the previous step's solution, which changes little from one step
to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..linalg import cholesky_with_jitter, combine_kernels, worst_status
from ._objectives import ObjectiveEval, objective_gradient, objective_value
from ._problem import Problem
from ._solver_options import Dense

__all__ = ["Objective", "make_linear_solver"]


class Objective:
    r""":math:`J(\Omega)` of one :class:`~nftk_jax.mkl._problem.Problem`, solved with
    ``solver`` (the one that runs), projected with ``project``.

    Counts the Omegas evaluated (``n_evaluations``), the batched solves
    (``n_solves``) and keeps the status of every CG solve (``status``: the worst).
    """

    def __init__(self, problem: Problem, solver: Any, *, project, memory_budget):
        p = problem
        self.problem = p
        self.project = project
        # device_put aliases an aligned host array (jnp.asarray would copy it)
        self.theta = p.theta if p.operator else jax.device_put(p.theta)
        self.theta_val = p.theta_val
        if p.theta_val is not None and not p.operator:
            self.theta_val = jax.device_put(p.theta_val)
        self.Y = jnp.asarray(p.Y)
        self.Y_val = None if p.Y_val is None else jnp.asarray(p.Y_val)
        self.statuses: list[str] = []
        self.n_evaluations = 0
        self.n_solves = 0
        self._prepare = make_linear_solver(
            solver,
            self.theta,
            ridge=p.ridge,
            reference=p.omega_init,
            memory_budget=memory_budget,
            statuses=self.statuses,
        )

    @property
    def status(self) -> str:
        """The worst status of the linear solves so far."""
        return worst_status(*self.statuses)

    def evaluate(self, omega, alpha0) -> tuple[ObjectiveEval, Callable]:
        """The value at ``omega`` (``alpha0`` warm-starts CG) and its solver."""
        solve = self._prepare(omega)
        self.n_solves += 1
        self.n_evaluations += 1
        alpha = solve(self.Y, alpha0)
        ev = objective_value(
            self.problem.objective, omega, alpha, self.Y, ridge=self.problem.ridge,
            theta_val=self.theta_val, y_val=self.Y_val,
        )  # fmt: skip
        return ev, solve

    def gradient(self, omega, ev, solve, adj0) -> tuple[jax.Array, jax.Array]:
        """The gradient at ``omega`` and the adjoint solution (zeros if none)."""

        def adjoint_solve(rhs):
            self.n_solves += 1
            return solve(rhs, adj0)

        g, adj = objective_gradient(
            self.problem.objective, self.theta, omega, ev, adjoint_solve,
            ridge=self.problem.ridge, theta_val=self.theta_val,
        )  # fmt: skip
        return g, (jnp.zeros_like(ev.alpha) if adj is None else adj)

    def projected_gradient_norm(self, omega, g) -> float:
        r""":math:`\|\Omega - P(\Omega - \nabla J)\|_F`."""
        return float(jnp.linalg.norm(omega - self.project(omega - g)))

    def cond(self, omega) -> np.ndarray:
        r"""``(d,)`` condition numbers of :math:`K_c + \rho I` (cached kernels)."""
        rho = self.problem.ridge
        k = np.asarray(combine_kernels(self.theta, omega), dtype=np.float64)
        ev = np.linalg.eigvalsh(k)
        return (ev[:, -1] + rho) / np.maximum(ev[:, 0] + rho, 1e-300)


@jax.jit
def _cho_solve(chol, rhs):
    return jax.scipy.linalg.cho_solve((chol, True), rhs.T[..., None])[..., 0].T


def _dense_factor(theta: jax.Array, omega: jax.Array, ridge: float) -> jax.Array:
    """Batched Cholesky factors ``(d, n, n)`` of ``K_c + ridge I``, with jitter."""
    return cholesky_with_jitter(combine_kernels(theta, omega), ridge)[0]


#: ``prepare(omega) -> solve(rhs (n, d), x0 (n, d) | None) -> (n, d)``
Prepare = Callable[[jax.Array], Callable[[jax.Array, jax.Array | None], jax.Array]]


def make_linear_solver(
    solver: Any,
    theta: jax.Array,
    *,
    ridge: float,
    reference: Any = None,
    memory_budget: int | None = None,
    statuses: list[str] | None = None,
) -> Prepare:
    """The single place where the learner's linear solves are set up.

    ``solver`` is the solver that runs (:class:`Dense`, ``CG`` or ``MatrixFree``).
    Every CG solve appends its status (``'converged'``, ``'max_steps'``,
    ``'breakdown'``) to ``statuses`` when given.
    """
    if isinstance(solver, Dense):

        def prepare_dense(omega):
            chol = _dense_factor(theta, omega, ridge)
            return lambda rhs, x0=None: _cho_solve(chol, rhs)

        return prepare_dense

    from ..linalg import solve_cg

    L = theta.shape[0]
    operator = solver.name == "matrix_free"
    # Operators may store float32 kernels; their products (and CG) are float64.
    out_dtype = jnp.float64 if operator else theta.dtype
    ref = np.full((1, L), 1.0 / L) if reference is None else np.asarray(reference)
    # Built once per fit from the starting Omega: the mean kernel of any Omega is
    # close to it (the layer kernels are strongly correlated), and a fixed choice
    # keeps resumed fits bit-identical. CG is slow without one when the ridge is
    # small relative to the kernel.
    pre = solver.preconditioner.build(
        theta, ref, ridge=ridge, operator=operator, memory_budget=memory_budget
    )

    def prepare_cg(omega):
        # Products with the L layer kernels read L n^2 floats per iteration; with
        # the class kernels formed first, d n^2 (after (L + d) n^2 to form them).
        form = None if operator else L > 2 * omega.shape[0]
        # All L layers enter the products, also those no class uses: copying the
        # used ones (theta[used]) per evaluated Omega held up to L n^2 more floats
        # and took as long as the reads it saved (n = 3200, 5 of 10 layers used,
        # 20 iterations: 3.24 s with the copy, 3.25 s without).
        th, om = theta, omega

        def solve(rhs, x0=None):
            res = solve_cg(
                th,
                rhs,
                om,
                ridge=ridge,
                x0=x0,
                tol=solver.tol,
                maxiter=solver.maxiter,
                preconditioner=pre,
                form_kernels=form,
            )
            if statuses is not None:
                statuses.append(res.status)
            return jnp.asarray(res.alpha, dtype=out_dtype)

        return solve

    return prepare_cg
