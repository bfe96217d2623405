r"""Kernel hyperparameters chosen on the training set by closed-form leave-one-out.

The layer kernels depend on the architecture's hyperparameters (activation, weight
and bias scales; for an RNN also the recurrent and input scales). Choosing them on
the test set is an oracle; choosing them on a small validation split is noisy. The
training set alone gives an honest, cheap criterion: for every candidate spec,
compute the training kernels :math:`\Theta_l(X, X)` (the test kernels are not
needed), mix the layers uniformly, :math:`K = \frac1L \sum_l \Theta_l`, and score
the candidate by the smallest mean squared leave-one-out residual over the ridge
grid of :func:`~nftk_jax.mkl.select_ridge` (Allen's PRESS in closed form, one
eigendecomposition per candidate). The grid is relative to the mean diagonal of
:math:`K`, and the leave-one-out residual is invariant to scaling :math:`K` and the
ridge together, so scores of kernels of different size compare directly. The
leave-one-out accuracy at the selected ridge is reported beside the score.

The inputs can be a choice too: given a mapping of named *views* of the same
training rows (e.g. the raw sequences and the sequences resampled to a few common
lengths), every candidate is scored on every view and the best (view, spec) pair
wins. The scores compare across views because the targets and rows are the same;
a view must be a function of each training series alone, so that the test series
can be put through the same map.

The winner is then used like any spec: Omega is learned on its kernels
(:func:`~nftk_jax.fit_mkl`), which the criterion does not anticipate (it scores the
uniform mix). Cost: one training-kernel evaluation and one ``n x n``
eigendecomposition per candidate.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..core import NFTKInputError, progress_bar
from ._ridge import (
    RidgeGridEdgeWarning,
    grid_edge,
    select_ridge_and_loo_accuracy,
    select_ridge_for_labels,
)

__all__ = ["SpecSelection", "select_spec"]


class SpecSelection(NamedTuple):
    """The selected architecture and every candidate's leave-one-out figures."""

    spec: Any  # the candidate with the smallest score
    index: int  # its position in ``candidates`` (with views: in views x candidates)
    scores: np.ndarray  # (S,) float64: min over the ridge grid of the LOO score
    ridges: np.ndarray  # (S,) float64: the ridge attaining it (absolute)
    loo_accuracy: np.ndarray  # (S,) float64: LOO accuracy there (labels only, else nan)
    edges: tuple  # (S,) 'lower' | 'upper' | None: ridge on an edge of its grid
    input: Any = None  # key of the winning view when ``x`` maps names to views


def select_spec(
    candidates: Sequence[Any],
    x: Any,
    y: Any,
    *,
    n_classes: int | None = None,
    method: str = "loo",
    criterion: str = "error",
    memory_budget: int | None = None,
    dtype: Any = None,
    progress: bool = False,
) -> SpecSelection:
    r"""Pick the architecture whose training kernels predict best out of sample.

    For candidate :math:`s` with training kernels :math:`\Theta^{(s)}_l(X, X)`,
    the score is :math:`\min_\rho \frac1n \sum_c \sum_i e_{ic}(\rho)^2` with
    :math:`e_{ic}` the leave-one-out residual of the uniform mix
    :math:`K^{(s)} = \frac1L\sum_l \Theta^{(s)}_l` (``method='loo'``; ``'gcv'``
    scores by generalised cross-validation instead). Only training inputs are
    used, so the choice is honest.

    Args:
        candidates: specs (``MLP`` or ``RNN``), e.g. a grid over ``sigma_w``.
        x: training inputs in any form ``layerwise_kernels`` takes for the specs,
            or a mapping from names to such inputs (views of the same rows).
        y: ``(n,)`` integer labels (or ``(n, d)`` float targets).
        n_classes: number of classes when some are absent from ``y``.
        method: ``'loo'`` or ``'gcv'``, as in :func:`select_ridge`.
        criterion: ``'error'``: the smallest score wins; ``'accuracy'`` (integer
            labels): the highest leave-one-out accuracy wins,
            ties broken by the smaller score (accuracy is what a classifier is
            judged by, but on a few dozen rows it ties often).
        memory_budget: bytes per kernel tile, passed to ``layerwise_kernels``.
        dtype: kernel dtype (``None``: float64 with x64 enabled, else float32).
        progress: a progress bar over the candidates.

    Returns:
        A :class:`SpecSelection`.

    Example:
        >>> import numpy as np
        >>> from nftk_jax import MLP
        >>> from nftk_jax.mkl import select_spec
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(40, 5)); y = (x[:, 0] > 0).astype(int)
        >>> sel = select_spec([MLP(2, b_std=0.1), MLP(2, b_std=1.0)], x, y)
        >>> sel.scores.shape, sel.index in (0, 1)
        ((2,), True)
        >>> views = {"all": x, "first 2": x[:, :2]}
        >>> sel = select_spec([MLP(2, b_std=0.1)], views, y)
        >>> sel.scores.shape, sel.input in views
        ((2,), True)
    """
    from ..kernels import layerwise_kernels

    candidates = _check_arguments(candidates, criterion)
    views = _views(x)
    labels = np.asarray(y)
    is_labels = labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer)
    scores, ridges, accs, edges = [], [], [], []
    bar = progress_bar(
        len(views) * len(candidates), "candidate specs", enabled=progress, unit="spec"
    )
    for key, spec in ((k, c) for k in views for c in candidates):
        theta = np.asarray(
            layerwise_kernels(
                spec, views[key], memory_budget=memory_budget, dtype=dtype
            )
        )
        if theta.shape[1] != labels.shape[0]:
            raise NFTKInputError(
                f"select_spec: the inputs{_name(key)} have {theta.shape[1]} rows "
                f"but y has {labels.shape[0]}."
            )
        if is_labels:  # the LOO accuracy comes from the selection's eigenvectors
            sel, acc = select_ridge_and_loo_accuracy(
                theta, labels, method, n_classes=n_classes
            )
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RidgeGridEdgeWarning)
                sel = select_ridge_for_labels(theta, y, method, n_classes=n_classes)
            acc = np.nan
        scores.append(float(np.min(sel.scores)))
        ridges.append(sel.ridge)
        edges.append(grid_edge(sel))
        accs.append(acc)
        del theta
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    scores_arr = np.asarray(scores, dtype=np.float64)
    if not np.any(np.isfinite(scores_arr)):
        raise NFTKInputError(
            "select_spec: no candidate gave a finite leave-one-out score; check the "
            "inputs for constant or duplicated rows."
        )
    best = _best(scores_arr, np.asarray(accs, dtype=np.float64), criterion)
    if edges[best] is not None:
        warnings.warn(
            f"select_spec: the selected candidate's ridge {ridges[best]:.3g} is the "
            f"{edges[best]} edge of its grid; its score may improve beyond the grid.",
            RidgeGridEdgeWarning,
            stacklevel=2,
        )
    keys = list(views)
    return SpecSelection(
        spec=candidates[best % len(candidates)],
        index=best,
        scores=scores_arr,
        ridges=np.asarray(ridges, dtype=np.float64),
        loo_accuracy=np.asarray(accs, dtype=np.float64),
        edges=tuple(edges),
        input=keys[best // len(candidates)] if isinstance(x, Mapping) else None,
    )


_SINGLE = object()  # the key of the one view when ``x`` is not a mapping

#: Names accepted by ``criterion=``.
CRITERIA = ("error", "accuracy")


def _check_arguments(candidates: Sequence[Any], criterion: str) -> list:
    if criterion not in CRITERIA:
        raise NFTKInputError(
            f"criterion={criterion!r} is unknown; choose one of {list(CRITERIA)}."
        )
    candidates = list(candidates)
    if not candidates:
        raise NFTKInputError(
            "candidates must hold at least one spec, e.g. "
            "[RNN(3, sigma_w=1.0), RNN(3, sigma_w=1.4)]."
        )
    return candidates


def _best(scores: np.ndarray, accs: np.ndarray, criterion: str) -> int:
    """The winning candidate: smallest score, or (``'accuracy'``) highest
    leave-one-out accuracy with the smaller score breaking ties."""
    if criterion == "error":
        return int(np.nanargmin(scores))
    if not np.any(np.isfinite(accs)):
        raise NFTKInputError(
            "select_spec: criterion='accuracy' needs integer class labels y (the "
            "leave-one-out accuracy); use criterion='error' for float targets."
        )
    ok = np.isfinite(scores) & np.isfinite(accs)
    top = np.flatnonzero(ok & (accs == np.max(accs[ok])))
    return int(top[np.argmin(scores[top])])


def _views(x: Any) -> dict:
    if not isinstance(x, Mapping):
        return {_SINGLE: x}
    if not x:
        raise NFTKInputError(
            "select_spec: the mapping of input views is empty; give at least one, "
            "e.g. {'raw': sequences}."
        )
    return dict(x)


def _name(key: Any) -> str:
    return "" if key is _SINGLE else f" of view {key!r}"
