"""Benchmark: is the learned Omega better than a single depth chosen on validation?

For one data set, the layerwise NTKs (ReLU, L = 10, NTK parameterisation, float64,
trace-normalised as in ``nftk fit``) of the training and test inputs are computed
once. Omega is learned (val_mse + simplex, ridge 1e-3 x mean diagonal) on K seeded
stratified 20 % validation splits of the training set (``omega_stability``), and
for each split the single depth with the best validation accuracy is selected on
the same split. Reported: per split and on average (Student-t interval over the K
splits), the test accuracy of the learned Omega (refit on the whole training set),
of the validation-selected depth and of the uniform mix; the depth best on the test
set as an oracle row; McNemar and paired-bootstrap comparisons on split 0; Omega's
stability (selection frequency, mean rank correlation between runs).

With ``--calibration`` (MNIST-5k in RESULTS.md) also the predictive uncertainty of
split 0's Omega: GP posterior standard deviations of every class at the test
inputs, the expected calibration error (15 bins) of (a) the Gaussian class
probabilities of the posterior (``gaussian_class_probabilities``), raw and with one
scale of the standard deviations fitted on the validation split, and (b) a softmax
of the posterior means with a temperature fitted on the validation split; and the
relation between the predicted class's standard deviation and the error.

Usage::

    .venv/bin/python benchmarks/bench_interpret.py --dataset digits
    .venv/bin/python benchmarks/bench_interpret.py --dataset mnist5k --calibration
    .venv/bin/python benchmarks/bench_interpret.py --dataset fashion \\
        --n-train 3000 --n-test 7000
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from nftk_jax import MLP, layerwise_kernels, omega_stability  # noqa: E402
from nftk_jax.experiment._baselines import honest_baselines  # noqa: E402
from nftk_jax.linalg._krr import encode_targets, krr_fit  # noqa: E402
from nftk_jax.mkl._uncertainty import (  # noqa: E402
    _test_diagonal,
    gaussian_class_probabilities,
    posterior_variance,
)

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _load(name: str, n_train: int | None, n_test: int | None):
    from nftk_jax.data import load_digits, load_mnist5k
    from nftk_jax.data._idx import load_idx_dataset

    if name == "digits":
        return load_digits()
    if name == "mnist5k":
        return load_mnist5k(n_train=n_train or 4000, n_test=n_test or 1000)
    return load_idx_dataset(FASHION_DIR, n_train=n_train or 3000, n_test=n_test or 7000)


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence, equal-width bins."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, n_bins + 1)
    out = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            out += sel.mean() * abs(right[sel].mean() - conf[sel].mean())
    return float(out)


def _nll(probs, labels):
    return float(
        -np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12)))
    )


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _mean_std(th_tr, th_x, diag_x, Y, omega, ridge):
    sol = krr_fit(th_tr, Y, omega, ridge=ridge)
    a = np.asarray(sol.alpha)
    mean = np.einsum("cl,lmn,nc->mc", omega, th_x, a)
    var = posterior_variance(th_tr, th_x, diag_x, omega, ridge=ridge)
    return mean, np.sqrt(var)


def _auroc(score, positive):
    from scipy.stats import rankdata

    r = rankdata(score)
    n1, n0 = positive.sum(), (~positive).sum()
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / max(n1 * n0, 1))


def calibration(spec, ds, th_tr, th_te, scale, omega, split, ridge) -> dict:
    y_tr, y_te = np.asarray(ds.y_train), np.asarray(ds.y_test)
    d = omega.shape[0]
    Y, _ = encode_targets(y_tr, len(y_tr), n_classes=d)
    fit, val = split
    diag_tr = np.diagonal(th_tr, axis1=1, axis2=2)
    t0 = time.perf_counter()
    mv, sv = _mean_std(th_tr[:, fit][:, :, fit], th_tr[:, val][:, :, fit],
                       diag_tr[:, val], Y[fit], omega, ridge)  # fmt: skip
    diag_te = _test_diagonal(spec, np.asarray(ds.x_test), get="ntk", dtype=np.float64)
    diag_te = diag_te / scale[:, None]
    mt, st = _mean_std(th_tr, th_te, diag_te, Y, omega, ridge)
    t_var = time.perf_counter() - t0
    grid = np.logspace(-2, 2, 33)
    s_best = min(
        grid, key=lambda s: _nll(gaussian_class_probabilities(mv, s * sv), y_tr[val])
    )
    temps = np.logspace(-3, 1, 41)
    t_best = min(temps, key=lambda t: _nll(_softmax(mv / t), y_tr[val]))
    pred = mt.argmax(axis=1)
    wrong = pred != y_te
    sd_pred = st[np.arange(len(pred)), pred]
    q = np.quantile(sd_pred, [0.25, 0.5, 0.75])
    bins = np.digitize(sd_pred, q)
    p_raw = gaussian_class_probabilities(mt, st)
    p_fit = gaussian_class_probabilities(mt, s_best * st)
    p_soft = _softmax(mt / t_best)
    return {
        "test_accuracy": float(np.mean(~wrong)),
        "ece_gaussian_raw": ece(p_raw, y_te),
        "ece_gaussian_scaled": ece(p_fit, y_te),
        "std_scale": float(s_best),
        "ece_softmax_temperature": ece(p_soft, y_te),
        "temperature": float(t_best),
        "nll": {
            "gaussian_raw": _nll(p_raw, y_te),
            "gaussian_scaled": _nll(p_fit, y_te),
            "softmax": _nll(p_soft, y_te),
        },  # fmt: skip
        "auroc_error_from_std": _auroc(sd_pred, wrong),
        "auroc_error_from_confidence": _auroc(-p_fit.max(axis=1), wrong),
        "error_by_std_quartile": [float(wrong[bins == b].mean()) for b in range(4)],
        "std_quartile_edges": q.tolist(),
        "mean_std_right_wrong": [
            float(sd_pred[~wrong].mean()),
            float(sd_pred[wrong].mean()),
        ],
        "variance_seconds": t_var,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("digits", "mnist5k", "fashion"), required=True)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--resamples", type=int, default=5)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--calibration", action="store_true")
    p.add_argument("--memory-budget", type=int, default=2**28, help="bytes per tile")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--figures", default=None, help="write Fig. 2 and stability here")
    args = p.parse_args(argv)
    ds = _load(args.dataset, args.n_train, args.n_test)
    spec = MLP(depth=args.depth)
    x_tr, x_te = np.asarray(ds.x_train), np.asarray(ds.x_test)
    y_tr, y_te = np.asarray(ds.y_train), np.asarray(ds.y_test)
    print(f"{ds.name}: {len(x_tr)} train / {len(x_te)} test, L = {args.depth}, "
          f"K = {args.resamples}; {platform.processor() or platform.machine()}, "
          f"jax {jax.__version__}")  # fmt: skip
    t0 = time.perf_counter()
    mb = args.memory_budget
    th_tr = np.array(layerwise_kernels(spec, x_tr, memory_budget=mb))
    # Test kernels in row blocks, so that only one block is ever held twice.
    th_te = np.empty((args.depth, len(x_te), len(x_tr)))
    for i0 in range(0, len(x_te), 1000):
        th_te[:, i0 : i0 + 1000] = layerwise_kernels(
            spec, x_te[i0 : i0 + 1000], x_tr, memory_budget=mb
        )
    t_kern = time.perf_counter() - t0
    scale = np.mean(np.diagonal(th_tr, axis1=1, axis2=2), axis=1)
    th_tr /= scale[:, None, None]
    th_te /= scale[:, None, None]
    ridge = 1e-3 * float(np.mean(np.diagonal(th_tr, axis1=1, axis2=2)))
    t0 = time.perf_counter()
    st = omega_stability(th_tr, y_tr, ridge=ridge, n_resamples=args.resamples,
                         steps=args.steps, n_classes=len(ds.classes))  # fmt: skip
    t_learn = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = honest_baselines(th_tr, th_te, y_tr, y_te, ridge=ridge, omegas=st.omegas,
                            splits=st.splits)  # fmt: skip
    t_base = time.perf_counter() - t0
    out = {
        "dataset": ds.name, "n_train": len(x_tr), "n_test": len(x_te),
        "depth": args.depth, "resamples": args.resamples, "ridge": ridge,
        "baselines": base,
        "stability": {
            "selection_frequency": st.selection_frequency.tolist(),
            "mean": st.mean.tolist(), "lower": st.lower.tolist(),
            "upper": st.upper.tolist(),
            "rank_correlation": st.rank_correlation.tolist(),
            "mean_rank_correlation": st.mean_rank_correlation,
            "sparsity_per_run": [float(np.mean(o == 0)) for o in st.omegas],
            "omegas": st.omegas.tolist(),
        },
        "seconds": {"kernels": t_kern, "omega_learning": t_learn, "baselines": t_base},
    }  # fmt: skip
    for r in base["rows"]:
        name = r["name"] + (f" (layer {r['depth']})" if "depth" in r else "")
        line = f"{name:<50} split 0 {100 * r['test_accuracy']:6.2f} %"
        if "split_mean" in r:
            lo, hi = r["split_interval"]
            line += (
                f"  mean over splits {100 * r['split_mean']:.2f} % [{100 * lo:.2f}, "
            )
            line += f"{100 * hi:.2f}]  per split "
            line += ", ".join(f"{100 * v:.1f}" for v in r["per_split"])
        print(line)
    if "split_mean" in base["rows"][0]:
        diffs = np.array(base["rows"][0]["per_split"]) - base["rows"][1]["per_split"]
        from nftk_jax.experiment._baselines import t_interval

        m, lo, hi = t_interval(diffs)
        out["learned_minus_validation_depth"] = {
            "mean": m,
            "interval": [lo, hi],
            "per_split": diffs.tolist(),
        }
        print(f"learned - validation depth, paired over splits: {100 * m:+.2f} points "
              f"[{100 * lo:+.2f}, {100 * hi:+.2f}]")  # fmt: skip
    for k, t in base["paired_tests"].items():
        lo, hi = t["bootstrap_interval"]
        print(
            f"split 0 {k}: {100 * t['accuracy_difference']:+.2f} points "
            f"[{100 * lo:+.2f}, {100 * hi:+.2f}], McNemar p = {t['p_value']:.3g}"
        )
    print(
        f"stability: mean rank correlation {st.mean_rank_correlation:.2f}; "
        f"validation-selected depths {base['rows'][1]['depth_per_split']}"
    )
    print(
        f"time: kernels {t_kern:.0f} s, Omega on {args.resamples} splits "
        f"{t_learn:.0f} s, baselines {t_base:.0f} s"
    )
    if args.figures:
        from pathlib import Path

        from nftk_jax import plot_omega_heatmaps
        from nftk_jax.experiment._stability_figures import plot_omega_stability

        fig_dir = Path(args.figures)
        fig_dir.mkdir(parents=True, exist_ok=True)
        names = list(ds.classes)
        title = f"{ds.name}, ReLU, L = {args.depth}"
        plot_omega_heatmaps(st.omegas[0], fig_dir / f"{args.dataset}_fig2_omega.png",
                            class_names=names, title=title)  # fmt: skip
        plot_omega_stability(st, fig_dir / f"{args.dataset}_omega_stability.png",
                             class_names=names, title=title)  # fmt: skip
    if args.calibration:
        cal = calibration(
            spec, ds, th_tr, th_te, scale, st.omegas[0], st.splits[0], ridge
        )
        out["calibration"] = cal
        print(json.dumps(cal, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
    return out


if __name__ == "__main__":
    main()
