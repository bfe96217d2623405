r"""Honest baselines for a learned :math:`\Omega`, with intervals and paired tests.

A user who learns :math:`\Omega` on a validation split would otherwise pick one depth
on that same split; the fair comparison is therefore

* the **validation-selected single depth**: the depth whose stand-alone NTK has the
  best validation accuracy (ties: the lower validation MSE, then the shallower
  depth), refit on the whole training set;
* the **uniform mix** :math:`\Omega_{cl} = 1/L`;
* the **learned** :math:`\Omega`, refit on the whole training set;

each with its test accuracy, a percentile bootstrap interval over test points, and,
when :math:`\Omega` was learned on ``K > 1`` resampled splits, the mean over splits
with a Student-t interval. The learned :math:`\Omega` is compared with each
baseline by McNemar's exact test and a paired bootstrap interval of the accuracy
difference on the same test points. The depth with the best *test* accuracy is
reported only as a row labelled *oracle*: no user can select it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "compare_learned",
    "honest_baselines",
    "mcnemar_test",
    "paired_bootstrap",
    "reference_baselines",
    "t_interval",
]


def t_interval(values: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lower, upper)``: Student-t interval of the mean of ``values``.

    A single value has the degenerate interval ``(v, v, v)``.

    Example:
        >>> [round(v, 3) for v in t_interval([0.9, 0.92, 0.94])]
        [0.92, 0.87, 0.97]
    """
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    half = float(
        t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    )
    return m, m - half, m + half


def mcnemar_test(correct_a: Any, correct_b: Any) -> dict:
    """McNemar's exact test of two classifiers on the same test points.

    Returns ``a_only`` (a right, b wrong), ``b_only`` and the two-sided exact
    binomial ``p_value`` of the discordant pairs (1 when there are none).

    Example:
        >>> mcnemar_test([1, 1, 1, 0], [0, 0, 1, 0])["a_only"]
        2
    """
    from scipy.stats import binomtest

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p_value": p}


def paired_bootstrap(
    correct_a: Any,
    correct_b: Any | None = None,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(estimate, lower, upper)`` of accuracy(a) - accuracy(b) (or accuracy(a)).

    Percentile bootstrap over test points, resampled jointly for both classifiers.

    Example:
        >>> est, lo, hi = paired_bootstrap([1, 1, 0, 1] * 25)
        >>> est, lo <= est <= hi
        (0.75, True)
    """
    a = np.asarray(correct_a, dtype=np.float64)
    diff = a if correct_b is None else a - np.asarray(correct_b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for i0 in range(0, n_boot, 256):
        k = min(256, n_boot - i0)
        idx = rng.integers(0, len(diff), size=(k, len(diff)))
        stats[i0 : i0 + k] = diff[idx].mean(axis=1)
    lo, hi = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(diff.mean()), float(lo), float(hi)


def _krr_scores(theta_tr, theta_te, Y, omega, ridge) -> np.ndarray:
    from ..linalg import krr_fit, krr_predict

    sol = krr_fit(theta_tr, Y, omega, ridge=ridge)
    return np.asarray(krr_predict(theta_te, sol.alpha, omega), dtype=np.float64)


def select_depth_on_validation(
    theta: np.ndarray, y: np.ndarray, fit: np.ndarray, val: np.ndarray, *, ridge: float
) -> tuple[int, np.ndarray]:
    """``(depth index, validation accuracies (L,))`` of the stand-alone layer NTKs."""
    from ..linalg import encode_targets

    theta = np.asarray(theta)  # numpy's fancy indexing (a JAX array: a view)
    L = theta.shape[0]
    d = int(y.max()) + 1
    Y, _ = encode_targets(y, len(y), n_classes=d)
    acc, mse = np.empty(L), np.empty(L)
    for l in range(L):
        s = _krr_scores(
            theta[l : l + 1, fit][:, :, fit],
            theta[l : l + 1, val][:, :, fit],
            Y[fit],
            np.ones((d, 1)),
            ridge,
        )
        acc[l] = np.mean(np.argmax(s, axis=1) == y[val])
        mse[l] = np.mean((s - Y[val]) ** 2)
    best = min(range(L), key=lambda l: (-acc[l], mse[l], l))
    return best, acc


def _row(name: str, correct: np.ndarray, per_split: list, confidence, seed) -> dict:
    acc, lo, hi = paired_bootstrap(correct, confidence=confidence, seed=seed)
    row = {"name": name, "test_accuracy": acc, "test_bootstrap_interval": [lo, hi]}
    if len(per_split) > 1:
        m, slo, shi = t_interval(per_split, confidence)
        row.update(per_split=list(per_split), split_mean=m, split_interval=[slo, shi])
    return row


def _test_correct(theta_tr, theta_te, Y, y_te, omega, ridge) -> np.ndarray:
    """``(m,)`` booleans: the test points the KRR predictor of ``omega`` gets right."""
    return np.argmax(_krr_scores(theta_tr, theta_te, Y, omega, ridge), 1) == y_te


def reference_baselines(
    theta_tr: np.ndarray,
    theta_te: np.ndarray,
    y_tr: np.ndarray,
    y_te: np.ndarray,
    *,
    ridge: float,
    splits: tuple,
    n_classes: int,
    on_fit: Callable[[], None] | None = None,
) -> dict:
    r"""The baselines that do not depend on the learned :math:`\Omega`.

    Args:
        theta_tr: ``(L, n, n)`` training kernels; theta_te: ``(L, m, n)`` test ones.
        y_tr, y_te: integer labels.
        ridge: :math:`\rho`.
        splits: ``K`` (fit, validation) index pairs into the training set.
        n_classes: ``d``.
        on_fit: called after each single-depth fit, the uniform fit and each
            split's depth selection (``L + 1 + K`` calls: a progress bar).

    Returns:
        ``{"single_correct": (L, m) bool, "uniform_correct": (m,) bool,
        "validation_depths": [0-based depth per split],
        "validation_accuracy_per_depth": [[L floats] per split]}``. Together with
        the learned Omegas' test predictions, :func:`compare_learned` turns it into
        the report of :func:`honest_baselines`.
    """
    from ..linalg import encode_targets

    L, d = theta_tr.shape[0], int(n_classes)
    Y, _ = encode_targets(y_tr, len(y_tr), n_classes=d)
    tick = on_fit or (lambda: None)
    single, one = [], np.ones((d, 1))
    for l in range(L):  # one layer's kernels, not a one-hot mix of all L
        single.append(
            _test_correct(theta_tr[l : l + 1], theta_te[l : l + 1], Y, y_te, one, ridge)
        )
        tick()
    uniform = _test_correct(
        theta_tr, theta_te, Y, y_te, np.full((d, L), 1.0 / L), ridge
    )
    tick()
    depths, val_acc = [], []
    for fit, val in splits:
        l, acc = select_depth_on_validation(theta_tr, y_tr, fit, val, ridge=ridge)
        depths.append(int(l))
        val_acc.append(acc.tolist())
        tick()
    return {
        "single_correct": np.stack(single),
        "uniform_correct": uniform,
        "validation_depths": depths,
        "validation_accuracy_per_depth": val_acc,
    }


def compare_learned(
    reference: dict, learned_correct: Any, *, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Rows, intervals and paired tests from :func:`reference_baselines`' output.

    Args:
        reference: the output of :func:`reference_baselines` (arrays may be lists,
            e.g. read back from JSON).
        learned_correct: ``(K, m)`` booleans of the Omegas learned on the ``K``
            splits (run 0 is the main one).
        confidence: level of every interval.
        seed: seed of the bootstraps.

    Returns:
        As :func:`honest_baselines`.
    """
    single = np.asarray(reference["single_correct"], dtype=bool)
    uniform = np.asarray(reference["uniform_correct"], dtype=bool)
    learned = np.asarray(learned_correct, dtype=bool)
    depths = list(reference["validation_depths"])
    oracle = int(np.argmax(single.mean(axis=1)))
    kw = {"confidence": confidence, "seed": seed}
    rows = [
        _row("learned Omega", learned[0], [c.mean() for c in learned], **kw),
        _row(
            "validation-selected single depth",
            single[depths[0]],
            [single[l].mean() for l in depths],
            **kw,
        ),
        _row("uniform mix", uniform, [], **kw),
        _row("oracle: best single depth on the test set", single[oracle], [], **kw),
    ]
    rows[1].update(depth=depths[0] + 1, depth_per_split=[l + 1 for l in depths])
    rows[3]["depth"] = oracle + 1
    tests = {}
    for key, other in (
        ("vs_validation_depth", single[depths[0]]),
        ("vs_uniform", uniform),
    ):
        diff, lo, hi = paired_bootstrap(learned[0], other, **kw)
        tests[key] = {
            **mcnemar_test(learned[0], other),
            "accuracy_difference": diff,
            "bootstrap_interval": [lo, hi],
        }
    return {
        "rows": rows,
        "paired_tests": tests,
        "validation_accuracy_per_depth": list(
            reference["validation_accuracy_per_depth"]
        ),
        "confidence": confidence,
        "n_splits": len(learned),
        "single_depth_test_accuracy": [float(c.mean()) for c in single],
    }


def honest_baselines(
    theta_tr: np.ndarray,
    theta_te: np.ndarray,
    y_tr: np.ndarray,
    y_te: np.ndarray,
    *,
    ridge: float,
    omegas: Any,
    splits: tuple,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    r"""Learned Omega against the validation-selected depth and the uniform mix.

    :func:`reference_baselines` (what does not depend on the learned Omega, which
    ``nftk fit`` computes before learning it and keeps for a resumed run) followed
    by :func:`compare_learned`.

    Args:
        theta_tr: ``(L, n, n)`` training kernels; theta_te: ``(L, m, n)`` test ones.
        y_tr, y_te: integer labels.
        ridge: :math:`\rho`.
        omegas: ``(K, d, L)`` Omegas learned on ``splits`` (run 0 is the main one).
        splits: ``K`` (fit, validation) index pairs into the training set.
        confidence: level of every interval.
        seed: seed of the bootstraps.

    Returns:
        ``{"rows": [learned, validation-selected depth, uniform, oracle],
        "paired_tests": {...}, "confidence": ...}``, JSON-ready.
    """
    from ..linalg import encode_targets

    om = np.asarray(omegas, dtype=np.float64)
    K, d, L = om.shape
    ref = reference_baselines(
        theta_tr, theta_te, y_tr, y_te, ridge=ridge, splits=splits, n_classes=d
    )
    Y, _ = encode_targets(y_tr, len(y_tr), n_classes=d)
    learned = [_test_correct(theta_tr, theta_te, Y, y_te, o, ridge) for o in om]
    return compare_learned(ref, learned, confidence=confidence, seed=seed)
