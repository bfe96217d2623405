r"""Predictive uncertainty of the Theorem-1 predictor: the Gaussian-process posterior.

Class :math:`c` of NFT-K is kernel ridge regression with
:math:`K_c = \sum_l \Omega_{cl}\Theta_l`. Read as a Gaussian process with prior
covariance :math:`K_c` and noise variance :math:`\rho`, its posterior mean is the
Theorem-1 prediction and its posterior variance is

.. math::  \sigma_c^2(x) = K_c(x, x) - K_c(x, X)\,(K_c(X, X) + \rho I)^{-1} K_c(X, x).

It is computed from the Cholesky factor :math:`LL^\top = K_c + \rho I` that the
dual coefficients need anyway,
:math:`\sigma_c^2(x) = K_c(x, x) - \|L^{-1}K_c(X, x)\|^2`, test inputs in blocks so
that memory is one ``(n, block)`` panel per class.
Classes with the same row of :math:`\Omega` (a single depth, the uniform mix) share
one factor.

Two heads are available (``get=``): ``'ntk'`` uses the layerwise NTKs (the kernels
of the Theorem-1 predictor itself); ``'nngp'`` uses the layerwise NNGP kernels
combined with the same :math:`\Omega` and ridge: the exact Bayesian posterior of
the network whose readouts alone are trained, with its own mean.

:func:`gaussian_class_probabilities` turns per-class means and standard
deviations into class probabilities (the probability that a class's score is the
largest, under independent Gaussian scores), by quadrature.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import NFTKInputError
from ..linalg import check_omega, check_ridge, cholesky_with_jitter

__all__ = [
    "gaussian_class_probabilities",
    "posterior_variance",
    "predict_with_std",
]

#: Test inputs per triangular solve (memory: n x block floats per class).
_BLOCK = 2048
#: Gauss-Legendre nodes of :func:`gaussian_class_probabilities` on ``[-_Z, _Z]``.
_NODES = 256
_Z = 9.0


def _groups(omega: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Classes sharing one row of Omega: ``[(row, class indices), ...]``."""
    rows, inverse = np.unique(omega, axis=0, return_inverse=True)
    return [(rows[g], np.flatnonzero(inverse.ravel() == g)) for g in range(len(rows))]


@jax.jit
def _reduced_variance(chol, k_cross_t, k_diag):
    v = jax.scipy.linalg.solve_triangular(chol, k_cross_t, lower=True)
    return k_diag - jnp.sum(v * v, axis=0)


def _check_kernels(theta, theta_cross, theta_diag, omega):
    th = np.asarray(theta, dtype=np.float64)
    tc = np.asarray(theta_cross, dtype=np.float64)
    td = np.asarray(theta_diag, dtype=np.float64)
    if th.ndim != 3 or th.shape[1] != th.shape[2]:
        raise NFTKInputError(
            f"theta must be (L, n, n) training kernels, got shape {th.shape}."
        )
    L, n = th.shape[0], th.shape[1]
    if tc.ndim != 3 or tc.shape[0] != L or tc.shape[2] != n:
        raise NFTKInputError(
            f"theta_cross must have shape (L, m, n) = ({L}, m, {n}), got {tc.shape}."
        )
    if td.shape != tc.shape[:2]:
        raise NFTKInputError(
            f"theta_diag must have shape (L, m) = {tc.shape[:2]} (the diagonal of "
            f"each layer's test kernel), got {td.shape}."
        )
    om = check_omega(omega, depth=L)
    return th, tc, td, om


def posterior_variance(
    theta: Any,
    theta_cross: Any,
    theta_diag: Any,
    omega: Any,
    *,
    ridge: float,
    block: int = _BLOCK,
) -> np.ndarray:
    r"""Posterior variance :math:`\sigma_c^2(x)` of every class at every test input.

    Args:
        theta: ``(L, n, n)`` layerwise training kernels.
        theta_cross: ``(L, m, n)`` kernels between test and training inputs.
        theta_diag: ``(L, m)`` diagonals :math:`\Theta_l(x, x)` of the test inputs.
        omega: ``(d, L)`` non-negative layer weights.
        ridge: :math:`\rho > 0` (the same as for the dual coefficients).
        block: test inputs per triangular solve.

    Returns:
        ``(m, d)`` float64 variances, clipped at 0 (round-off can make an exact zero
        slightly negative).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(6, 3))
        >>> k = (x @ x.T)[None]
        >>> var = posterior_variance(k, k, np.diagonal(k, axis1=1, axis2=2),
        ...                          [[1.0]], ridge=1e-9)
        >>> bool(np.all(var < 1e-6))
        True
    """
    rho = check_ridge(ridge)
    th, tc, td, om = _check_kernels(theta, theta_cross, theta_diag, omega)
    m = tc.shape[1]
    out = np.empty((m, om.shape[0]))
    with jax.enable_x64(True):
        for row, classes in _groups(om):
            k = jnp.asarray(np.tensordot(row, th, axes=1))[None]
            chol = cholesky_with_jitter(k, rho)[0][0]
            for i0 in range(0, m, max(int(block), 1)):
                sl = slice(i0, min(i0 + int(block), m))
                kx = np.tensordot(row, tc[:, sl], axes=1)
                kd = row @ td[:, sl]
                var = _reduced_variance(chol, jnp.asarray(kx.T), jnp.asarray(kd))
                out[sl, classes] = np.asarray(var)[:, None]
    return np.maximum(out, 0.0)


def _test_diagonal(spec, x, *, get: str, dtype) -> np.ndarray:
    """``(L, m)`` self-kernels :math:`\\Theta_l(x_i, x_i)`, in small diagonal tiles."""
    from ..kernels import layerwise_kernels

    parts = []
    for i0 in range(0, len(x), 256):
        kb = np.asarray(layerwise_kernels(spec, x[i0 : i0 + 256], get=get, dtype=dtype))
        parts.append(np.diagonal(kb, axis1=1, axis2=2))
    return np.concatenate(parts, axis=1).astype(np.float64)


def predict_with_std(result: Any, x: Any, *, get: str = "ntk") -> tuple:
    r"""Posterior mean and standard deviation ``((m, d), (m, d))`` of a fitted model.

    ``result`` is an :class:`~nftk_jax.NFTKResult` from :func:`~nftk_jax.fit_mkl`
    (it carries the spec and training inputs). The layerwise kernels of the
    training inputs are recomputed (:math:`L n^2` floats), so this costs about one
    fit's kernel computation plus one Cholesky factorisation per distinct row of
    :math:`\Omega`.

    With ``get='ntk'`` the mean is the Theorem-1 prediction (``result.predict``);
    with ``get='nngp'`` both come from the NNGP kernels at the same :math:`\Omega`
    and ridge, and the training targets are recovered from the dual coefficients as
    :math:`Y_{:,c} = (K_c + \rho I)\alpha_c`.
    """
    from ..core import check_inputs
    from ..kernels import layerwise_kernels

    if get not in ("ntk", "nngp"):
        raise NFTKInputError(f"get={get!r} is unknown; use 'ntk' or 'nngp'.")
    if result.spec is None or result.x_train is None:
        raise NFTKInputError(
            "return_std=True needs a result from fit_mkl (it recomputes the training "
            "kernels); for precomputed kernels call posterior_variance(theta, "
            "theta_cross, theta_diag, omega, ridge=...)."
        )
    xt = result.x_train
    xx = check_inputs(x, "x", feature_dim=xt.shape[1])
    dt = result.kernel_dtype or np.float64
    omega = np.asarray(result.omega)
    with jax.enable_x64(True):
        theta_ntk = np.asarray(layerwise_kernels(result.spec, xt, dtype=dt), np.float64)
        theta = theta_ntk
        if get == "nngp":
            theta = np.asarray(
                layerwise_kernels(result.spec, xt, get="nngp", dtype=dt), np.float64
            )
        cross = np.asarray(
            layerwise_kernels(result.spec, xx, xt, get=get, dtype=dt), np.float64
        )
    diag = _test_diagonal(result.spec, np.asarray(xx), get=get, dtype=dt)
    var = posterior_variance(theta, cross, diag, omega, ridge=result.ridge)
    alpha = np.asarray(result.alpha, dtype=np.float64)
    if get == "nngp":
        # Targets from the NTK dual coefficients, then the NNGP's own coefficients.
        from ..linalg import krr_fit

        k_ntk = np.einsum("cl,lij->cij", omega, theta_ntk)
        y = np.einsum("cij,jc->ic", k_ntk, alpha) + result.ridge * alpha
        with jax.enable_x64(True):
            alpha = np.asarray(krr_fit(theta, y, omega, ridge=result.ridge).alpha)
    mean = np.einsum("cl,lmn,nc->mc", omega, cross, alpha)
    return mean, np.sqrt(var)


def gaussian_class_probabilities(mean: Any, std: Any) -> np.ndarray:
    r"""Probability that each class's score is the largest, scores independent Gaussian.

    .. math::  p_c = \int \varphi(z)\prod_{j\ne c}
               \Phi\!\Big(\frac{\mu_c + \sigma_c z - \mu_j}{\sigma_j}\Big)\,dz,

    by Gauss-Legendre quadrature (256 nodes on :math:`|z| \le 9`); rows are
    renormalised to sum to one. A
    zero standard deviation is floored at ``1e-12`` times the score range.

    Example:
        >>> p = gaussian_class_probabilities([[1.0, 0.0]], [[0.5, 0.5]])
        >>> round(float(p[0, 0]), 4)  # Phi(1 / sqrt(0.5))
        0.9214
    """
    from scipy.special import ndtr

    mu = np.asarray(mean, dtype=np.float64)
    sd = np.asarray(std, dtype=np.float64)
    if mu.ndim != 2 or sd.shape != mu.shape:
        raise NFTKInputError(
            f"mean and std must both be (m, d), got {mu.shape} and {sd.shape}."
        )
    floor = 1e-12 * max(float(np.ptp(mu)) if mu.size else 1.0, 1e-300)
    sd = np.maximum(sd, floor)
    z, w = np.polynomial.legendre.leggauss(_NODES)
    z = _Z * z
    w = w * np.exp(-0.5 * z * z)
    w = w / w.sum()
    m, d = mu.shape
    out = np.empty((m, d))
    for c in range(d):
        s = mu[:, c, None] + sd[:, c, None] * z[None]  # (m, nodes)
        lg = np.log(
            np.maximum(ndtr((s[:, None, :] - mu[:, :, None]) / sd[:, :, None]), 1e-300)
        )
        lg[:, c, :] = 0.0
        out[:, c] = np.exp(lg.sum(axis=1)) @ w
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-300)
