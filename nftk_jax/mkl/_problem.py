"""The learner's problem, validated once: kernels, targets, ridge, objective and
starting point, and the identity a checkpoint of it records."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

from ..core import NFTKInputError, resolve_dtype
from ..kernels import is_layer_operator as _is_operator
from ..linalg import check_omega, check_ridge, encode_targets
from ._objectives import SCALE_FREE_ILL_POSED, check_objective

__all__ = ["Problem", "check_problem", "checkpoint_identity"]


class Problem(NamedTuple):
    """What the learner fits, validated (arrays on the host; the kernels in the
    dtype JAX computes in, float64 when x64 is enabled, float32 otherwise)."""

    theta: Any  # (L, n, n) training kernels, or a square layer operator
    theta_val: Any  # (L, m, n) validation kernels / operator, or None
    Y: np.ndarray  # (n, d) float64 targets (centred one-hot for labels)
    Y_val: np.ndarray | None  # (m, d) float64 validation targets, or None
    is_classification: bool  # y held integer labels
    omega_init: np.ndarray  # (d, L) float64 non-negative start (not yet projected)
    ridge: float  # rho > 0
    objective: str  # a name of OBJECTIVES
    operator: bool  # theta is a layer operator, not an array

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(L, n, d)``: kernels, training points, classes."""
        return self.theta.shape[0], self.theta.shape[-1], self.Y.shape[1]


def check_problem(
    theta, y, *, theta_val, y_val, ridge, objective, omega_init, n_classes,
    constraint,
) -> Problem:  # fmt: skip
    """Validate the learner's data; warns when ``objective`` with ``constraint``
    (an option object) is ill-posed."""
    rho = check_ridge(ridge)
    objective = check_objective(objective)
    operator = _is_operator(theta)
    if operator:
        L, n, n2 = theta.shape
        if n != n2 or n == 0:
            raise NFTKInputError(
                f"theta must be a square (L, n, n) layer operator over the training "
                f"inputs, got shape {tuple(theta.shape)}."
            )
    else:
        theta = _check_theta(theta)
        L, n, _ = theta.shape
    Y, is_clf = encode_targets(y, n, n_classes=n_classes, name="y")
    d = Y.shape[1]
    if objective == "val_mse" and (theta_val is None or y_val is None):
        raise NFTKInputError(
            "objective='val_mse' needs validation data: pass theta_val "
            "(L, n_val, n) and y_val, or use fit_mkl which splits off a "
            "validation set, or choose objective='train_mse'/'krr_dual'."
        )
    Yv = None
    if theta_val is not None:
        theta_val, Yv = _check_validation(theta_val, y_val, operator, (L, n, d), is_clf)
    if omega_init is None:
        om0 = np.full((d, L), 1.0 / L)
    else:
        om0 = check_omega(omega_init, n_classes=d, depth=L, name="omega_init")
    if objective in SCALE_FREE_ILL_POSED and constraint.name == "nonneg":
        warnings.warn(
            f"objective={objective!r} with constraint='nonneg' is ill-posed: the "
            "objective keeps decreasing as Omega grows, so its scale diverges. Use "
            "constraint='simplex' (or 'l1_ball'/'box') or objective='val_mse'.",
            UserWarning,
            stacklevel=4,
        )
    return Problem(theta, theta_val, Y, Yv, is_clf, om0, rho, objective, operator)


def _check_validation(theta_val, y_val, operator, shape, is_clf):
    """``theta_val`` and the encoded ``y_val``, checked against ``(L, n, d)``."""
    L, n, d = shape
    val_op = _is_operator(theta_val)
    if val_op != operator:
        raise NFTKInputError(
            "theta and theta_val must both be arrays or both layer operators."
        )
    tv = theta_val if val_op else np.asarray(theta_val)
    got = tuple(tv.shape)
    if len(got) != 3 or got[0] != L or got[2] != n or got[1] == 0:
        raise NFTKInputError(
            f"theta_val must have shape (L, n_val, n) = ({L}, n_val, {n}) "
            f"(validation against the {n} training inputs), got {got}."
        )
    tv = tv if val_op else tv.astype(resolve_dtype(None), copy=False)
    if not val_op and not all(np.isfinite(v).all() for v in tv):  # no full mask
        raise NFTKInputError("theta_val contains NaN or inf; recompute the kernels.")
    if y_val is None:
        raise NFTKInputError("theta_val was given without y_val; pass both.")
    Yv, is_clf_v = encode_targets(
        y_val, tv.shape[1], n_classes=d if is_clf else None, name="y_val"
    )
    if is_clf_v != is_clf or Yv.shape[1] != d:
        raise NFTKInputError(
            f"y_val must be of the same kind as y (labels or ({n}, {d}) "
            f"targets), got shape {np.shape(y_val)}."
        )
    return tv, Yv


def checkpoint_identity(
    problem: Problem, options: Any, solver: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arrays and settings a checkpoint of this fit is tied to.

    ``solver`` is the one that runs. The settings hold the step rule's
    (``learning_rate``; the optimiser's hyperparameters, not just its type, so a
    resume under ``optax.adam(5.0)`` of a run of ``optax.adam(0.05)`` is refused;
    Armijo's ``max_backtracks`` and ``sigma``).
    """
    cons = options.constraint
    config = {
        "objective": problem.objective,
        "constraint": cons.name,
        "radius": cons.radius,
        "lower": cons.lower,
        "ridge": problem.ridge,
        **options.step_rule.identity(),
        "solver": solver.name,
        "preconditioner": solver.preconditioner.name if solver.name == "cg" else None,
        "n_classes": problem.Y.shape[1],
        "is_classification": problem.is_classification,
    }
    arrays = {
        "theta": _fingerprint(problem.theta),
        "y": problem.Y,
        "theta_val": _fingerprint(problem.theta_val),
        "y_val": problem.Y_val,
        "omega_init": problem.omega_init,
    }
    return arrays, config


def _fingerprint(theta: Any) -> Any:
    """What the checkpoint digest hashes for ``theta``: the array, or for a layer
    operator its ``fingerprint`` (a string naming the spec, inputs and storage)."""
    if theta is None or not _is_operator(theta):
        return theta
    fp = getattr(theta, "fingerprint", None)
    if fp is None:
        raise NFTKInputError(
            "checkpoint= needs a layer operator with a fingerprint (the operators of "
            "nftk_jax.kernels._operators have one); pass checkpoint=None."
        )
    return np.frombuffer(str(fp).encode(), dtype=np.uint8)


def _check_theta(theta: Any, name: str = "theta") -> np.ndarray:
    t = np.asarray(theta)
    if t.dtype.kind not in "fiu":
        raise NFTKInputError(f"{name} must be a real array, got dtype {t.dtype}.")
    if t.ndim != 3 or t.shape[1] != t.shape[2] or t.shape[1] == 0:
        raise NFTKInputError(
            f"{name} must be (L, n, n) square layerwise training kernels, got shape "
            f"{t.shape}; compute them with layerwise_kernels(spec, x)."
        )
    # No copy when the kernels are already in the dtype JAX would convert them to
    t = t.astype(resolve_dtype(None), copy=False)
    if not all(np.isfinite(layer).all() for layer in t):  # no (L, n, n) mask
        raise NFTKInputError(
            f"{name} contains NaN or inf; recompute the kernels (float64, smaller "
            "depth or normalised inputs)."
        )
    return t
