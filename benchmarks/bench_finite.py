"""Benchmark of the finite-width network against its infinite-width NFT-K limit.

(a) MNIST-5k (4000 train / 1000 test), ReLU, L = 10, width 256: the paper-style
    trained network (``train_paper_mode``: Xavier-normal init, standard
    parameterisation, SGD with lr 0.02 for theta and 0.05 for sqrt(Omega), batch 50,
    weight decay 1e-6 in the objective = the paper's 2e-6 update coefficient,
    Omega projected onto >= 0, starting from the uniform 1/L) next to the
    infinite-width NFT-K (Theorem 1, float64) with the uniform Omega = 1/L and with
    the Omega the network learned, ridge ``--relative-ridge`` times the mean
    diagonal of the training kernels. Test accuracies, Table-1 style.
(b) The width study (``compare_widths``) on an ``--ws-train`` / ``--ws-test``
    subset: centred full-batch gradient descent at each width vs KRR with the same
    ridge (``--ws-relative-ridge`` times the largest eigenvalue of K(X, X)).
(c) Training throughput in examples per second (compilation excluded).

Usage::

    .venv/bin/python benchmarks/bench_finite.py                 # full, ~10 min
    .venv/bin/python benchmarks/bench_finite.py --epochs 1 --ws-widths 32,128 \
        --ws-train 100 --ws-test 50 --n-train 500 --n-test 200  # smoke
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np

from nftk_jax import MLP, layerwise_kernels
from nftk_jax.data import load_mnist5k
from nftk_jax.finite._network import train_paper_mode
from nftk_jax.finite._width_study import compare_widths, plot_width_study
from nftk_jax.linalg._krr import combine_kernels, encode_targets, krr_fit, krr_predict


def _krr_accuracy(theta_tr, theta_te, y_tr, y_te, omega, ridge) -> float:
    big_y, _ = encode_targets(y_tr, len(y_tr), n_classes=omega.shape[0])
    sol = krr_fit(theta_tr, big_y, omega, ridge=ridge)
    scores = np.asarray(krr_predict(theta_te, sol.alpha, omega))
    return float(np.mean(np.argmax(scores, axis=1) == y_te))


def paper_vs_infinite(args) -> None:
    ds = load_mnist5k(n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    d, depth = len(ds.classes), args.depth
    spec = MLP(depth=depth, width=args.width)
    batch = 50
    steps = args.epochs * (args.n_train // batch)
    t0 = time.perf_counter()
    res = train_paper_mode(
        spec,
        ds.x_train,
        ds.y_train,
        steps=steps,
        batch_size=batch,
        seed=args.seed,
        dtype=np.float32,
    )
    wall = time.perf_counter() - t0
    acc_net = float(np.mean(np.argmax(res.predict(ds.x_test), 1) == ds.y_test))
    omega_learned = np.asarray(res.omega, np.float64)

    jax.config.update("jax_enable_x64", True)
    t0 = time.perf_counter()
    x_all = np.concatenate([ds.x_train, ds.x_test]).astype(np.float64)
    theta = np.asarray(layerwise_kernels(MLP(depth=depth), x_all, ds.x_train))
    t_kernel = time.perf_counter() - t0
    theta_tr, theta_te = theta[:, : args.n_train], theta[:, args.n_train :]
    diag = np.mean(np.diagonal(theta_tr, axis1=1, axis2=2))
    ridge = args.relative_ridge * float(diag)
    uniform = np.full((d, depth), 1.0 / depth)
    acc_uniform = _krr_accuracy(
        theta_tr, theta_te, ds.y_train, ds.y_test, uniform, ridge
    )
    learned = omega_learned if np.all(omega_learned.sum(1) > 0) else uniform
    acc_learned = _krr_accuracy(
        theta_tr, theta_te, ds.y_train, ds.y_test, learned, ridge
    )
    jax.config.update("jax_enable_x64", False)

    print(f"\n## (a) MNIST-5k {args.n_train}/{args.n_test}, L={depth}, ReLU")
    print(
        f"paper-mode training: {args.epochs} epochs = {steps} steps of batch {batch}, "
        f"width {args.width}, float32; {res.train_seconds:.1f} s training "
        f"({wall:.1f} s with compilation), {res.examples_per_second:.0f} examples/s"
    )
    print(f"layerwise kernels (float64): {t_kernel:.1f} s; ridge {ridge:.4g}")
    print("| model | test accuracy |")
    print("|---|---|")
    print(f"| finite network, width {args.width}, paper mode | {acc_net:.2%} |")
    print(f"| NFT-K infinite width, Omega = 1/L | {acc_uniform:.2%} |")
    print(f"| NFT-K infinite width, Omega learned by the network | {acc_learned:.2%} |")
    print("| paper, Table 1 (its own full-MNIST set-up), NFT-K L=10 | 97.25% |")
    w = np.sqrt(omega_learned)
    print(
        f"learned sqrt(Omega): min {w.min():.3f}, max {w.max():.3f}, "
        f"zero entries {int(np.sum(w == 0))}/{w.size}; mean over classes per layer: "
        + ", ".join(f"{v:.3f}" for v in w.mean(0))
    )


def width_study(args) -> None:
    jax.config.update("jax_enable_x64", False)
    ds = load_mnist5k(n_train=args.ws_train, n_test=args.ws_test, seed=args.seed)
    d = len(ds.classes)
    spec = MLP(depth=args.ws_depth)
    omega = np.full((d, args.ws_depth), 1.0 / args.ws_depth)
    theta = np.asarray(layerwise_kernels(spec, ds.x_train, dtype=np.float32))
    lam = np.linalg.eigvalsh(np.asarray(combine_kernels(theta, omega)))[:, -1].max()
    ridge = args.ws_relative_ridge * float(lam)
    widths = tuple(int(w) for w in args.ws_widths.split(","))
    seeds = tuple(int(s) for s in args.ws_seeds.split(","))
    t0 = time.perf_counter()
    study = compare_widths(
        spec,
        omega,
        ds.x_train,
        ds.y_train,
        ds.x_test,
        ds.y_test,
        ridge=ridge,
        widths=widths,
        seeds=seeds,
        steps=args.ws_steps,
        progress=True,
    )
    wall = time.perf_counter() - t0
    print(
        f"\n## (b) width study: MNIST-5k {args.ws_train}/{args.ws_test}, "
        f"L={args.ws_depth}, Omega = 1/L, ridge {ridge:.4g} "
        f"({args.ws_relative_ridge} lambda_max), {args.ws_steps} full-batch steps "
        f"of lr {study.learning_rate:.4g}, centred, float32; {wall:.0f} s"
    )
    print("| width | pred_gap | ntk_gap | test acc (finite) |")
    print("|---|---|---|---|")
    for i, width in enumerate(study.widths):
        print(
            f"| {width} | {study.pred_gap[i].mean():.4f} | "
            f"{study.ntk_gap[i].mean():.4f} | {study.acc_finite[i].mean():.2%} |"
        )
    print(f"| infinite (KRR) | 0 | 0 | {study.acc_infinite:.2%} |")
    print(
        f"slopes of log gap vs log width: prediction {study.slope_pred:.3f}, "
        f"NTK {study.slope_ntk:.3f} (expected about -0.5)"
    )
    if args.plot:
        plot_width_study(study, args.plot)
        print(f"plot: {args.plot}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--relative-ridge", type=float, default=1e-2)
    p.add_argument("--ws-train", type=int, default=800)
    p.add_argument("--ws-test", type=int, default=200)
    p.add_argument("--ws-depth", type=int, default=3)
    p.add_argument("--ws-widths", default="64,256,1024,4096")
    p.add_argument("--ws-seeds", default="0")
    p.add_argument("--ws-steps", type=int, default=40)
    p.add_argument("--ws-relative-ridge", type=float, default=0.1)
    p.add_argument("--plot", default=None, help="write the width-study PNG here")
    p.add_argument("--skip-paper", action="store_true")
    p.add_argument("--skip-width", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(
        f"# bench_finite: Python {platform.python_version()}, jax {jax.__version__}, "
        f"{jax.devices()[0].platform}, {platform.machine()}"
    )
    t0 = time.perf_counter()
    if not args.skip_paper:
        paper_vs_infinite(args)
    if not args.skip_width:
        width_study(args)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
