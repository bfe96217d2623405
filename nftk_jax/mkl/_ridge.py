r"""Ridge selection by leave-one-out or generalised cross-validation, in closed form.

With the eigendecomposition :math:`K_c = U_c \operatorname{diag}(s_c) U_c^\top` and
:math:`z_c = U_c^\top y_c`, every quantity needed for a ridge :math:`\rho` is a
diagonal rescaling:

.. math::
    \alpha_c(\rho) = U_c \frac{z_c}{s_c + \rho},\qquad
    [(K_c + \rho I)^{-1}]_{ii} = \sum_k \frac{U_{c,ik}^2}{s_{c,k} + \rho},

so one decomposition per class evaluates a whole grid of ridges in
:math:`O(G d n^2)` instead of :math:`G` factorisations of :math:`O(d n^3)`.

* Leave-one-out (Allen's PRESS): the residual at point ``i`` of the fit without
  ``i`` is :math:`e_i = \alpha_i / [(K + \rho I)^{-1}]_{ii}`; the score is
  :math:`\frac1n \sum_i e_i^2`.
* GCV: with the hat matrix :math:`H = K(K + \rho I)^{-1}`,
  :math:`I - H = \rho (K + \rho I)^{-1}` and

  .. math::  \mathrm{GCV}(\rho) = \frac{n \|(I - H) y\|^2}{\operatorname{tr}(I-H)^2}
             = \frac{n \sum_k \rho^2 z_k^2 / (s_k + \rho)^2}
                    {\big(\sum_k \rho / (s_k + \rho)\big)^2}.

One ridge is shared by all classes: the per-class scores are summed.

When the best score sits on the first or last grid point, the true optimum may lie
beyond the grid: :func:`select_ridge` then warns (:class:`RidgeGridEdgeWarning`),
naming the edge and how to extend the grid.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import NFTKInputError, check_positive_int, resolve_dtype
from ..linalg import check_system, combine_kernels, mean_diagonal

__all__ = [
    "RIDGE_METHODS",
    "RidgeGridEdgeWarning",
    "RidgeSelection",
    "default_ridge_grid",
    "grid_edge",
    "select_ridge",
]

#: Criteria understood by :func:`select_ridge`.
RIDGE_METHODS = ("loo", "gcv")


class RidgeSelection(NamedTuple):
    """The selected ridge and the criterion on the whole grid."""

    ridge: float  # grid value with the smallest score
    grid: np.ndarray  # (G,) float64: ridges evaluated, in the order given
    scores: np.ndarray  # (G,) float64: criterion summed over classes, per ridge
    method: str  # 'loo' or 'gcv'


class RidgeGridEdgeWarning(UserWarning):
    """The selected ridge is the smallest or largest ridge of the grid."""


def grid_edge(selection: RidgeSelection) -> str | None:
    """``'lower'`` or ``'upper'`` when the selected ridge is a grid edge, else None.

    Example:
        >>> sel = RidgeSelection(1.0, np.array([1.0, 2.0, 3.0]), np.zeros(3), "loo")
        >>> grid_edge(sel), grid_edge(sel._replace(ridge=2.0))
        ('lower', None)
    """
    g = np.asarray(selection.grid)
    if g.size < 2:
        return None
    if selection.ridge == g.min():
        return "lower"
    if selection.ridge == g.max():
        return "upper"
    return None


def _edge_message(sel: RidgeSelection, edge: str) -> str:
    g = np.asarray(sel.grid)
    lo, hi = float(g.min()), float(g.max())
    side = "below" if edge == "lower" else "above"
    factor = 1e-3 if edge == "lower" else 1e3
    ext = (lo * factor, hi) if edge == "lower" else (lo, hi * factor)
    return (
        f"select_ridge: {sel.method!r} picked ridge={sel.ridge:.3g}, the {edge} edge "
        f"of its grid [{lo:.3g}, {hi:.3g}]; the best ridge may lie {side} it. Extend "
        f"the grid, e.g. grid=np.geomspace({ext[0]:.3g}, {ext[1]:.3g}, 40), or pass "
        "a ridge value."
    )


def default_ridge_grid(
    scale: float, *, num: int = 29, low: float = 1e-6, high: float = 1e1
) -> np.ndarray:
    r"""``num`` log-spaced ridges from ``low * scale`` to ``high * scale``.

    :func:`select_ridge` uses ``scale`` = mean diagonal of the class kernels,
    :math:`\frac{1}{dn}\sum_c \operatorname{tr} K_c`, so the grid is relative to
    the kernels' size (the default is 4 points per decade over 7 decades).
    """
    num = check_positive_int(num, "num")
    if not (np.isfinite(scale) and scale > 0):
        raise NFTKInputError(
            f"scale must be finite and > 0 (the kernels' mean diagonal), got {scale}."
        )
    return float(scale) * np.logspace(np.log10(low), np.log10(high), num)


def _check_grid(grid: Any) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size == 0:
        raise NFTKInputError(
            f"grid must be a non-empty 1-D array of ridges, got {g.shape}."
        )
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise NFTKInputError(
            "grid must hold finite ridges > 0; e.g. grid=np.logspace(-6, 1, 29) "
            "times the kernels' mean diagonal."
        )
    return g


@jax.jit
def _loo_scores(u, s, y, grid):
    """``(d, G)`` mean squared leave-one-out residuals."""
    z = jnp.einsum("cik,ic->ck", u, y)
    inv = 1.0 / (s[:, None, :] + grid[None, :, None])  # (d, G, n)
    alpha = jnp.einsum("cik,cgk->cgi", u, inv * z[:, None, :])
    h = jnp.einsum("cik,cgk->cgi", u * u, inv)  # diagonal of (K + rho I)^{-1}
    return jnp.mean((alpha / h) ** 2, axis=-1)


@jax.jit
def _gcv_scores(u, s, y, grid):
    """``(d, G)`` generalised cross-validation scores."""
    n = y.shape[0]
    z = jnp.einsum("cik,ic->ck", u, y)
    shrink = grid[None, :, None] / (s[:, None, :] + grid[None, :, None])  # (d, G, n)
    resid = jnp.sum((shrink * z[:, None, :]) ** 2, axis=-1)
    return n * resid / jnp.sum(shrink, axis=-1) ** 2


def select_ridge(
    theta: Any,
    Y: Any,
    omega: Any,
    *,
    method: str = "loo",
    grid: Any = None,
) -> RidgeSelection:
    r"""Pick one ridge for all classes by closed-form LOO or GCV over a grid.

    One symmetric eigendecomposition per class :math:`K_c = \sum_l \Omega_{cl}
    \Theta_l` (tiny negative eigenvalues from rounding are clipped to 0), then
    every grid ridge is scored at once (see the module docstring for the
    formulas). Memory: ``(d, n, n)`` eigenvectors plus ``(d, G, n)``.

    Args:
        theta: ``(L, n, n)`` training kernels.
        Y: ``(n, d)`` float targets.
        omega: ``(d, L)`` non-negative layer weights.
        method: ``'loo'`` (mean squared leave-one-out residual) or ``'gcv'``.
        grid: ``(G,)`` ridges > 0; ``None``: :func:`default_ridge_grid` of the mean
            diagonal of the :math:`K_c` (29 points from 1e-6 to 10 times it).

    Returns:
        A :class:`RidgeSelection`; ``ridge = grid[argmin(scores)]``.

    Warns:
        RidgeGridEdgeWarning: the selected ridge is the first or last grid point.
    """
    sel, _, _ = _select_with_eigh(theta, Y, omega, method=method, grid=grid)
    edge = grid_edge(sel)
    if edge is not None:
        warnings.warn(_edge_message(sel, edge), RidgeGridEdgeWarning, stacklevel=2)
    return sel


def _select_with_eigh(
    theta: Any, Y: Any, omega: Any, *, method: str, grid: Any
) -> tuple[RidgeSelection, jax.Array, jax.Array]:
    """:func:`select_ridge` without the edge warning, with the eigenvalues
    ``(d, n)`` (clipped at 0) and eigenvectors ``(d, n, n)`` of the class kernels
    it scored."""
    if method not in RIDGE_METHODS:
        raise NFTKInputError(f"method must be one of {RIDGE_METHODS}, got {method!r}.")
    dtype = resolve_dtype(None)
    th, yy, om = check_system(theta, Y, omega, dtype)
    k = combine_kernels(th, om)
    g = default_ridge_grid(mean_diagonal(k)) if grid is None else _check_grid(grid)
    s, u = jnp.linalg.eigh(k)
    del k
    s = jnp.maximum(s, 0.0)
    fn = _loo_scores if method == "loo" else _gcv_scores
    per_class = fn(u, s, yy, jnp.asarray(g, dtype))
    scores = np.asarray(jnp.sum(per_class, axis=0), dtype=np.float64)
    best = int(np.nanargmin(scores))
    return RidgeSelection(float(g[best]), g, scores, method), s, u


@jax.jit
def _loo_predictions(u, s, y, ridge):
    """``(n, k)`` leave-one-out predictions :math:`y_i - e_i` of targets ``y``
    ``(n, k)`` by the kernel ``U diag(s) U^T`` at ``ridge``."""
    inv = 1.0 / (s + ridge)
    alpha = u @ (inv[:, None] * (u.T @ y))
    h = (u * u) @ inv  # diagonal of (K + rho I)^{-1}
    return y - alpha / h[:, None]


def _uniform_system(theta: Any, y: Any, n_classes: int | None):
    r"""``theta``, the encoded targets of ``y`` (centred one-hot for labels, as the
    learner encodes them) and the uniform mix :math:`\Omega_{cl} = 1/L`."""
    from ..linalg import encode_targets

    th = np.asarray(theta)
    Y, _ = encode_targets(y, th.shape[1], n_classes=n_classes, name="y")
    return th, Y, np.full((Y.shape[1], th.shape[0]), 1.0 / th.shape[0])


def select_ridge_for_labels(
    theta: Any, y: Any, method: str, *, n_classes: int | None = None
) -> RidgeSelection:
    r""":func:`select_ridge` for labels or targets ``y``, on the uniform mix.

    This is what ``fit_mkl(ridge='loo')`` and ``nftk fit --ridge loo`` use: the
    targets are encoded as in the learner (centred one-hot for labels) and every
    class mixes the layers uniformly, :math:`\Omega_{cl} = 1/L`.
    """
    th, Y, omega = _uniform_system(theta, y, n_classes)
    return select_ridge(th, Y, omega, method=method)


def select_ridge_and_loo_accuracy(
    theta: Any, labels: Any, method: str, *, n_classes: int | None = None
) -> tuple[RidgeSelection, float]:
    """:func:`select_ridge_for_labels` for integer ``labels`` (without the edge
    warning), and the leave-one-out accuracy of the uniform mix at the selected
    ridge: the argmax over the classes present of the leave-one-out predictions of
    their one-hot indicators, from the eigendecomposition the selection made.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(30, 3)); labels = (z[:, 0] > 0).astype(int)
        >>> sel, acc = select_ridge_and_loo_accuracy(z[None] @ z.T[None], labels, "loo")
        >>> 0.8 < acc <= 1.0
        True
    """
    labels = np.asarray(labels)
    th, Y, omega = _uniform_system(theta, labels, n_classes)
    sel, s, u = _select_with_eigh(th, Y, omega, method=method, grid=None)
    classes = np.unique(labels)
    onehot = (labels[:, None] == classes[None, :]).astype(np.float64)
    # every class kernel is the uniform mix: the first one's decomposition serves
    pred = _loo_predictions(u[0], s[0], jnp.asarray(onehot, u.dtype), sel.ridge)
    return sel, float(np.mean(classes[np.argmax(np.asarray(pred), axis=1)] == labels))
