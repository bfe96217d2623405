"""The learner's option objects: validated at construction, interchangeable with
the strings users pass, one registry per kind that the CLI and docs follow."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import optax
import pytest
from mkl_cases import synthetic_problem

from nftk_jax import fit_mkl_kernels
from nftk_jax.cli import build_parser
from nftk_jax.cli._parser import cached_kernel_solvers
from nftk_jax.core import NFTKInputError
from nftk_jax.mkl import (
    CG,
    CONSTRAINT_REGISTRY,
    CONSTRAINTS,
    OBJECTIVES,
    PRECONDITIONER_REGISTRY,
    SOLVER_REGISTRY,
    SOLVERS,
    STEP_RULE_REGISTRY,
    Armijo,
    Auto,
    Box,
    Cholesky,
    Dense,
    Fixed,
    L1Ball,
    MatrixFree,
    NonNeg,
    NoPreconditioner,
    Nystrom,
    Optax,
    Simplex,
    Stopping,
    learner_options,
)

ROOT = Path(__file__).resolve().parents[1]
REGISTRIES = {
    "SOLVER_REGISTRY": SOLVER_REGISTRY,
    "PRECONDITIONER_REGISTRY": PRECONDITIONER_REGISTRY,
    "STEP_RULE_REGISTRY": STEP_RULE_REGISTRY,
    "CONSTRAINT_REGISTRY": CONSTRAINT_REGISTRY,
}


def _fit_choices(flag: str) -> tuple:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__.endswith("Action")
               and getattr(a, "choices", None) and "fit" in a.choices)  # fmt: skip
    action = next(a for a in sub.choices["fit"]._actions if flag in a.option_strings)
    return tuple(action.choices)


def test_cli_choices_are_the_registry_keys():
    cached = tuple(k for k, c in SOLVER_REGISTRY.items() if c.cached_kernels)
    assert _fit_choices("--solver") == cached == cached_kernel_solvers()
    assert set(SOLVER_REGISTRY) - set(cached) == {"matrix_free"}
    assert _fit_choices("--constraint") == tuple(CONSTRAINT_REGISTRY) == CONSTRAINTS
    assert _fit_choices("--objective") == OBJECTIVES
    assert SOLVERS == tuple(SOLVER_REGISTRY)


def test_docs_table_names_every_registry_entry():
    doc = (ROOT / "docs" / "mkl.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)` \| `(\w+)` \| `(\w+)` \|", doc, re.MULTILINE))
    listed = {
        (reg, name, cls.__name__)
        for reg, registry in REGISTRIES.items()
        for name, cls in registry.items()
    }
    assert rows == listed


def test_registry_names_match_classes():
    for registry in REGISTRIES.values():
        assert all(cls.name == name for name, cls in registry.items())
    with pytest.raises(TypeError):
        SOLVER_REGISTRY["x"] = Dense  # read-only


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: Nystrom(rank=0), r"Nystrom\(rank=...\) must be >= 1"),
        (lambda: Nystrom(rank=2.5), r"Nystrom\(rank=...\) must be an integer"),
        (lambda: CG(tol=0.0), r"^tol must be finite and > 0"),
        (lambda: CG(maxiter=0), r"^maxiter must be >= 1"),
        (lambda: CG(preconditioner="ilu"), r"^preconditioner='ilu' is unknown"),
        (lambda: MatrixFree(tol=-1), r"^tol must be"),
        (lambda: Auto(dense_max_n=0), r"^dense_max_n must be"),
        (lambda: Simplex(radius=0.0), r"^radius must be finite and > 0"),
        (lambda: Box(lower=2.0, radius=1.0), r"^lower must satisfy 0 <= lower"),
        (lambda: Armijo(max_backtracks=0), r"^max_backtracks must be"),
        (lambda: Armijo(sigma=1.5), r"sigma=...\) must lie in \(0, 1\)"),
        (lambda: Fixed(learning_rate=0.0), r"^learning_rate must be finite and > 0"),
        (lambda: Optax(optimizer=3), r"^optimizer must be an optax"),
        (lambda: Stopping(max_steps=0), r"^max_steps must be >= 1"),
        (lambda: Stopping(rel_tol=-1.0), r"^rel_tol must be finite and > 0"),
        (lambda: Stopping(grad_tol=0.0), r"^grad_tol must be finite and > 0"),
    ],
)
def test_options_are_validated_at_construction(build, match):
    with pytest.raises(NFTKInputError, match=match):
        build()


def test_options_are_frozen_and_normalised():
    cg = CG(tol=1, preconditioner="nystrom")
    assert cg.tol == 1.0 and cg.preconditioner == Nystrom(rank=500)
    assert CG(preconditioner=None).preconditioner == NoPreconditioner()
    assert Stopping(rel_tol=1e-3).grad_tol == 1e-3
    with pytest.raises(dataclasses.FrozenInstanceError):
        cg.tol = 2.0
    assert (
        Box(lower=0.5, radius=2).projection() is Box(lower=0.5, radius=2.0).projection()
    )


def test_loose_keywords_make_the_same_objects():
    opts = learner_options(
        constraint="box", radius=2.0, lower=0.5, learning_rate=0.1, steps=7,
        tol=1e-4, grad_tol=1e-3, solver="cg", cg_tol=1e-8, cg_maxiter=50,
        preconditioner="nystrom", precondition_rank=20,
    )  # fmt: skip
    assert opts.constraint == Box(lower=0.5, radius=2.0)
    assert opts.step_rule == Fixed(learning_rate=0.1)
    assert opts.stopping == Stopping(rel_tol=1e-4, grad_tol=1e-3, max_steps=7)
    assert opts.solver == CG(tol=1e-8, maxiter=50, preconditioner=Nystrom(rank=20))
    assert learner_options().step_rule == Armijo()
    assert learner_options(optimizer=optax.sgd(0.1)).step_rule.name == "optax"
    assert learner_options(solver="dense").solver == Dense()
    assert learner_options(constraint="nonneg").constraint == NonNeg()
    assert learner_options(constraint="l1_ball").constraint == L1Ball()
    assert (
        learner_options(preconditioner="cholesky").solver.preconditioner == Cholesky()
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(solver=CG(), cg_tol=1e-3), r"^cg_tol cannot be combined"),
        (dict(constraint=Simplex(), radius=2.0), r"^radius cannot be combined"),
        (dict(step_rule=Armijo(), learning_rate=0.1), r"^learning_rate cannot be"),
        (dict(stopping=Stopping(), steps=3), r"^steps cannot be combined"),
        (dict(step_rule="fixed"), r"^step_rule='fixed' needs learning_rate"),
        (dict(step_rule="optax"), r"^step_rule='optax' needs optimizer"),
        (dict(step_rule="armijo", learning_rate=0.1), r"^step_rule='armijo' chooses"),
        (dict(step_rule="newton"), r"^step_rule='newton' is unknown; choose one of"),
        (dict(solver="lu"), r"^solver='lu' is unknown; choose one of \['auto'"),
        (dict(stopping=5), r"^stopping must be a Stopping"),
    ],
)
def test_conflicts_and_unknown_names_are_refused(kwargs, match):
    with pytest.raises(NFTKInputError, match=match):
        learner_options(**kwargs)


@pytest.fixture(scope="module")
def problem():
    return synthetic_problem(n=30, m=15, d=3, seed=2)


@pytest.mark.parametrize(
    "strings, objects",
    [
        (
            dict(solver="cg", cg_tol=1e-9, preconditioner="nystrom",
                 precondition_rank=8, tol=1e-6, steps=5),
            dict(solver=CG(tol=1e-9, preconditioner=Nystrom(rank=8)),
                 stopping=Stopping(rel_tol=1e-6, max_steps=5)),
        ),
        (
            dict(constraint="box", radius=2.0, lower=0.1, learning_rate=0.05,
                 steps=4),
            dict(constraint=Box(lower=0.1, radius=2.0),
                 step_rule=Fixed(learning_rate=0.05), stopping=Stopping(max_steps=4)),
        ),
        (
            dict(solver="dense", max_backtracks=5, steps=4),
            dict(solver=Dense(), step_rule="armijo", max_backtracks=5, steps=4),
        ),
    ],
)  # fmt: skip
def test_strings_and_objects_fit_the_same(problem, strings, objects):
    theta, theta_val, y, y_val = problem
    kw = dict(theta_val=theta_val, y_val=y_val, ridge=0.1)
    a = fit_mkl_kernels(theta, y, **kw, **strings)
    b = fit_mkl_kernels(theta, y, **kw, **objects)
    np.testing.assert_array_equal(a.omega, b.omega)
    np.testing.assert_array_equal(a.history.objective, b.history.objective)
    assert (a.solver, a.constraint, a.stop_reason) == (b.solver, b.constraint,
                                                       b.stop_reason)  # fmt: skip


def test_checkpoint_identity_follows_the_objects(problem, tmp_path):
    """A checkpoint written with the strings resumes under the equal objects;
    another step rule is refused."""
    from nftk_jax.core import CheckpointError

    theta, theta_val, y, y_val = problem
    path = str(tmp_path / "c.npz")
    kw = dict(theta_val=theta_val, y_val=y_val, ridge=0.1, checkpoint=path)
    first = fit_mkl_kernels(theta, y, learning_rate=0.05, steps=3, **kw)
    again = fit_mkl_kernels(
        theta, y, step_rule=Fixed(learning_rate=0.05), stopping=Stopping(max_steps=3),
        **kw,
    )  # fmt: skip
    np.testing.assert_array_equal(first.omega, again.omega)
    with pytest.raises(CheckpointError, match="learning_rate"):
        fit_mkl_kernels(theta, y, step_rule=Fixed(learning_rate=0.5), steps=3, **kw)


def test_estimators_take_objects_and_clone():
    from sklearn.base import clone

    from nftk_jax import NFTKClassifier

    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    x = np.eye(3)[y] + 0.3 * rng.normal(size=(30, 3))
    kw = dict(depth=2, steps=3, ridge=1e-2)
    by_name = NFTKClassifier(solver="cg", constraint="simplex", radius=2.0, **kw).fit(
        x, y
    )
    est = NFTKClassifier(solver=CG(), constraint=Simplex(radius=2.0), **kw)
    by_object = clone(est).fit(x, y)
    assert by_object.get_params()["solver"] == CG()
    np.testing.assert_array_equal(by_name.omega_, by_object.omega_)
