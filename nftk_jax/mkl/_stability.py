r"""Stability of the learned :math:`\Omega` over resampled validation splits.

One fit learns :math:`\Omega` from one seeded validation split. Layer kernels at
neighbouring depths are strongly correlated, so a sparse :math:`\Omega` may pick one
of several near-equivalent layers by chance. :func:`omega_stability` refits
:math:`\Omega` on ``K`` resampled splits (seeds ``seed, seed + 1, ...``; optionally
with a bootstrap resample of the fitting part), reusing one set of precomputed
kernels, and summarises, per entry :math:`(c, l)`:

* the mean over runs and an empirical ``confidence`` interval (the
  :math:`\tfrac{1-q}{2}` and :math:`\tfrac{1+q}{2}` quantiles of the ``K`` values;
  with small ``K`` it is close to the range),
* the selection frequency: the fraction of runs in which
  :math:`\Omega_{cl} > \tau\sum_k\Omega_{ck}` (``threshold`` :math:`\tau`, default 0:
  exactly non-zero),

and, per class, the mean Spearman rank correlation of the row
:math:`\Omega_{c,:}` (the layer importance of class ``c``) over all pairs of runs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..core import NFTKInputError, progress_bar
from ._split import array_kernels, learn_and_refit, validation_split

__all__ = [
    "OmegaStability",
    "fit_split",
    "omega_stability",
    "rank_correlation",
    "resample_splits",
    "summarise_omegas",
]


class OmegaStability(NamedTuple):
    """Omega over ``K`` resampled validation splits, and its summaries."""

    omegas: np.ndarray  # (K, d, L) float64: learned Omega of every run
    mean: np.ndarray  # (d, L) mean over runs
    lower: np.ndarray  # (d, L) lower end of the empirical interval
    upper: np.ndarray  # (d, L) upper end
    selection_frequency: np.ndarray  # (d, L) fraction of runs with Omega > threshold
    rank_correlation: np.ndarray  # (d,) mean pairwise Spearman rho of each row
    confidence: float  # level of the interval
    splits: tuple  # K pairs (fit indices, validation indices) into theta's rows
    bootstrap: bool  # the fitting part was resampled with replacement
    threshold: float = 0.0  # selected: Omega[c, l] > threshold * row sum

    @property
    def mean_rank_correlation(self) -> float:
        """Mean of :attr:`rank_correlation` over classes (NaN rows ignored)."""
        r = self.rank_correlation
        return float(np.nanmean(r)) if np.any(np.isfinite(r)) else float("nan")


def rank_correlation(omegas: Any) -> np.ndarray:
    r"""Mean pairwise Spearman correlation of each class's layer importance.

    Args:
        omegas: ``(K, d, L)`` Omegas of ``K >= 2`` runs.

    Returns:
        ``(d,)``: for class ``c``, the mean of Spearman's :math:`\rho` between
        :math:`\Omega^{(a)}_{c,:}` and :math:`\Omega^{(b)}_{c,:}` over pairs
        :math:`a < b` (ties get average ranks; a pair with a constant row is
        skipped, NaN when all are).

    Example:
        >>> om = np.array([[[0.1, 0.3, 0.6]], [[0.2, 0.3, 0.5]], [[0.6, 0.3, 0.1]]])
        >>> rank_correlation(om).round(3).tolist()  # pairs: 1, -1, -1
        [-0.333]
    """
    from scipy.stats import rankdata

    om = np.asarray(omegas, dtype=np.float64)
    if om.ndim != 3 or om.shape[0] < 2:
        raise NFTKInputError(
            f"omegas must be (K, d, L) with K >= 2 runs, got shape {om.shape}."
        )
    ranks = rankdata(om, axis=2)
    ranks = ranks - ranks.mean(axis=2, keepdims=True)
    norm = np.linalg.norm(ranks, axis=2)  # (K, d)
    K = om.shape[0]
    out = np.full(om.shape[1], np.nan)
    for c in range(om.shape[1]):
        vals = [
            float(ranks[a, c] @ ranks[b, c] / (norm[a, c] * norm[b, c]))
            for a in range(K)
            for b in range(a + 1, K)
            if norm[a, c] > 0 and norm[b, c] > 0
        ]
        if vals:
            out[c] = float(np.mean(vals))
    return out


def _check_resamples(n_resamples: Any) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise NFTKInputError(
            f"n_resamples must be an integer >= 2, got {n_resamples!r}."
        )
    if n_resamples < 2:
        raise NFTKInputError(
            f"n_resamples must be >= 2 (stability compares runs), got {n_resamples}."
        )
    return int(n_resamples)


def _check_confidence(confidence: Any) -> float:
    try:
        q = float(confidence)
    except (TypeError, ValueError):
        q = float("nan")
    if not 0 < q < 1:
        raise NFTKInputError(f"confidence must lie in (0, 1), got {confidence!r}.")
    return q


def resample_splits(
    y: np.ndarray,
    n_resamples: int,
    *,
    validation_fraction: float = 0.2,
    seed: int = 0,
    bootstrap: bool = False,
) -> tuple:
    """``K`` seeded stratified (fit, validation) index pairs; ``seed + k`` for run k.

    Run ``k = 0`` is the split :func:`~nftk_jax.fit_mkl` makes with ``seed``. With
    ``bootstrap``, the fit indices are drawn with replacement from the fit part.
    """
    out = []
    for k in range(_check_resamples(n_resamples)):
        fit, val = validation_split(y, validation_fraction, seed + k, stratify=True)
        if bootstrap:
            rng = np.random.default_rng([seed, k, 1])
            fit = np.sort(rng.choice(fit, size=len(fit), replace=True))
        out.append((fit, val))
    return tuple(out)


def omega_stability(
    theta: Any,
    y: Any,
    *,
    ridge: float,
    n_resamples: int = 5,
    validation_fraction: float = 0.2,
    seed: int = 0,
    bootstrap: bool = False,
    confidence: float = 0.95,
    threshold: float = 0.0,
    progress: bool = False,
    **options: Any,
) -> OmegaStability:
    r"""Learn :math:`\Omega` on ``n_resamples`` validation splits of one kernel set.

    Args:
        theta: ``(L, n, n)`` layerwise kernels of all training inputs (computed
            once; every run slices them).
        y: ``(n,)`` integer labels (splits are stratified).
        ridge: :math:`\rho > 0`, the same for every run.
        n_resamples: number of runs ``K >= 2``.
        validation_fraction: share held out in each run.
        seed: run ``k`` splits with ``seed + k`` (run 0 is ``fit_mkl``'s split).
        bootstrap: also resample the fitting part with replacement.
        confidence: level of the per-entry empirical interval.
        threshold: an entry counts as selected in a run when it exceeds
            ``threshold`` times its row's sum (0: any non-zero entry).
        progress: a progress bar over runs.
        **options: passed to :func:`~nftk_jax.fit_mkl_kernels` (``constraint``,
            ``steps``, ``tol``, ``solver``, ...; ``objective`` is ``'val_mse'``).

    Returns:
        An :class:`OmegaStability`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(40, 3))
        >>> theta = np.stack([z @ z.T, np.eye(40)])
        >>> y = (z[:, 0] > 0).astype(int)
        >>> st = omega_stability(theta, y, ridge=0.1, n_resamples=3, steps=20)
        >>> st.omegas.shape, st.selection_frequency.shape
        ((3, 2, 2), (2, 2))
    """
    th = np.asarray(theta, dtype=np.float64)
    y_arr = np.asarray(y)
    if th.ndim != 3 or th.shape[1] != th.shape[2] or th.shape[1] != len(y_arr):
        raise NFTKInputError(
            f"theta must be (L, n, n) kernels of the n = {len(y_arr)} labelled "
            f"inputs, got shape {th.shape}."
        )
    if y_arr.ndim != 1 or y_arr.dtype.kind not in "iu":
        raise NFTKInputError(
            "y must be (n,) integer labels: omega_stability stratifies its splits "
            f"by class; got dtype {y_arr.dtype} and shape {y_arr.shape}."
        )
    if options.pop("objective", "val_mse") != "val_mse":
        raise NFTKInputError("omega_stability resamples validation splits: objective "
                         "must be 'val_mse'.")  # fmt: skip
    q = _check_confidence(confidence)
    splits = resample_splits(
        y_arr,
        n_resamples,
        validation_fraction=validation_fraction,
        seed=seed,
        bootstrap=bootstrap,
    )
    options.setdefault("n_classes", int(y_arr.max()) + 1)
    bar = progress_bar(len(splits), "Omega resamples", enabled=progress, unit="fit")
    omegas = []
    for fit, val in splits:
        omegas.append(fit_split(th, y_arr, fit, val, ridge=ridge, **options))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return summarise_omegas(np.stack(omegas), confidence=q, splits=splits,
                            bootstrap=bootstrap, threshold=threshold)  # fmt: skip


def fit_split(
    theta: np.ndarray,
    y: np.ndarray,
    fit: np.ndarray,
    val: np.ndarray,
    *,
    ridge: float,
    **options: Any,
) -> np.ndarray:
    """Omega ``(d, L)`` learned on rows ``fit`` of ``theta``, validated on ``val``."""
    res = learn_and_refit(
        array_kernels(theta), y, (fit, val), ridge=ridge, refit=False, **options
    )
    return np.asarray(res.omega, dtype=np.float64)


def summarise_omegas(
    omegas: Any,
    *,
    confidence: float = 0.95,
    splits: tuple = (),
    bootstrap: bool = False,
    threshold: float = 0.0,
) -> OmegaStability:
    """Mean, interval, selection frequency and rank correlation of ``(K, d, L)``."""
    om = np.asarray(omegas, dtype=np.float64)
    if om.ndim != 3:
        raise NFTKInputError(f"omegas must be (K, d, L), got shape {om.shape}.")
    q = _check_confidence(confidence)
    tau = float(threshold)
    if not 0 <= tau < 1:
        raise NFTKInputError(f"threshold must lie in [0, 1), got {threshold!r}.")
    selected = om > tau * om.sum(axis=2, keepdims=True)
    lo, hi = np.quantile(om, [(1 - q) / 2, (1 + q) / 2], axis=0)
    return OmegaStability(
        omegas=om,
        mean=om.mean(axis=0),
        lower=lo,
        upper=hi,
        selection_frequency=np.mean(selected, axis=0),
        rank_correlation=rank_correlation(om),
        confidence=q,
        splits=tuple(splits),
        bootstrap=bool(bootstrap),
        threshold=tau,
    )
