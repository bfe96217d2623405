r"""Preconditioners of the per-class systems :math:`(K_c + \rho I)\alpha_c = y_c`.

* :func:`nystrom_preconditioner`: a rank-``m`` Nystrom approximation of the mean
  kernel :math:`\bar K = \frac1d\sum_c K_c` shared by all classes, or one per
  class (``per_class=True``) from the same landmark columns, applied by Woodbury in
  :math:`O(n m)` per class; for ``n`` too large to factorise.
* :func:`cholesky_preconditioner`: the exact inverse of the mean-kernel system,
  one :math:`n \times n` factor shared by all classes.

Both are pytrees applied inside the solvers of :mod:`._solvers`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import (
    NFTKInputError,
    NFTKTypeError,
    check_inputs,
    check_positive_int,
    resolve_dtype,
)
from ..kernels import is_layer_operator as _is_operator
from ..kernels import layerwise_kernels
from ..model import MLP
from ._krr import check_omega, check_ridge
from ._spd import cholesky_with_jitter, host_cholesky

__all__ = [
    "INVERT_MAX_N",
    "CholeskyPreconditioner",
    "NystromPreconditioner",
    "cholesky_preconditioner",
    "nystrom_preconditioner",
]

#: The matrix the Cholesky preconditioner factorises, and the remedy when it is not
#: numerically positive definite (jitter warnings of :mod:`._spd`).
_PRECONDITIONER = "the mean kernel + ridge I of the preconditioner"
_REMEDY = "Increase ridge or use float64"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class NystromPreconditioner:
    r"""Nyström preconditioner of the mean kernel, or of each class's kernel.

    :math:`\hat K = U\,\mathrm{diag}(\lambda)\,U^\top \approx \bar K` with orthonormal
    :math:`U \in \mathbb{R}^{n\times m}`. The preconditioner inverts
    :math:`\hat K + \rho I` on the range of :math:`U` and divides the orthogonal
    complement by ``shift`` :math:`\sigma`:

    .. math::  P^{-1} r = U\,\mathrm{diag}\Big(\frac{1}{\lambda + \rho}\Big)
               U^\top r + \frac{1}{\sigma}(I - U U^\top) r
               = \frac{r}{\sigma} + U\,\mathrm{diag}\Big(\frac{1}{\lambda + \rho}
               - \frac{1}{\sigma}\Big) U^\top r.

    With :math:`\sigma = \rho` this is exactly :math:`(\hat K + \rho I)^{-1}`
    (Woodbury); with :math:`\sigma = \lambda_m + \rho` (the default) the unresolved
    spectrum is assumed to sit at the smallest retained eigenvalue, as in the
    randomized Nyström PCG of Frangella, Tropp and Udell (2023), which is far better
    when the kernel has a large spectral floor (deep ReLU NTKs do).

    Per class (``basis`` of shape ``(d, n, m)``), column ``c`` of ``r`` is
    preconditioned with :math:`\hat K_c \approx K_c`, its own :math:`U_c,
    \lambda_c, \sigma_c`: ``d`` times the memory and the work of the shared one,
    which is still :math:`O(n m)` per class against the :math:`O(n^2)` product.

    A pytree (every field is a leaf), so it can be passed to and applied inside
    ``jax.jit``. Built matrix-free (for ``n`` too large to cache kernels), the
    basis stays a host (NumPy) array, applied with BLAS outside ``jit``: no device
    copy of its ``d n m`` floats.
    """

    basis: jax.Array  # (n, m) or per class (d, n, m) float: orthonormal U of K_hat
    eigvals: jax.Array  # (m,) or (d, m) float: eigenvalues lambda >= 0, descending
    ridge: float  # rho of the systems to precondition
    shift: Any  # float, or (d,) float per class: sigma on the complement of range(U)
    landmarks: np.ndarray  # (m,) int64 (or (d, m) greedy per class): landmark indices

    @property
    def size(self) -> int:
        """Number of training points ``n`` it was built for."""
        return self.basis.shape[-2]

    @property
    def classes(self) -> int | None:
        """Number of classes ``d`` of a per-class preconditioner; ``None``: shared."""
        return self.basis.shape[0] if self.basis.ndim == 3 else None

    def apply(self, r: Any) -> jax.Array:
        """:math:`P^{-1} r` for ``r`` of shape ``(n, k)`` (``k = d`` per class);
        traceable."""
        if isinstance(self.basis, np.ndarray):  # host basis (matrix-free build)
            return jnp.asarray(_host_apply(self, np.asarray(r)))
        dt = self.basis.dtype
        ridge, shift = jnp.asarray(self.ridge, dt), jnp.asarray(self.shift, dt)
        return _apply_nystrom(self.basis, self.eigvals, ridge, shift, jnp.asarray(r))


def _host_apply(pre: NystromPreconditioner, r: np.ndarray) -> np.ndarray:
    """:meth:`NystromPreconditioner.apply` of a host basis, one class at a time (two
    BLAS matrix-vector products each); the low-rank part in the basis's dtype."""
    basis = pre.basis if pre.basis.ndim == 3 else pre.basis[None]
    lam = np.asarray(pre.eigvals, np.float64).reshape(len(basis), -1)
    shift = np.broadcast_to(np.asarray(pre.shift, np.float64), (len(basis),))
    out = np.empty_like(r)
    for j in range(r.shape[1]):
        c = j if len(basis) > 1 else 0
        coef = (1.0 / (lam[c] + pre.ridge) - 1.0 / shift[c]).astype(basis.dtype)
        low = basis[c] @ (coef * (basis[c].T @ r[:, j].astype(basis.dtype)))
        out[:, j] = r[:, j] / shift[c] + low
    return out


def _apply_nystrom(basis, eigvals, ridge, shift, r):
    # The low-rank part in the basis's dtype (a float32 basis halves its memory),
    # the result in r's.
    rr = r.astype(basis.dtype)
    if basis.ndim == 3:  # per class: column c with U_c, lambda_c, sigma_c
        coef = 1.0 / (eigvals + ridge) - 1.0 / shift[:, None]
        proj = jnp.einsum("cnm,nc->cm", basis, rr)
        low = jnp.einsum("cnm,cm->nc", basis, coef * proj)
        return r / shift.astype(r.dtype) + low.astype(r.dtype)
    coef = 1.0 / (eigvals + ridge) - 1.0 / shift
    low = basis @ (coef[:, None] * (basis.T @ rr))
    return r / shift.astype(r.dtype) + low.astype(r.dtype)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class CholeskyPreconditioner:
    r"""Exact inverse of the mean-kernel system, shared by all classes.

    With :math:`\bar K = \sum_l \bar w_l \Theta_l` (the layer weights averaged over
    classes) and the lower Cholesky factor :math:`R R^\top = \bar K + \rho I`, the
    preconditioner is :math:`P^{-1} r = R^{-\top} R^{-1} r`. With ``inverted``
    the factor stored is :math:`R^{-1}`, so that applying it is two matrix
    products (memory-bound, like the CG product) instead of two triangular solves,
    which run at a fraction of the speed on CPU; without it (large ``n``) it is
    :math:`R`, which saves the :math:`2 n^2` floats the inversion needs at its peak.

    One :math:`n\times n` factorisation serves all ``d`` classes. Because the
    layer kernels of an MLP are strongly correlated,
    :math:`P^{-1}(K_c + \rho I)` stays well conditioned for every row
    :math:`\omega_c`: on MNIST-5k (n = 3200, L = d = 10, ridge 1e-3 of the mean
    diagonal) CG needs 13-21 iterations to reach 1e-8 from a cold start.

    A pytree whose leaves are the arrays and numbers (``inverted`` is static), so it
    can be passed to and applied inside ``jax.jit``. A host (NumPy) factor, which
    the layer-operator path keeps for ``n`` too large for a device copy, is applied
    with LAPACK outside ``jit``.
    """

    factor: jax.Array  # (n, n) float: R^{-1} if inverted else R, lower triangular
    inverted: bool = dataclasses.field(metadata={"static": True})  # factor is R^{-1}
    weights: np.ndarray  # (L,) float64: layer weights of the mean kernel
    ridge: float  # rho of the systems to precondition
    jitter: float  # extra diagonal the factorisation needed (absolute)

    @property
    def size(self) -> int:
        """Number of training points ``n`` it was built for."""
        return self.factor.shape[0]

    def apply(self, r: Any) -> jax.Array:
        """:math:`P^{-1} r` for ``r`` of shape ``(n, k)``; traceable."""
        if isinstance(self.factor, np.ndarray):  # host factor (operator path)
            return jnp.asarray(_host_cho_solve(self.factor, np.asarray(r)))
        r = jnp.asarray(r)
        if self.inverted:
            return _apply_cholesky(self.factor, r)
        return _apply_cholesky_solve(self.factor, r)


@jax.jit
def _apply_cholesky(inverse_factor, r):
    # A float32 factor (half the memory) is applied in float32; CG stays in r's dtype.
    rr = r.astype(inverse_factor.dtype)
    return (inverse_factor.T @ (inverse_factor @ rr)).astype(r.dtype)


def _host_cho_solve(factor: np.ndarray, r: np.ndarray) -> np.ndarray:
    """:math:`R^{-T} R^{-1} r` with LAPACK on a C-ordered lower factor, no copy.

    ``factor.T`` is the upper factor :math:`R^\top` in Fortran order, which LAPACK
    reads in place: solve :math:`(R^\top)^\top z = r`, then :math:`R^\top x = z`.
    """
    import scipy.linalg

    up = factor.T
    rr = r.astype(factor.dtype)
    z = scipy.linalg.solve_triangular(
        up, rr, lower=False, trans="T", check_finite=False
    )
    x = scipy.linalg.solve_triangular(up, z, lower=False, trans="N", check_finite=False)
    return x.astype(r.dtype)


@jax.jit
def _apply_cholesky_solve(factor, r):
    rr = r.astype(factor.dtype)
    return jax.scipy.linalg.cho_solve((factor, True), rr).astype(r.dtype)


@jax.jit
def _inverse_factor(chol):
    eye = jnp.eye(chol.shape[-1], dtype=chol.dtype)
    return jax.scipy.linalg.solve_triangular(chol, eye, lower=True)


@functools.partial(jax.jit, static_argnames="rank")
def _pivoted_cholesky(theta, w, *, rank: int):
    r"""Greedy partial Cholesky :math:`\bar K \approx F F^\top`, ``F (n, rank)``.

    Step ``j`` pivots on the largest remaining diagonal entry of
    :math:`\bar K - F F^\top`; a pivot below ``1e-14`` of the largest diagonal
    contributes a zero column (the kernel's numerical rank is reached).
    """
    n = theta.shape[-1]
    diag = jnp.einsum("l,lii->i", w, theta)
    floor = 1e-14 * jnp.max(diag)

    def body(j, s):
        f, dg, piv = s
        i = jnp.argmax(dg)
        row = w @ jax.lax.dynamic_index_in_dim(theta, i, axis=1, keepdims=False)
        col = row - f @ f[i]
        ok = dg[i] > floor
        col = jnp.where(ok, col / jnp.sqrt(jnp.where(ok, dg[i], 1.0)), 0.0)
        f = f.at[:, j].set(col)
        dg = jnp.maximum(dg - col * col, 0.0).at[i].set(0.0)
        return f, dg, piv.at[j].set(i)

    piv = jnp.zeros(rank, dtype=jnp.argmax(diag).dtype)
    init = (jnp.zeros((n, rank), theta.dtype), diag, piv)
    f, _, piv = jax.lax.fori_loop(0, rank, body, init)
    return f, piv


def _nystrom_factor(c, landmarks):
    r""":math:`F = C W^{-1/2}` from landmark columns ``C (n, m)``, ``W = C[S]``.

    Eigenvalues of ``W`` below ``1e-12`` of the largest are dropped (zero columns).
    """
    w = c[landmarks]
    w = 0.5 * (w + w.T)
    ev, vec = jnp.linalg.eigh(w)
    keep = ev > 1e-12 * jnp.max(ev)
    scale = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, ev, 1.0)), 0.0)
    return c @ (vec * scale)


def _eig_of_factor(f: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""``(U, lambda)`` of :math:`F F^\top` (descending, ``U`` orthonormal) from
    ``F (n, m)``: the eigenpairs of the small :math:`F^\top F`, in float64 on the
    host (:math:`4 n m^2` flops, a fraction of a thin SVD's at ``n >> m``).
    Directions below ``1e-12`` of the largest get a zero column and eigenvalue."""
    f64 = np.asarray(f, np.float64)
    lam, v = np.linalg.eigh(f64.T @ f64)
    lam, v = np.clip(lam[::-1], 0.0, None), v[:, ::-1]
    keep = lam > 1e-12 * max(lam[0], np.finfo(np.float64).tiny)
    u = (f64 @ v) * np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
    return u, np.where(keep, lam, 0.0)


#: Rows of landmark columns computed at a time by the matrix-free preconditioner.
_COLUMN_CHUNK = 4096


def _mixed_columns(spec, x, idx, w, dt, tiling) -> np.ndarray:
    """``sum_l w[k, l] Theta_l(x, x[idx])`` for each row ``k`` of ``w (K, L)``,
    ``(K, n, m)``, in row chunks: the ``L`` layer kernels are never held for all
    rows at once (``L / K`` times less memory)."""
    out = np.empty((len(w), len(x), len(idx)), dt)
    for r0 in range(0, len(x), _COLUMN_CHUNK):
        block = layerwise_kernels(
            spec, x[r0 : r0 + _COLUMN_CHUNK], x[idx], dtype=dt, **tiling
        )
        out[:, r0 : r0 + _COLUMN_CHUNK] = jnp.einsum("kl,lij->kij", w, block)
    return out


def _nystrom_source(theta, spec, x, landmarks, dtype) -> tuple:
    """``(th, xx, landmarks, n, depth, dt)`` of either mode, validated."""
    free = theta is None
    if free == (spec is None or x is None):
        raise NFTKInputError(
            "pass either theta (cached kernels) or both spec and x (matrix-free), "
            "not both and not neither."
        )
    if landmarks is None:
        landmarks = "uniform" if free else "greedy"
    if landmarks not in ("greedy", "uniform"):
        raise NFTKInputError(
            f"landmarks must be 'greedy' or 'uniform', got {landmarks!r}."
        )
    if free and landmarks == "greedy":
        raise NFTKInputError(
            "landmarks='greedy' needs the cached kernels (theta); use "
            "landmarks='uniform' with spec and x."
        )
    if free:
        if not isinstance(spec, MLP):
            raise NFTKTypeError(
                f"spec must be an nftk_jax.MLP, got {type(spec).__name__}."
            )
        xx = check_inputs(x, "x")
        return None, xx, landmarks, xx.shape[0], spec.depth, resolve_dtype(dtype)
    dt = resolve_dtype(None)
    th = jnp.asarray(theta, dt)
    if th.ndim != 3 or th.shape[1] != th.shape[2]:
        raise NFTKInputError(
            f"theta must be the (L, n, n) training kernels, got shape {th.shape}."
        )
    return th, None, landmarks, th.shape[1], th.shape[0], dt


def nystrom_preconditioner(
    theta: Any,
    omega: Any,
    *,
    ridge: float,
    rank: int = 100,
    seed: int = 0,
    spec: MLP | None = None,
    x: Any = None,
    landmarks: str | None = None,
    dtype: Any = None,
    block_size: int | None = None,
    memory_budget: int | None = None,
    devices: Any = None,
    scale_complement: bool = True,
    per_class: bool = False,
) -> NystromPreconditioner:
    r"""Rank-``m`` Nyström preconditioner of the mean kernel, or of each class's.

    The mean kernel :math:`\bar K = \frac1d \sum_c K_c = \sum_l \bar\omega_l
    \Theta_l`, :math:`\bar\omega = \frac1d \sum_c \Omega_{c,:}`, is approximated from
    ``m`` landmark columns :math:`C = \bar K_{:,S}`:
    :math:`\hat K = C\,\bar K_{SS}^{+} C^\top = F F^\top`. With the thin SVD
    :math:`F = U \Sigma V^\top`, :math:`\hat K = U \Sigma^2 U^\top` and the
    preconditioner applies :math:`(\hat K + \rho I)^{-1}` by Woodbury on the range of
    :math:`U` in :math:`O(n m)` per column (see :class:`NystromPreconditioner` for
    the complement, ``scale_complement``).

    With ``per_class`` each class gets :math:`\hat K_c` of its own kernel
    :math:`K_c = \sum_l \Omega_{cl}\Theta_l` from the same landmarks (their layer
    columns are computed once and mixed per class): ``d`` bases of ``n x m`` floats
    instead of one, and fewer CG iterations when the rows of :math:`\Omega` weight
    different layers (on 8,000 Fashion-MNIST images with a learned
    :math:`\Omega`, rank 800: relative residual 6e-2 after 8 iterations against
    1.8e-1 for the shared one; docs/scaling.md).

    Landmarks:

    * ``'greedy'`` (default with ``theta``): pivoted Cholesky, each landmark the
      point worst explained by the previous ones (per class: its own pivots);
      needs the cached kernels.
    * ``'uniform'`` (default and only choice with ``spec``/``x``): ``m`` points drawn
      without replacement with ``seed``; their columns come from
      ``layerwise_kernels(spec, x, x[S])``, so no ``(n, n)`` kernel is formed.

    Args:
        theta: ``(L, n, n)`` cached kernels, or ``None`` with ``spec`` and ``x``.
        omega: ``(d, L)`` non-negative layer weights.
        ridge: :math:`\rho > 0`, the ridge of the systems to precondition.
        rank: number of landmarks ``m >= 1`` (clipped to ``n``).
        seed: seed of the uniform landmark draw.
        spec: the architecture (matrix-free mode).
        x: ``(n, m)`` training inputs (matrix-free mode).
        landmarks: ``'greedy'``, ``'uniform'`` or ``None`` for the default.
        dtype, block_size, memory_budget, devices: kernel evaluation in
            matrix-free mode, as in :func:`~nftk_jax.layerwise_kernels`.
        scale_complement: divide the complement of the landmark subspace by
            :math:`\lambda_m + \rho` (default) instead of :math:`\rho`; ``False``
            gives exactly :math:`(\hat K + \rho I)^{-1}`.
        per_class: one approximation per row of ``omega`` (the systems' columns
            must then be its ``d`` classes, in order) instead of the mean's.

    Returns:
        A :class:`NystromPreconditioner` to pass as ``preconditioner=``.
    """
    rho = check_ridge(ridge)
    rank = check_positive_int(rank, "rank")
    th, xx, landmarks, n, depth, dt = _nystrom_source(theta, spec, x, landmarks, dtype)
    om = np.asarray(omega, dtype=np.float64)
    n_classes = om.shape[0] if om.ndim == 2 else 1
    om = check_omega(om, n_classes=n_classes, depth=depth)
    w = jnp.asarray(om if per_class else om.mean(axis=0, keepdims=True), dt)
    m = min(rank, n)
    if landmarks == "greedy":
        pivots = [_pivoted_cholesky(th, wk, rank=m) for wk in w]
        factors = [f for f, _ in pivots]
        idx = np.stack([np.asarray(p, dtype=np.int64) for _, p in pivots])
        basis = np.empty((len(w), n, m), dt)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
        if th is None:
            tiling = dict(block_size=block_size, memory_budget=memory_budget,
                          devices=devices)  # fmt: skip
            basis = _mixed_columns(spec, xx, idx, w, dt, tiling)
        else:
            basis = np.array(jnp.einsum("kl,lij->kij", w, th[:, :, idx]))
        factors = None
    eigvals = np.empty((len(w), m))
    for k in range(len(w)):  # one class at a time: U_k overwrites its columns
        if factors is None:  # uniform: F from the landmark columns
            f = _nystrom_factor(jnp.asarray(basis[k]), jnp.asarray(idx))
        else:  # greedy: pivoted Cholesky gave F
            f = factors[k]
        basis[k], eigvals[k] = _eig_of_factor(f)
    shift = rho + (eigvals[:, -1] if scale_complement else np.zeros(len(w)))
    # matrix-free: the basis stays on the host (see NystromPreconditioner)
    to = np.asarray if th is None else jnp.asarray
    eigvals = eigvals.astype(dt)
    if per_class:
        return NystromPreconditioner(to(basis), to(eigvals), rho, shift, idx)
    return NystromPreconditioner(
        to(basis[0]), to(eigvals[0]), rho, float(shift[0]),
        idx if idx.ndim == 1 else idx[0],
    )  # fmt: skip


#: Largest n for which :func:`cholesky_preconditioner` stores the inverse factor by
#: default (3 n^2 floats at the inversion's peak: 1.5 GiB in float64).
INVERT_MAX_N = 8192


def cholesky_preconditioner(
    theta: Any,
    omega: Any,
    *,
    ridge: float,
    dtype: Any = None,
    invert: bool | None = None,
) -> CholeskyPreconditioner:
    r"""Factorise the mean kernel once; precondition every class's CG with it.

    :math:`\bar K = \sum_l \bar\omega_l\Theta_l` with
    :math:`\bar\omega = \frac1d\sum_c\Omega_{c,:}`; costs one :math:`n\times n`
    Cholesky factorisation and one triangular inversion (:math:`\frac23 n^3`
    flops, instead of :math:`\frac d3 n^3` for per-class factors) and
    :math:`n^2` floats. A jitter is added, with a warning, if
    :math:`\bar K + \rho I` is not numerically positive definite.

    Args:
        theta: ``(L, n, n)`` cached training kernels, or a square layer operator
            (:mod:`nftk_jax.kernels._operators`), whose ``combine`` forms the
            mean kernel tile by tile.
        omega: ``(d, L)`` non-negative layer weights (or ``(1, L)``).
        ridge: :math:`\rho > 0`, the ridge of the systems to precondition.
        dtype: of the factor; ``None``: float64 with x64 enabled. float32 halves
            its memory; the CG iterates stay in float64 and still converge to
            ``tol`` (the preconditioner only needs to be a fixed SPD map), in a
            few more iterations.
        invert: store :math:`R^{-1}` (fast products, :math:`3 n^2` floats at the
            peak of the inversion) or :math:`R` (triangular solves, :math:`2 n^2`
            floats at the peak of the factorisation); ``None``: invert when
            ``n <= 8192``.

    Returns:
        A :class:`CholeskyPreconditioner` to pass as ``preconditioner=``.

    Example:
        >>> import numpy as np
        >>> from nftk_jax import MLP, layerwise_kernels
        >>> from nftk_jax.linalg import cholesky_preconditioner, solve_cg
        >>> x = np.random.default_rng(0).normal(size=(40, 3))
        >>> theta = layerwise_kernels(MLP(depth=3), x)
        >>> y = np.random.default_rng(1).normal(size=(40, 2))
        >>> omega = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
        >>> pre = cholesky_preconditioner(theta, omega, ridge=1e-3)
        >>> res = solve_cg(theta, y, omega, ridge=1e-3, preconditioner=pre)
        >>> bool(res.residual.max() < 1e-8), res.iterations < 40
        (True, True)
    """
    rho = check_ridge(ridge)
    dt = resolve_dtype(dtype)
    shape = tuple(theta.shape) if _is_operator(theta) else np.shape(theta)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise NFTKInputError(
            f"theta must be the (L, n, n) training kernels, got shape {shape}."
        )
    om = np.asarray(omega, dtype=np.float64)
    n_classes = om.shape[0] if om.ndim == 2 else 1
    om = check_omega(om, n_classes=n_classes, depth=shape[0])
    w = om.mean(axis=0)
    if invert is None:
        invert = shape[1] <= INVERT_MAX_N
    if _is_operator(theta) and not invert:
        # The operator path exists for n too large to cache: factorise in place
        # (LAPACK on the host), so the peak is the n^2 floats of the mean kernel.
        chol, jitter = host_cholesky(
            lambda: theta.combine(w, dtype=dt),
            rho,
            what=_PRECONDITIONER,
            remedy=_REMEDY,
        )
        return CholeskyPreconditioner(chol, False, w, rho, jitter)
    if _is_operator(theta):
        mean = jnp.asarray(theta.combine(w, dtype=dt), dt)
    else:
        mean = jnp.einsum("l,lij->ij", jnp.asarray(w, dt), jnp.asarray(theta, dt))
    chol, jitter = cholesky_with_jitter(mean, rho, what=_PRECONDITIONER)
    del mean
    if invert:
        chol = _inverse_factor(chol)
    return CholeskyPreconditioner(chol, bool(invert), w, rho, float(jitter))
