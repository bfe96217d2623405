r"""Theorem 1 for a fixed :math:`\Omega`: per-class kernel ridge regression.

For :math:`\Omega \in \mathbb{R}^{d\times L}_{\ge 0}` class :math:`c` uses the kernel
:math:`K_c = \sum_l \Omega_{cl}\Theta_l` and predicts

.. math::  f_c(x) = K_c(x, X)\,\alpha_c,\qquad
           \alpha_c = (K_c(X, X) + \rho I)^{-1} Y_{:,c}.

The ``d`` systems are independent: they are solved as one batched Cholesky
factorisation of shape ``(d, n, n)``; the ``(nd) x (nd)`` Kronecker system is never
formed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import NFTKInputError, check_positive_number
from ._spd import cholesky_with_jitter

__all__ = [
    "KRRSolution",
    "absolute_ridge",
    "check_omega",
    "check_ridge",
    "combine_kernels",
    "encode_targets",
    "krr_fit",
    "krr_predict",
    "mean_diagonal",
]


class KRRSolution(NamedTuple):
    """Dual coefficients of the per-class kernel ridge regressions."""

    alpha: jax.Array  # (n, d) float: column c solves (K_c + (ridge + jitter) I) a = y_c
    jitter: float  # extra diagonal added (absolute) to reach a PD factorisation
    cond: np.ndarray  # (d,) float64: 2-norm condition number of each K_c + ridge I


def check_ridge(ridge: Any, name: str = "ridge") -> float:
    """A finite ridge > 0, as a float."""
    return check_positive_number(
        ridge,
        f"{name} must be a positive number, got {ridge!r}.",
        f"{name} must be finite and > 0 (Theorem 1 needs K + ridge I to be "
        f"invertible), got {ridge!r}; try e.g. {name}=1e-3.",
    )


def check_omega(
    omega: Any,
    *,
    n_classes: int | None = None,
    depth: int | None = None,
    name: str = "omega",
    allow_zero_rows: bool = False,
) -> np.ndarray:
    """A finite, non-negative ``(n_classes, depth)`` Omega as float64.

    ``n_classes`` / ``depth`` of ``None`` accept any non-empty size on that axis.
    Rows that are all zero are rejected unless ``allow_zero_rows`` (a zero row is a
    zero kernel for that class, which Theorem 1 cannot invert against a target).
    """
    if omega is None:
        raise NFTKInputError(f"{name} is None; pass a (d, L) array of layer weights.")
    om = np.asarray(omega, dtype=np.float64)
    if om.ndim == 1 and n_classes == 1 and om.shape[0] == depth:
        om = om[None]
    want = (
        "?" if n_classes is None else n_classes,
        "?" if depth is None else depth,
    )
    if (
        om.ndim != 2
        or om.size == 0
        or (n_classes is not None and om.shape[0] != n_classes)
        or (depth is not None and om.shape[1] != depth)
    ):
        raise NFTKInputError(
            f"{name} must have shape (n_classes, depth) = ({want[0]}, {want[1]}), "
            f"got {om.shape}."
        )
    if not np.all(np.isfinite(om)):
        raise NFTKInputError(f"{name} contains NaN or inf.")
    if np.any(om < 0):
        raise NFTKInputError(
            f"{name} must be non-negative (Theorem 1 needs each K_c to be a "
            f"positive combination of kernels); min entry is {om.min():.3g}. "
            "Project it, e.g. with np.maximum(omega, 0)."
        )
    if not allow_zero_rows and np.any(om.sum(axis=1) == 0):
        bad = np.flatnonzero(om.sum(axis=1) == 0).tolist()
        raise NFTKInputError(
            f"{name} rows {bad} are all zero: those classes would have a zero kernel; "
            "give every class at least one positive layer weight."
        )
    return om


def encode_targets(
    y: Any, n: int, *, n_classes: int | None = None, center: bool = True, name="y"
) -> tuple[np.ndarray, bool]:
    """Targets as an ``(n, d)`` float matrix.

    Integer labels ``(n,)`` in ``[0, n_classes)`` become one-hot rows, centred
    (``onehot - 1/d``) when ``center`` is true; a float ``(n, d)`` matrix is used as
    given. Integer ``(n, 1)`` arrays are refused: they are ambiguous between
    labels and one regression output. Returns ``(Y, is_classification)``.
    """
    arr = np.asarray(y)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise NFTKInputError(
            f"{name} must have one entry per example: expected length {n}, "
            f"got shape {arr.shape}."
        )
    if arr.ndim == 1:
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)):
                raise NFTKInputError(f"{name} contains NaN or inf.")
            if not np.all(arr == np.round(arr)):
                raise NFTKInputError(
                    f"{name} is 1-D with non-integer values: pass integer class "
                    "labels, or an (n, d) float target matrix for regression "
                    "(use y[:, None] for a single output)."
                )
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise NFTKInputError(
                f"{name} must hold integer class labels, got dtype {arr.dtype}."
            )
        d = int(arr.max()) + 1 if n_classes is None else int(n_classes)
        if arr.min() < 0 or arr.max() >= d:
            raise NFTKInputError(
                f"{name} labels must lie in [0, {d}) (n_classes={d}); got range "
                f"[{arr.min()}, {arr.max()}]."
            )
        if d < 2:
            raise NFTKInputError(
                f"{name} has a single class; classification needs >= 2 classes "
                "(pass an (n, 1) float matrix for regression)."
            )
        out = np.eye(d)[arr]
        if center:
            out = out - 1.0 / d
        return out, True
    if arr.ndim != 2:
        raise NFTKInputError(
            f"{name} must be (n,) labels or (n, d) targets, got {arr.shape}."
        )
    if arr.shape[1] == 1 and arr.dtype.kind in "iub":
        raise NFTKInputError(
            f"{name} has shape {arr.shape} with integer values: class labels must be "
            f"1-D, so pass {name}.ravel() for classification, or "
            f"{name}.astype(float) for single-output regression."
        )
    out = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise NFTKInputError(f"{name} contains NaN or inf.")
    if n_classes is not None and out.shape[1] != n_classes:
        raise NFTKInputError(
            f"{name} has {out.shape[1]} columns but n_classes={n_classes}."
        )
    return out, False


def mean_diagonal(kernels: Any) -> float:
    r"""The kernels' scale: the mean of their diagonals over layers (or classes)
    and examples, :math:`\frac{1}{Ln}\sum_l \operatorname{tr}\Theta_l`.

    This is the one rule behind every relative ridge of the package: a relative
    ridge ``r`` means the absolute ridge ``r * mean_diagonal(theta)`` (see
    :func:`absolute_ridge`), and ridge grids are relative to the same scale.

    Args:
        kernels: ``(..., n, n)`` square kernels (numpy or JAX), or a layer
            operator (anything whose ``diagonal()`` returns the ``(L, n)``
            diagonals without forming the kernels).

    Example:
        >>> import numpy as np
        >>> mean_diagonal(np.stack([np.eye(3), 3 * np.eye(3)]))
        2.0
    """
    if isinstance(kernels, jax.Array):
        return float(jnp.mean(jnp.diagonal(kernels, axis1=-2, axis2=-1)))
    if isinstance(kernels, np.ndarray):
        return float(np.mean(np.diagonal(kernels, axis1=-2, axis2=-1)))
    return float(np.mean(np.asarray(kernels.diagonal())))


def absolute_ridge(relative: float, kernels: Any) -> float:
    """The absolute ridge of a ridge ``relative`` to :func:`mean_diagonal`.

    Example:
        >>> import numpy as np
        >>> absolute_ridge(1e-3, 4 * np.eye(2)[None])
        0.004
    """
    return float(relative) * mean_diagonal(kernels)


def combine_kernels(theta: Any, omega: Any) -> jax.Array:
    r"""Per-class kernels :math:`K_c = \sum_l \Omega_{cl}\Theta_l`.

    Args:
        theta: ``(L, n1, n2)`` layerwise kernels.
        omega: ``(d, L)`` layer weights.

    Returns:
        ``(d, n1, n2)``.
    """
    theta = jnp.asarray(theta)
    return jnp.einsum("cl,lij->cij", jnp.asarray(omega, dtype=theta.dtype), theta)


@jax.jit
def _cho_solve(chol: jax.Array, rhs: jax.Array) -> jax.Array:
    return jax.scipy.linalg.cho_solve((chol, True), rhs)


def krr_fit(
    theta: Any, y: Any, omega: Any, *, ridge: float, compute_cond: bool = False
) -> KRRSolution:
    r"""Solve :math:`(K_c + \rho I)\alpha_c = Y_{:,c}` for every class at once.

    A batched Cholesky factorisation; when it fails (``K_c + ridge I`` not
    numerically positive definite) a relative jitter is added, escalating, with a
    warning.

    Args:
        theta: ``(L, n, n)`` training kernels.
        y: ``(n, d)`` float targets (see :func:`encode_targets`).
        omega: ``(d, L)`` non-negative layer weights.
        ridge: :math:`\rho > 0`.
        compute_cond: also compute each system's condition number (an extra
            eigen-decomposition per class).

    Returns:
        A :class:`KRRSolution`.
    """
    rho = check_ridge(ridge)
    theta = jnp.asarray(theta)
    yy = jnp.asarray(y, dtype=theta.dtype)
    if yy.ndim != 2 or theta.ndim != 3 or yy.shape[0] != theta.shape[-1]:
        raise NFTKInputError(
            f"y must have shape (n, d) with n = {theta.shape[-1]} matching theta "
            f"(L, n, n) {theta.shape}; got y {yy.shape} (see encode_targets)."
        )
    om = check_omega(omega, n_classes=yy.shape[1], depth=theta.shape[0])
    shared = om.shape[0] > 1 and bool(np.all(om == om[:1]))
    # All classes share one kernel (e.g. a single depth or the uniform mix): one
    # factorisation with d right-hand sides instead of d factorisations.
    k = combine_kernels(theta, om[:1] if shared else om)
    rhs = yy[None] if shared else yy.T[..., None]
    chol, jit_abs = cholesky_with_jitter(k, rho)
    sol = _cho_solve(chol, rhs)
    alpha = sol[0] if shared else sol[..., 0].T
    cond = np.full(om.shape[0], np.nan)
    if compute_cond:
        ev = np.linalg.eigvalsh(np.asarray(k, dtype=np.float64))
        cond = np.broadcast_to(
            (ev[:, -1] + rho) / np.maximum(ev[:, 0] + rho, 1e-300), om.shape[:1]
        ).copy()
    return KRRSolution(alpha, jit_abs, cond)


def krr_predict(theta_cross: Any, alpha: Any, omega: Any) -> jax.Array:
    r"""Theorem-1 predictions :math:`f_c(x) = K_c(x, X)\alpha_c`.

    Args:
        theta_cross: ``(L, m, n)`` kernels between test and training inputs.
        alpha: ``(n, d)`` dual coefficients from :func:`krr_fit`.
        omega: ``(d, L)`` layer weights.

    Returns:
        ``(m, d)`` predictions.
    """
    theta_cross = jnp.asarray(theta_cross)
    om = jnp.asarray(omega, dtype=theta_cross.dtype)
    a = jnp.asarray(alpha, dtype=theta_cross.dtype)
    # sum_l Omega[c,l] Theta_l(x, X) alpha[:, c], without forming (d, m, n).
    per_layer = jnp.einsum("lmn,nc->lmc", theta_cross, a)
    return jnp.einsum("cl,lmc->mc", om, per_layer)
