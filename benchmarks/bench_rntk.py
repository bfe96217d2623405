"""Layerwise recurrent NTKs on the seven UCR/UEA sets aeon ships, official splits.

For every set, in one run:

* **RNTK, learned Omega**: the ``L`` head kernels of ``RNN(depth=L)`` (float64,
  timed: train x train plus test x train), Omega learned on all training rows by
  closed-form leave-one-out (``nftk_jax.mkl.learn_omega_loo``, simplex, from the
  uniform mix), ridge ``select_ridge``'s on the uniform mix (``--omega loo``, the
  default); with ``--omega split``: Omega by ``fit_mkl_kernels`` (``val_mse`` on a
  seeded stratified 25% validation split), then the dual coefficients refit on the
  whole training set;
* **RNTK, best single layer**: the layer with the best leave-one-out accuracy
  (ties: leave-one-out squared error), at its own leave-one-out ridge (``--omega
  split``: the best validation accuracy), fit on the whole training set;
* **MLP layerwise NTK, learned Omega**: ``MLP(depth=L)`` on the series resampled to
  one length and flattened, same protocol;
* **1-NN DTW**: aeon's ``KNeighborsTimeSeriesClassifier(distance='dtw')``.

With ``--tune`` the kernel hyperparameters of both kernel models are chosen per set
on the training series alone by closed-form leave-one-out of the uniform layer mix
(``nftk_jax.mkl.select_spec``; ``--criterion accuracy``, the default: the highest
leave-one-out accuracy, ties broken by the squared error; ``--criterion error``:
the squared error): for the RNN the activation (relu, erf) x ``sigma_w`` (1,
sqrt 2) x ``sigma_u`` (0.25, 0.5, 1) x ``sigma_b`` (0.1, 1), each on every input
view: the raw series (aligned at their last step) and the series resampled to each
of ``--lengths`` (default 16, 32, 64 steps) shorter than the longest training
series (``nftk_jax.data.length_view``); for the MLP the activation x ``W_std`` (1,
sqrt 2) x ``b_std`` (0.1, 1), each on the series resampled to the median training
length and to each of the same ``--lengths`` (``--no-mlp-views``: the median
length only). Without ``--tune`` both use the fixed defaults below (ReLU,
``sigma_w = W_std = sqrt 2``, raw series for the RNN, median length for the MLP).

Series are z-normalised per series and channel (``load_ucr``).

Usage::

    .venv/bin/python benchmarks/bench_rntk.py                  # all seven sets
    .venv/bin/python benchmarks/bench_rntk.py --sets GunPoint   # one set
    .venv/bin/python benchmarks/bench_rntk.py --tune            # per-set LOO choice
    .venv/bin/python benchmarks/bench_rntk.py --tune --lengths  # raw series only
    .venv/bin/python benchmarks/bench_rntk.py --tune --criterion error --omega split \
        --no-mlp-views                                          # the earlier protocol
"""

from __future__ import annotations

import argparse
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from nftk_jax import (  # noqa: E402
    MLP,
    RNN,
    fit_mkl_kernels,
    layerwise_kernels,
    select_ridge,
)
from nftk_jax.data import (  # noqa: E402
    UCR_DATASETS,
    length_view,
    load_ucr,
    resample_sequences,
)
from nftk_jax.linalg._krr import encode_targets, krr_fit, krr_predict  # noqa: E402
from nftk_jax.mkl import learn_omega_loo, select_spec  # noqa: E402
from nftk_jax.mkl._ridge import select_ridge_and_loo_accuracy  # noqa: E402
from nftk_jax.model import pack_sequences  # noqa: E402


def _split(y: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split; classes with one example stay in the training part."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = min(max(int(round(frac * len(idx))), 1), len(idx) - 1)
        val.append(idx[:k])
    va = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(y)), va), va


def _subsample(ds, n_max: int, seed: int):
    """At most ``n_max`` test series (stratified by nothing: a seeded subset)."""
    if n_max <= 0 or len(ds.x_test) <= n_max:
        return ds
    idx = np.sort(np.random.default_rng(seed).permutation(len(ds.x_test))[:n_max])
    return ds._replace(x_test=tuple(ds.x_test[i] for i in idx), y_test=ds.y_test[idx])


def _krr_accuracy(theta, y, theta_cross, y_cross, omega, ridge, d) -> float:
    Y, _ = encode_targets(y, len(y), n_classes=d)
    sol = krr_fit(theta, Y, omega, ridge=ridge)
    pred = np.asarray(krr_predict(theta_cross, sol.alpha, omega))
    return float(np.mean(np.argmax(pred, axis=1) == y_cross))


def _ridge(theta, y, d) -> float:
    """Absolute ridge picked by closed-form LOO on the uniform mix."""
    L = theta.shape[0]
    Y, _ = encode_targets(y, len(y), n_classes=d)
    return float(select_ridge(theta, Y, np.full((d, L), 1.0 / L)).ridge)


def _evaluate(theta_all, theta_test, y, y_test, d, seed, omega="loo") -> dict:
    """Learned Omega and best single layer on precomputed kernels."""
    if omega == "loo":
        return _evaluate_loo(theta_all, theta_test, y, y_test, d)
    L = theta_all.shape[0]
    tr, va = _split(y, 0.25, seed)
    th_tr = theta_all[:, tr][:, :, tr]
    th_va = theta_all[:, va][:, :, tr]
    rho = _ridge(th_tr, y[tr], d)
    res = fit_mkl_kernels(
        th_tr, y[tr], theta_val=th_va, y_val=y[va], ridge=rho, n_classes=d, steps=60
    )
    rho_all = _ridge(theta_all, y, d)
    acc = _krr_accuracy(theta_all, y, theta_test, y_test, res.omega, rho_all, d)
    val_acc = []
    for layer in range(L):
        om = np.zeros((d, L))
        om[:, layer] = 1.0
        val_acc.append(_krr_accuracy(th_tr, y[tr], th_va, y[va], om, rho, d))
    best = int(np.argmax(val_acc))
    om = np.zeros((d, L))
    om[:, best] = 1.0
    single = _krr_accuracy(theta_all, y, theta_test, y_test, om, rho_all, d)
    return {"learned": acc, "single": single, "layer": best + 1, "omega": res.omega}


def _evaluate_loo(theta, theta_test, y, y_test, d) -> dict:
    """Omega learned by leave-one-out on all training rows (``learn_omega_loo``);
    the single layer with the best leave-one-out accuracy (ties: squared error)."""
    L = theta.shape[0]
    rho = _ridge(theta, y, d)
    res = learn_omega_loo(theta, y, ridge=rho, n_classes=d, steps=100)
    acc = _krr_accuracy(theta, y, theta_test, y_test, res.omega, rho, d)
    rank = []
    for layer in range(L):
        sel, loo_acc = select_ridge_and_loo_accuracy(
            theta[layer : layer + 1], y, "loo", n_classes=d
        )
        rank.append((-loo_acc, float(np.min(sel.scores)), sel.ridge))
    best = min(range(L), key=rank.__getitem__)
    om = np.zeros((d, L))
    om[:, best] = 1.0
    single = _krr_accuracy(theta, y, theta_test, y_test, om, rank[best][2], d)
    return {"learned": acc, "single": single, "layer": best + 1, "omega": res.omega}


def _kernels(spec, x_train, x_test) -> tuple[np.ndarray, np.ndarray, float]:
    t0 = time.perf_counter()
    th = np.asarray(layerwise_kernels(spec, x_train, dtype=np.float64))
    tc = np.asarray(layerwise_kernels(spec, x_test, x_train, dtype=np.float64))
    return th, tc, time.perf_counter() - t0


def _dtw(ds) -> tuple[float, float]:
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier

    def aeon_format(seqs):
        if len({s.shape for s in seqs}) == 1:
            return np.stack([s.T for s in seqs])  # (n, channels, T)
        return [s.T for s in seqs]

    t0 = time.perf_counter()
    clf = KNeighborsTimeSeriesClassifier(distance="dtw", n_neighbors=1)
    clf.fit(aeon_format(ds.x_train), ds.y_train)
    pred = clf.predict(aeon_format(ds.x_test))
    return float(np.mean(pred == ds.y_test)), time.perf_counter() - t0


def _candidates(depth: int) -> tuple[list, list]:
    """The ``--tune`` grids: RNN specs and MLP specs."""
    acts = ("relu", "erf")
    rnns = [
        RNN(depth=depth, activation=a, sigma_w=w, sigma_u=u, sigma_b=b, sigma_h=0.0)
        for a in acts
        for w in (1.0, float(np.sqrt(2.0)))
        for u in (0.25, 0.5, 1.0)
        for b in (0.1, 1.0)
    ]
    mlps = [
        MLP(depth=depth, activation=a, W_std=w, b_std=b)
        for a in acts
        for w in (1.0, float(np.sqrt(2.0)))
        for b in (0.1, 1.0)
    ]
    return rnns, mlps


def _views(seqs, lengths) -> dict:
    """The RNN's input views of the training series: raw (key ``None``) and every
    length of ``lengths`` below the longest series, each series resampled alone."""
    longest = max(len(s) for s in seqs)
    keys = [None] + [int(t) for t in lengths if int(t) < longest]
    return {key: length_view(seqs, key) for key in keys}


def _mlp_views(seqs, lengths) -> dict:
    """The MLP's input views: the series resampled to the median training length
    and to every length of ``lengths`` below the longest series, flattened."""
    longest = max(len(s) for s in seqs)
    keys = {int(np.median([len(s) for s in seqs]))}
    keys |= {int(t) for t in lengths if int(t) < longest}
    return {t: resample_sequences(seqs, t) for t in sorted(keys)}


def _describe(spec, length=None) -> str:
    if isinstance(spec, RNN):
        view = "raw" if length is None else f"T={length}"
        return (
            f"{spec.activation} w={spec.sigma_w:.2f} u={spec.sigma_u:g} "
            f"b={spec.sigma_b:.1f} {view}"
        )
    return f"{spec.activation} W={spec.W_std:.2f} b={spec.b_std:.1f} T={length}"


def run(name: str, args) -> dict:
    ds = _subsample(load_ucr(name), args.max_test, args.seed)
    d = len(ds.classes)
    y, y_test = ds.y_train, ds.y_test
    length = int(np.median([len(s) for s in ds.x_train]))
    rnn = RNN(
        depth=args.depth, activation=args.activation, sigma_w=args.sigma_w,
        sigma_u=1.0, sigma_b=0.1, sigma_h=0.0,
    )  # fmt: skip
    mlp = MLP(depth=args.depth)
    view = None  # the raw series
    tune_time = 0.0
    if args.tune:
        # Only the training series and labels enter the choice.
        t0 = time.perf_counter()
        rnns, mlps = _candidates(args.depth)
        views = _views(ds.x_train, args.lengths)
        sel = select_spec(rnns, views, y, n_classes=d, criterion=args.criterion)
        rnn, view = sel.spec, sel.input
        mlp_views = _mlp_views(ds.x_train, args.lengths if args.mlp_views else [])
        msel = select_spec(mlps, mlp_views, y, n_classes=d, criterion=args.criterion)
        mlp, length = msel.spec, msel.input
        tune_time = time.perf_counter() - t0
    x_seq, x_seq_test = (
        pack_sequences(length_view(x, view)) for x in (ds.x_train, ds.x_test)
    )
    th, tc, k_time = _kernels(rnn, x_seq, x_seq_test)
    r = _evaluate(th, tc, y, y_test, d, args.seed, args.omega)
    x_flat = resample_sequences(ds.x_train, length)
    mth, mtc, m_time = _kernels(mlp, x_flat, resample_sequences(ds.x_test, length))
    m = _evaluate(mth, mtc, y, y_test, d, args.seed, args.omega)
    dtw, dtw_time = _dtw(ds) if not args.no_dtw else (float("nan"), 0.0)
    lengths = [len(s) for s in ds.x_train + ds.x_test]
    return {
        "set": name,
        "n": (len(ds.x_train), len(ds.x_test)),
        "T": (min(lengths), max(lengths)),
        "rntk": r["learned"],
        "rntk_single": r["single"],
        "layer": r["layer"],
        "mlp": m["learned"],
        "dtw": dtw,
        "rntk_s": k_time,
        "mlp_s": m_time,
        "dtw_s": dtw_time,
        "tune_s": tune_time,
        "rnn_spec": _describe(rnn, view),
        "mlp_spec": _describe(mlp, length),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="*", default=list(UCR_DATASETS))
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--activation", default="relu")
    p.add_argument("--sigma-w", type=float, default=float(np.sqrt(2.0)))
    p.add_argument(
        "--max-test", type=int, default=0, help="subsample test sets (0: all)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--lengths",
        nargs="*",
        type=int,
        default=[16, 32, 64],
        help="with --tune: resampled lengths the RNN's input may take besides "
        "the raw series (none: raw only)",
    )
    p.add_argument(
        "--criterion",
        choices=("error", "accuracy"),
        default="accuracy",
        help="with --tune: select_spec's criterion, leave-one-out squared error or "
        "leave-one-out accuracy (ties: squared error)",
    )
    p.add_argument(
        "--omega",
        choices=("loo", "split"),
        default="loo",
        help="loo: Omega by leave-one-out on all training rows (learn_omega_loo), "
        "single layer by leave-one-out accuracy; split: Omega by val_mse on a "
        "stratified 25%% validation split, single layer by validation accuracy",
    )
    p.add_argument(
        "--mlp-views",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --tune: the MLP chooses its input length among the median "
        "training length and --lengths, as the RNN does",
    )
    p.add_argument("--no-dtw", action="store_true")
    p.add_argument(
        "--tune", action="store_true", help="choose kernel hyperparameters by LOO"
    )
    args = p.parse_args()
    print(f"# {platform.processor() or platform.machine()}, jax {jax.__version__}")
    print(f"# RNN(depth={args.depth}, {args.activation}, sigma_w={args.sigma_w:.3f})")
    print(
        f"# tune={args.tune}, criterion={args.criterion}, omega={args.omega}, "
        f"MLP views={args.mlp_views}"
    )
    head = (
        "| set | n train/test | T | RNTK Omega | RNTK 1 layer (l) | MLP NTK Omega "
        "| 1-NN DTW | RNTK kernels s | MLP kernels s | DTW s |"
    )
    if args.tune:
        head += " RNN chosen | MLP chosen | choice s |"
    print(head)
    print("|" + "---|" * (13 if args.tune else 10))
    rows = []
    for name in args.sets:
        r = run(name, args)
        rows.append(r)
        print(
            f"| {r['set']} | {r['n'][0]}/{r['n'][1]} | {r['T'][0]}-{r['T'][1]} "
            f"| {r['rntk']:.3f} | {r['rntk_single']:.3f} ({r['layer']}) "
            f"| {r['mlp']:.3f} | {r['dtw']:.3f} | {r['rntk_s']:.1f} "
            f"| {r['mlp_s']:.1f} | {r['dtw_s']:.1f} |"
            + (
                f" {r['rnn_spec']} | {r['mlp_spec']} | {r['tune_s']:.1f} |"
                if args.tune
                else ""
            ),
            flush=True,
        )
    wins = sum(r["rntk"] > r["dtw"] for r in rows)
    ties = sum(r["rntk"] == r["dtw"] for r in rows)
    mean = {
        k: np.mean([r[k] for r in rows]) for k in ("rntk", "rntk_single", "mlp", "dtw")
    }
    print(f"# RNTK beats 1-NN DTW on {wins} of {len(rows)} sets ({ties} ties)")
    print("# mean accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))


if __name__ == "__main__":
    main()
