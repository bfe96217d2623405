r"""The learner's linear solver and CG preconditioner, as option objects.

``solver=`` takes :class:`Auto` (default), :class:`Dense`, :class:`CG` or
:class:`MatrixFree`, or their names; the iterative ones carry the CG tolerance,
iteration cap and a preconditioner option: :class:`Cholesky` (default),
:class:`Nystrom` or :class:`NoPreconditioner` (names ``'cholesky'``, ``'nystrom'``,
``'none'``). All are validated once, at construction.

Example:
    >>> from nftk_jax.mkl import CG, Nystrom
    >>> CG(tol=1e-8, preconditioner=Nystrom(rank=200))
    CG(tol=1e-08, maxiter=None, preconditioner=Nystrom(rank=200))
    >>> CG(preconditioner="none").preconditioner
    NoPreconditioner()
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ..core import NFTKInputError, check_positive_float, check_positive_int
from ..linalg import DEFAULT_DENSE_MAX_N
from ._registry import from_registry, make_registry, same_as_default

__all__ = [
    "CG",
    "PRECONDITIONER_REGISTRY",
    "PRECONDITIONERS",
    "SOLVERS",
    "SOLVER_REGISTRY",
    "Auto",
    "Cholesky",
    "Dense",
    "MatrixFree",
    "NoPreconditioner",
    "Nystrom",
    "as_solver",
    "with_kind",
]


def _linalg():
    from .. import linalg

    return linalg


# -- preconditioners -----------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class Cholesky:
    """One Cholesky factor of the mean-kernel system, shared by all classes
    (:func:`~nftk_jax.linalg.cholesky_preconditioner`); :math:`n^2` floats."""

    name: ClassVar[str] = "cholesky"

    def build(self, theta, reference, *, ridge, operator, memory_budget):
        """The preconditioner of the mean kernel of ``reference (d, L)``."""
        linalg = _linalg()
        n = theta.shape[-1]
        # Factor and inverse in float64 cost 24 n^2 bytes at once; past half the
        # memory budget the operator path keeps them in float32.
        budget = linalg.memory_budget_or_default(memory_budget)
        pdt = np.float32 if operator and 24 * n * n > budget // 2 else None
        return linalg.cholesky_preconditioner(theta, reference, ridge=ridge, dtype=pdt)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Nystrom:
    """Rank-``rank`` Nyström approximation of the mean kernel, pivoted-Cholesky
    landmarks (:func:`~nftk_jax.linalg.nystrom_preconditioner`); :math:`O(n\\,m)`
    floats; needs the cached kernels."""

    name: ClassVar[str] = "nystrom"
    rank: int = 500  # m >= 1 landmarks (clipped to n)

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int | np.integer):
            raise NFTKInputError(
                f"Nystrom(rank=...) must be an integer, got {self.rank!r}."
            )
        if self.rank < 1:
            raise NFTKInputError(
                f"Nystrom(rank=...) must be >= 1, got {self.rank}; pass a rank "
                "(e.g. 500) or preconditioner='none'."
            )
        object.__setattr__(self, "rank", int(self.rank))

    def build(self, theta, reference, *, ridge, operator, memory_budget):
        """The preconditioner of the mean kernel of ``reference (d, L)``."""
        if operator:
            raise NFTKInputError(
                "preconditioner='nystrom' needs the cached kernels; with a layer "
                "operator use preconditioner='cholesky' or 'none'."
            )
        rank = min(self.rank, theta.shape[-1])
        return _linalg().nystrom_preconditioner(
            theta, reference, ridge=ridge, rank=rank
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoPreconditioner:
    """Plain CG: no extra memory, slow when the ridge is small."""

    name: ClassVar[str] = "none"

    def build(self, theta, reference, *, ridge, operator, memory_budget):
        """``None``: nothing to build."""
        return None


#: ``preconditioner=`` names and their option classes.
PRECONDITIONER_REGISTRY = make_registry(Cholesky, Nystrom, NoPreconditioner)


def _as_preconditioner(value: Any, rank: Any = 500) -> Any:
    if value is None:
        return NoPreconditioner()
    if value == "nystrom":
        rank = check_positive_int(rank, "precondition_rank", minimum=0)
        if rank < 1:
            raise NFTKInputError(
                f"precondition_rank must be >= 1 with preconditioner='nystrom', got "
                f"{rank}; pass a rank (e.g. 500) or preconditioner='none'."
            )
        return Nystrom(rank=rank)
    return from_registry(value, PRECONDITIONER_REGISTRY, "preconditioner")


# -- solvers -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class Dense:
    """Batched Cholesky of the ``d`` systems; the factor serves the value and the
    adjoint solve; :math:`O(d n^3)` per evaluated Omega, :math:`d n^2` floats."""

    name: ClassVar[str] = "dense"
    cached_kernels: ClassVar[bool] = True  # works on kernels held in memory

    def resolve(self, *, n, depth, n_classes, memory_budget, operator) -> Dense:
        """The solver that runs (itself)."""
        return _on_cached_kernels(self, operator)


def _on_cached_kernels(solver: Any, operator: bool) -> Any:
    """``solver``, which needs the cached kernels, unless ``theta`` is an operator."""
    if operator:
        raise NFTKInputError(
            f"solver={solver.name!r} needs the cached (L, n, n) kernels, but theta "
            "is a layer operator; use solver='matrix_free' (or 'auto')."
        )
    return solver


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Iterative:
    """Shared settings of the CG-based solvers."""

    cached_kernels: ClassVar[bool] = True
    tol: float = 1e-10  # relative residual target of every CG solve, > 0
    maxiter: int | None = None  # CG iteration cap; None: 10 n (with a warning)
    preconditioner: Any = dataclasses.field(default_factory=Cholesky)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tol", check_positive_float(self.tol, "tol"))
        if self.maxiter is not None:
            object.__setattr__(
                self, "maxiter", check_positive_int(self.maxiter, "maxiter")
            )
        object.__setattr__(
            self, "preconditioner", _as_preconditioner(self.preconditioner)
        )

    def _as(self, cls: type) -> Any:
        if type(self) is cls:
            return self
        return cls(
            tol=self.tol, maxiter=self.maxiter, preconditioner=self.preconditioner
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class CG(_Iterative):
    """Batched conjugate gradients on the cached kernels, warm-started at the
    previous Omega's solution (:func:`~nftk_jax.linalg.solve_cg`)."""

    name: ClassVar[str] = "cg"

    def resolve(self, *, n, depth, n_classes, memory_budget, operator) -> CG:
        """The solver that runs (itself)."""
        return _on_cached_kernels(self, operator)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MatrixFree(_Iterative):
    """CG on layer operators (kernels on disk or recomputed): every product is one
    pass over the operator; the Nyström preconditioner is not available."""

    name: ClassVar[str] = "matrix_free"
    cached_kernels: ClassVar[bool] = False

    def resolve(self, *, n, depth, n_classes, memory_budget, operator) -> MatrixFree:
        """The solver that runs (itself)."""
        if not operator:
            raise NFTKInputError(
                "solver='matrix_free' needs theta as a layer operator (from "
                "nftk_jax.kernels._operators, or fit_mkl(..., kernel_storage='disk' "
                "or 'recompute')); with cached kernels use 'auto', 'dense' or 'cg'."
            )
        return self


@dataclasses.dataclass(frozen=True, kw_only=True)
class Auto(_Iterative):
    """:class:`Dense` while ``(L + d) n^2`` floats fit the memory budget and
    ``n <= dense_max_n``, else :class:`CG` (:class:`MatrixFree` on layer
    operators) with these settings (:func:`~nftk_jax.linalg.plan_solver`)."""

    name: ClassVar[str] = "auto"
    dense_max_n: int = DEFAULT_DENSE_MAX_N  # largest n factorised densely

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.dense_max_n, "dense_max_n")

    def resolve(self, *, n, depth, n_classes, memory_budget, operator) -> Any:
        """The solver that runs for ``n`` points, ``depth`` kernels, ``n_classes``."""
        if operator:
            return self._as(MatrixFree)
        kw = {} if memory_budget is None else {"memory_budget": memory_budget}
        plan = _linalg().plan_solver(
            n, depth, n_classes, dtype=np.float64, dense_max_n=self.dense_max_n, **kw
        )
        # The kernels are already in memory here, so a matrix-free plan means CG.
        return Dense() if plan == "dense" else self._as(CG)


#: ``solver=`` names and their option classes.
SOLVER_REGISTRY = make_registry(Auto, Dense, CG, MatrixFree)
#: Names accepted by ``solver=``.
SOLVERS = tuple(SOLVER_REGISTRY)
#: Names accepted by ``preconditioner=`` (CG only).
PRECONDITIONERS = tuple(PRECONDITIONER_REGISTRY)


def with_kind(solver: Any, kind: str) -> Any:
    """The solver ``kind`` (a name of :data:`SOLVER_REGISTRY` other than
    ``'auto'``) with the CG settings of ``solver``."""
    if kind == "dense":
        return Dense()
    base = solver if isinstance(solver, _Iterative) else CG()
    return base._as(SOLVER_REGISTRY[kind])


#: The loose keywords of ``fit_mkl_kernels`` that configure CG, and their defaults.
CG_KEYWORDS = {
    "cg_tol": 1e-10,
    "cg_maxiter": None,
    "preconditioner": "cholesky",
    "precondition_rank": 500,
}


def as_solver(solver: Any = "auto", **cg_keywords: Any) -> Any:
    """The solver object for ``solver`` (an object, or a name of
    :data:`SOLVER_REGISTRY` configured by the loose keywords of
    :data:`CG_KEYWORDS`, whose defaults fill the ones not given).

    Example:
        >>> as_solver("cg", cg_tol=1e-8, preconditioner="none")
        CG(tol=1e-08, maxiter=None, preconditioner=NoPreconditioner())
    """
    unknown = set(cg_keywords) - set(CG_KEYWORDS)
    if unknown:
        raise TypeError(f"as_solver got unexpected keywords {sorted(unknown)}")
    loose = {**CG_KEYWORDS, **cg_keywords}
    cg_tol, cg_maxiter = loose["cg_tol"], loose["cg_maxiter"]
    preconditioner, precondition_rank = (
        loose["preconditioner"],
        loose["precondition_rank"],
    )
    if not isinstance(solver, str):
        same_as_default(loose, CG_KEYWORDS, "solver")
        return from_registry(solver, SOLVER_REGISTRY, "solver")
    cls = type(from_registry(solver, SOLVER_REGISTRY, "solver"))
    tol = check_positive_float(cg_tol, "cg_tol")
    if cg_maxiter is not None:
        check_positive_int(cg_maxiter, "cg_maxiter")
    check_positive_int(precondition_rank, "precondition_rank", minimum=0)
    pre = _as_preconditioner(preconditioner, precondition_rank)
    if cls is Dense:
        return Dense()
    return cls(tol=tol, maxiter=cg_maxiter, preconditioner=pre)
