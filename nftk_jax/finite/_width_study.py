r"""How fast the finite network approaches its infinite-width kernel machine.

For every width ``w`` and seed, :func:`compare_widths` trains the finite network of
``spec`` (fixed :math:`\Omega`, centred, weight decay :math:`\rho / n`) and measures

* ``pred_gap``: :math:`\lVert \hat F_w - F_\infty\rVert_F / \lVert F_\infty\rVert_F`
  between its test predictions and the Theorem-1 KRR predictions with the same ridge;
* ``ntk_gap``: :math:`\lVert \hat K_w - K\rVert_F / \lVert K\rVert_F` between the
  empirical combined NTK at initialisation and :math:`K_c = \sum_l\Omega_{cl}\Theta_l`
  on a probe subset of the training inputs.

Both gaps are fluctuations of order :math:`w^{-1/2}`, so the least-squares slope of
:math:`\log(\mathrm{gap})` against :math:`\log w` is about :math:`-1/2`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..core import (
    NFTKInputError,
    NFTKTypeError,
    atomic_path,
    check_positive_float,
    check_positive_int,
)
from ..kernels import layerwise_kernels
from ..linalg import (
    check_ridge,
    combine_kernels,
    encode_targets,
    krr_fit,
    krr_predict,
)
from ..model import MLP, check_spec_inputs
from ._network import (
    _check_init,
    _check_omega,
    _check_spec,
    combined_empirical_ntk,
    train_network,
)

__all__ = [
    "WidthStudy",
    "compare_widths",
    "gradient_descent_gap",
    "plot_width_study",
    "width_study_figure",
]

#: Training inputs on which the empirical NTK is compared (its cost is quadratic).
_NTK_PROBE = 16


class WidthStudy(NamedTuple):
    """Result of :func:`compare_widths`.

    Attributes:
        widths: hidden widths studied.
        seeds: initialisation seeds.
        pred_gap: relative Frobenius gap between the trained network's test
            predictions and the infinite-width KRR test predictions.
        ntk_gap: relative Frobenius gap between the empirical combined NTK at
            initialisation and :math:`\\sum_l\\Omega_{cl}\\Theta_l` on the probe inputs.
        acc_finite: test accuracy of the trained network (NaN for real targets).
        acc_infinite: test accuracy of the infinite-width KRR (NaN for real targets).
        slope_pred: least-squares slope of ``log(pred_gap)`` against ``log(width)``
            (all seeds pooled); about ``-0.5`` is expected; NaN for a single width.
        slope_ntk: the same for ``ntk_gap``.
        learning_rate: the step size used.
        steps: optimiser steps per run.
        opt_gap: relative gap between the infinite-width network trained by the
            same ``steps`` full-batch gradient steps and its converged (Theorem-1)
            predictions: the part of ``pred_gap`` that is optimisation, not width.
            When it is not small against ``pred_gap``, the slope flattens; more
            ``steps`` remove it. NaN with mini-batches.
    """

    widths: np.ndarray  # (W,) int64
    seeds: np.ndarray  # (S,) int64
    pred_gap: np.ndarray  # (W, S) float64
    ntk_gap: np.ndarray  # (W, S) float64
    acc_finite: np.ndarray  # (W, S) float64
    acc_infinite: float
    slope_pred: float
    slope_ntk: float
    learning_rate: float
    steps: int
    opt_gap: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types (lists, floats, ints; NaN stays NaN) for JSON."""
        out: dict[str, Any] = {}
        for key, value in self._asdict().items():
            out[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return out


def _slope(widths: np.ndarray, gaps: np.ndarray) -> float:
    """Least-squares slope of log(gap) on log(width), pooling the seeds."""
    x = np.repeat(np.log(widths.astype(np.float64)), gaps.shape[1])
    y = np.log(gaps.reshape(-1))
    ok = np.isfinite(y)
    if np.unique(x[ok]).size < 2:
        return math.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def gradient_descent_gap(
    theta: np.ndarray,
    theta_x: np.ndarray,
    y: np.ndarray,
    omega: np.ndarray,
    *,
    ridge: float,
    learning_rate: float,
    steps: int,
) -> float:
    r"""How far ``steps`` of full-batch gradient descent leave the kernel machine.

    In the infinite-width (linearised) limit, gradient descent with step
    :math:`\eta` on :math:`\frac1n\lVert f - y\rVert^2 + \frac{\rho}{n}
    \lVert\theta - \theta_0\rVert^2` from :math:`\theta_0` gives, after
    :math:`t` steps, the test predictions

    .. math:: F_t = K_*\,[I - (I - \tfrac{2\eta}{n}(K + \rho I))^t]
              (K + \rho I)^{-1} y

    per class (:math:`K = K_c`), which tend to the Theorem-1 predictions
    :math:`F_\infty`. Returns :math:`\lVert F_t - F_\infty\rVert_F /
    \lVert F_\infty\rVert_F` over all classes, from one eigendecomposition per
    class.

    Example:
        >>> th = np.eye(3)[None]                 # one layer, K = I
        >>> y = np.eye(3)
        >>> gap = gradient_descent_gap(th, th, y, np.ones((3, 1)), ridge=1.0,
        ...                            learning_rate=0.75, steps=1)
        >>> round(gap, 6)                        # (1 - 2 * 0.75 / 3 * 2) ** 1 = 0
        0.0
    """
    k = np.asarray(combine_kernels(theta, omega), np.float64)
    kx = np.asarray(combine_kernels(theta_x, omega), np.float64)
    n = k.shape[-1]
    eta = 2.0 * learning_rate / n
    diff, ref = [], []
    for c in range(k.shape[0]):
        s, u = np.linalg.eigh(k[c])
        z = u.T @ y[:, c] / (np.maximum(s, 0.0) + ridge)
        decay = (1.0 - eta * (np.maximum(s, 0.0) + ridge)) ** steps
        ref.append(kx[c] @ (u @ z))
        diff.append(kx[c] @ (u @ (decay * z)))
    return float(np.linalg.norm(diff) / np.linalg.norm(ref))


def _rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _check_ints(values: Any, name: str, minimum: int) -> np.ndarray:
    vals = tuple(values) if isinstance(values, Sequence | np.ndarray) else (values,)
    if not vals:
        raise NFTKInputError(f"{name} is empty; pass at least one value, e.g. (0,).")
    return np.array([check_positive_int(v, name, minimum=minimum) for v in vals])


def _reference(spec, om, xa, xt, y, rho, learning_rate) -> tuple:
    """Layer kernels, the Theorem-1 test predictions and the step size."""
    theta = np.asarray(layerwise_kernels(spec, xa))
    theta_x = np.asarray(layerwise_kernels(spec, xt, xa))
    ref = np.asarray(krr_predict(theta_x, krr_fit(theta, y, om, ridge=rho).alpha, om))
    if learning_rate is None:
        lam = np.linalg.eigvalsh(np.asarray(combine_kernels(theta, om)))[:, -1].max()
        lr = 0.5 * xa.shape[0] / (float(lam) + rho)
    else:
        lr = check_positive_float(learning_rate, "learning_rate")
    return theta, theta_x, ref, lr


def _report_run(width, seed, pred_gap, ntk_gap, res) -> None:
    print(
        f"width {width:>6d} seed {seed}: pred_gap {pred_gap:.4f} "
        f"ntk_gap {ntk_gap:.4f} "
        f"({res.train_seconds:.1f} s, {res.examples_per_second:.0f} ex/s)",
        file=sys.stderr,
    )


def compare_widths(
    spec: MLP,
    omega: Any,
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    ridge: float,
    widths: Sequence[int] = (64, 256, 1024, 4096),
    seeds: Sequence[int] = (0,),
    steps: int = 500,
    learning_rate: float | None = None,
    init: str = "ntk",
    centered: bool = True,
    batch_size: int | None = None,
    progress: bool = False,
) -> WidthStudy:
    r"""Train the finite network at several widths and compare it with Theorem 1.

    The infinite-width reference is
    :math:`F_\infty = K_c(X_*, X)(K_c(X, X) + \rho I)^{-1} Y_c` with
    :math:`K_c = \sum_l \Omega_{cl}\Theta_l`; every finite run minimises
    :math:`\frac1n\sum_i\lVert f(x_i) - y_i\rVert^2 + \frac{\rho}{n}
    \lVert\theta - \theta_0\rVert^2` (:func:`~nftk_jax.train_network`), whose
    linearised solution is that predictor with the empirical NTK. Integer labels
    become centred one-hot targets (``encode_targets``) for both.

    Args:
        spec: the architecture; its ``width`` is replaced by each entry of
            ``widths``.
        omega: ``(d, L)`` non-negative layer weights, fixed.
        x_train: ``(n, m)`` training inputs.
        y_train: ``(n,)`` integer labels or ``(n, d)`` real targets.
        x_test: ``(n_test, m)`` test inputs.
        y_test: ``(n_test,)`` labels or ``(n_test, d)`` targets (labels give
            accuracies).
        ridge: the KRR ridge :math:`\rho > 0`; training uses weight decay
            :math:`\rho / n`.
        widths: hidden widths, each >= 1.
        seeds: initialisation seeds, each >= 0.
        steps: optimiser steps per run (default 500).
        learning_rate: step size; ``None``: half the gradient-descent stability
            bound of the objective in the kernel regime,
            :math:`\eta = \frac12 \cdot \frac{2}{h_{\max}} = \frac{n}{2(\lambda_{\max}
            + \rho)}` with :math:`h_{\max} = \frac2n(\lambda_{\max}(K) + \rho)` the
            largest Hessian eigenvalue and :math:`\lambda_{\max}` the largest
            eigenvalue of any :math:`K_c(X, X)`; the factor 1/2 absorbs the
            finite-width NTK fluctuations.
        init: ``'ntk'`` (default). ``'xavier_normal'`` trains the paper's
            standard-parameterised network, whose NTK is not the one of ``spec``;
            its gaps then do not shrink with width.
        centered: train :math:`f(\theta) - f(\theta_0)` (default ``True``), the
            setting of Theorem 1.
        batch_size: mini-batch size; ``None`` (default): full batch.
        progress: a progress bar over each run's training steps, labelled with
            its width and seed, then one line per run to stderr.

    Returns:
        A :class:`WidthStudy`.

    Raises:
        ValueError: on a bad argument, naming it.
    """
    _check_spec(spec)
    init = _check_init(init)
    rho = check_ridge(ridge)
    widths_a = _check_ints(widths, "widths", 1)
    seeds_a = _check_ints(seeds, "seeds", 0)
    steps = check_positive_int(steps, "steps")
    xa = np.asarray(check_spec_inputs(spec, x_train, "x_train"), np.float64)
    xt = np.asarray(check_spec_inputs(spec, x_test, "x_test", like=xa), np.float64)
    n = xa.shape[0]
    om = _check_omega(omega, spec.depth)
    d = om.shape[0]
    y, labelled = encode_targets(y_train, n, n_classes=d, name="y_train")
    yt, _ = encode_targets(y_test, xt.shape[0], n_classes=d, name="y_test")
    labels = np.argmax(yt, axis=1) if labelled else None

    theta, theta_x, ref, lr = _reference(spec, om, xa, xt, y, rho, learning_rate)
    probe = xa[:_NTK_PROBE]
    k_probe = np.asarray(combine_kernels(theta[:, :_NTK_PROBE, :_NTK_PROBE], om))

    def accuracy(pred: np.ndarray) -> float:
        if labels is None:
            return math.nan
        return float(np.mean(np.argmax(pred, axis=1) == labels))

    shape = (len(widths_a), len(seeds_a))
    pred_gap, ntk_gap, acc = np.empty(shape), np.empty(shape), np.empty(shape)
    for i, width in enumerate(widths_a):
        spec_w = dataclasses.replace(spec, width=int(width))
        for j, seed in enumerate(seeds_a):
            res = train_network(
                spec_w, xa, y, omega=om, steps=steps, learning_rate=lr, ridge=rho,
                batch_size=batch_size, centered=centered, init=init, seed=int(seed),
                progress=f"width {width} seed {seed}" if progress else False,
            )  # fmt: skip
            pred = np.asarray(res.predict(xt), np.float64)
            k_emp = combined_empirical_ntk(
                spec_w, res.params0, probe, None, om, init=init
            )
            pred_gap[i, j] = _rel(pred, ref)
            ntk_gap[i, j] = _rel(k_emp, k_probe)
            acc[i, j] = accuracy(pred)
            if progress:
                _report_run(width, seed, pred_gap[i, j], ntk_gap[i, j], res)
    opt_gap = math.nan
    if batch_size is None and centered:
        opt_gap = gradient_descent_gap(
            theta, theta_x, y, om, ridge=rho, learning_rate=lr, steps=steps
        )
    return WidthStudy(
        opt_gap=opt_gap,
        widths=widths_a.astype(np.int64),
        seeds=seeds_a.astype(np.int64),
        pred_gap=pred_gap,
        ntk_gap=ntk_gap,
        acc_finite=acc,
        acc_infinite=accuracy(ref),
        slope_pred=_slope(widths_a, pred_gap),
        slope_ntk=_slope(widths_a, ntk_gap),
        learning_rate=lr,
        steps=steps,
    )


def width_study_figure(study: WidthStudy, *, title: str | None = None):
    """The matplotlib figure of :func:`plot_width_study` (not saved)."""
    if not isinstance(study, WidthStudy):
        raise NFTKTypeError(f"study must be a WidthStudy, got {type(study).__name__}.")
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    w = study.widths.astype(np.float64)
    fig, ax = plt.subplots(figsize=(6.0, 4.6), layout="constrained")
    series = (
        ("prediction gap", study.pred_gap, study.slope_pred, "C0"),
        ("NTK gap at init", study.ntk_gap, study.slope_ntk, "C1"),
    )
    for label, gaps, slope, color in series:
        for col in gaps.T:
            ax.plot(w, col, ".", color=color, alpha=0.35)
        mean = np.exp(np.mean(np.log(gaps), axis=1))
        ax.plot(w, mean, "o", color=color, label=f"{label} (slope {slope:.2f})")
        if np.isfinite(slope):
            icept = np.mean(np.log(mean)) - slope * np.mean(np.log(w))
            ax.plot(w, np.exp(icept) * w**slope, "--", color=color)
    ref = np.exp(np.mean(np.log(study.ntk_gap[0]))) * (w / w[0]) ** -0.5
    ax.plot(w, ref, ":", color="gray", label="width$^{-1/2}$")
    if np.isfinite(study.opt_gap) and study.opt_gap > 0:
        ax.axhline(study.opt_gap, color="C0", lw=0.8, alpha=0.6)
        ax.plot([], [], color="C0", lw=0.8, alpha=0.6,
                label=f"optimisation floor ({study.steps} steps)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(w, [str(int(v)) for v in w])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.tick_params(labelsize=9)
    ax.set_xlabel("hidden width", fontsize=10)
    ax.set_ylabel("relative gap to infinite width", fontsize=10)
    head = "Finite network vs NFT-K kernel machine"
    ax.set_title(head + (f"\n{title}" if title else ""), fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_width_study(
    study: WidthStudy, path: str | os.PathLike, *, title: str | None = None
) -> None:
    """Log-log plot of both gaps against width, with fitted lines, written atomically.

    Every seed is a faint point; the seed mean is a marker; the least-squares fit
    (the slope in the legend) is a dashed line, with a ``width ** -0.5`` guide and
    the optimisation floor ``opt_gap`` when known.

    Args:
        study: a :class:`WidthStudy`.
        path: destination ``.png``.
        title: second title line naming the data and depth, e.g.
            ``"digits, relu, L = 3, n = 500"``.
    """
    import matplotlib.pyplot as plt

    fig = width_study_figure(study, title=title)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=150)
    finally:
        plt.close(fig)
