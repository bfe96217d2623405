"""Benchmark of the Omega learner on MNIST-5k (ReLU, L = 10, NTK parameterisation).

Computes the train and test layerwise kernels once (float64, timed separately),
then reports

(a) test accuracy of the learned Omega (simplex + val_mse on a seeded stratified
    20% validation split of the training set, then refit on the whole training set)
    next to every single depth and the uniform Omega, all with the same ridge
    (``--relative-ridge`` times the mean diagonal of the training kernels averaged
    over layers), and the sparsity of the learned Omega;
(b) wall time of the Omega learning to convergence with warm-started CG
    (``solver='cg'``) and, side by side, the cost of the same run with a baseline
    that refactorises a dense Cholesky per class at every evaluated Omega: the
    number of Omegas the run evaluated times the measured time of one dense
    evaluation (``d`` factorisations plus the value and adjoint solves), and with
    ``--baseline-steps`` the baseline itself run (``solver='dense'``).

Usage::

    .venv/bin/python benchmarks/bench_mkl.py            # full: 4000 / 1000
    .venv/bin/python benchmarks/bench_mkl.py --n-train 1000 --n-test 500  # quick
"""

from __future__ import annotations

import argparse
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nftk_jax import MLP, fit_mkl_kernels, layerwise_kernels  # noqa: E402
from nftk_jax.data import load_mnist5k  # noqa: E402
from nftk_jax.linalg._krr import encode_targets, krr_fit, krr_predict  # noqa: E402
from nftk_jax.mkl import validation_split  # noqa: E402
from nftk_jax.mkl._evaluator import _cho_solve, _dense_factor  # noqa: E402


def _accuracy(theta_tr, theta_te, Y, y_te, omega, ridge) -> float:
    sol = krr_fit(theta_tr, Y, omega, ridge=ridge)
    scores = np.asarray(krr_predict(theta_te, sol.alpha, omega))
    return float(np.mean(np.argmax(scores, axis=1) == y_te))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--relative-ridge", type=float, default=1e-2)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--cg-tol", type=float, default=1e-8)
    p.add_argument("--validation-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--baseline-steps",
        type=int,
        default=0,
        help="also run the dense baseline for up to this many steps (at most as "
        "many as the CG run took; checks the per-evaluation estimate)",
    )
    p.add_argument("--dense-repeats", type=int, default=2)
    args = p.parse_args(argv)

    data = load_mnist5k(n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    spec = MLP(depth=args.depth, activation="relu", parameterization="ntk")
    t0 = time.perf_counter()
    theta_tr = np.asarray(layerwise_kernels(spec, data.x_train, dtype=np.float64))
    theta_te = np.asarray(
        layerwise_kernels(spec, data.x_test, data.x_train, dtype=np.float64)
    )
    t_kernels = time.perf_counter() - t0
    L = args.depth
    Y, _ = encode_targets(data.y_train, len(data.y_train), n_classes=10)
    d = Y.shape[1]
    ridge = args.relative_ridge * float(
        np.mean(np.diagonal(theta_tr, axis1=1, axis2=2))
    )

    rows = []
    for l in range(L):
        om = np.zeros((d, L))
        om[:, l] = 1.0
        acc = _accuracy(theta_tr, theta_te, Y, data.y_test, om, ridge)
        rows.append((f"single depth {l + 1}", acc, 0.0))
    acc_uniform = _accuracy(
        theta_tr, theta_te, Y, data.y_test, np.full((d, L), 1.0 / L), ridge
    )
    rows.append(("uniform 1/L", acc_uniform, 0.0))

    fit_idx, val_idx = validation_split(
        data.y_train, args.validation_fraction, args.seed, stratify=True
    )
    th_fit = theta_tr[:, fit_idx][:, :, fit_idx]
    th_val = theta_tr[:, val_idx][:, :, fit_idx]
    common = dict(
        theta_val=th_val,
        y_val=data.y_train[val_idx],
        ridge=ridge,
        objective="val_mse",
        constraint="simplex",
        n_classes=10,
        cg_tol=args.cg_tol,
    )
    y_fit = data.y_train[fit_idx]
    # Warm-up: compile the CG path on this shape (not timed).
    fit_mkl_kernels(th_fit, y_fit, steps=1, solver="cg", **common)
    t0 = time.perf_counter()
    ours = fit_mkl_kernels(
        th_fit, y_fit, steps=args.steps, tol=args.tol, solver="cg", **common
    )
    t_ours = time.perf_counter() - t0

    # Baseline cost of one evaluated Omega: d Cholesky factorisations plus the value
    # and adjoint solves with the factor (the gradient contractions are the same in
    # both paths and are left out, which favours the baseline).
    th_j = jnp.asarray(th_fit)
    Yf = jnp.asarray(encode_targets(y_fit, len(y_fit), n_classes=10)[0])
    om_j = jnp.asarray(ours.omega)
    times = []
    for _ in range(args.dense_repeats + 1):  # first one compiles
        t0 = time.perf_counter()
        chol = _dense_factor(th_j, om_j, ridge)
        _cho_solve(chol, _cho_solve(chol, Yf)).block_until_ready()
        times.append(time.perf_counter() - t0)
    t_eval = float(np.median(times[1:]))
    t_base_est = ours.n_evaluations * t_eval
    base = None
    if args.baseline_steps:
        t0 = time.perf_counter()
        base = fit_mkl_kernels(
            th_fit,
            y_fit,
            steps=min(args.baseline_steps, max(ours.n_steps, 1)),
            tol=1e-300,
            solver="dense",
            **common,
        )
        t_base_run = time.perf_counter() - t0

    acc_learned = _accuracy(theta_tr, theta_te, Y, data.y_test, ours.omega, ridge)
    sparsity = float(np.mean(ours.omega == 0.0))
    rows.append(("learned Omega (simplex, val_mse)", acc_learned, sparsity))

    print(
        f"MNIST-5k {args.n_train}/{args.n_test}, ReLU, L={L}, ntk param., float64; "
        f"{platform.python_version()}, jax {jax.__version__}, "
        f"{jax.device_count()} {jax.default_backend()} device(s)"
    )
    print(f"ridge = {args.relative_ridge:g} x mean kernel diagonal = {ridge:.4g}")
    print(
        f"kernels (train {args.n_train}^2 + test x train, 10 layers): {t_kernels:.1f} s"
    )
    print()
    print(f"| {'model':34s} | test acc | sparsity |")
    print(f"|{'-' * 36}|----------|----------|")
    for name, acc, sp in rows:
        print(f"| {name:34s} | {100 * acc:7.2f}% | {sp:8.2f} |")
    print()
    print(
        f"| Omega learning (n_fit={len(fit_idx)}, n_val={len(val_idx)}) "
        "| steps | Omega evaluations | wall s |"
    )
    print("|---|---|---|---|")
    print(
        f"| warm-started CG (ours), to convergence | {ours.n_steps} | "
        f"{ours.n_evaluations} | {t_ours:.1f} |"
    )
    print(
        f"| dense Cholesky per class at every evaluation (estimated: "
        f"{ours.n_evaluations} x {t_eval:.2f} s) | {ours.n_steps} | "
        f"{ours.n_evaluations} | {t_base_est:.1f} |"
    )
    if base is not None:
        print(
            f"| dense Cholesky baseline, run | {base.n_steps} | "
            f"{base.n_evaluations} | {t_base_run:.1f} |"
        )
    print()
    print(
        f"converged: {ours.converged} ({ours.stop_reason}); speed-up "
        f"(estimated dense / CG): {t_base_est / t_ours:.2f}x"
    )
    if base is not None:
        k = min(base.n_steps, ours.n_steps)
        dev = np.max(np.abs(ours.history.omega[k] - base.history.omega[k]))
        print(
            f"dense run: {t_base_run / max(base.n_evaluations, 1):.2f} s per "
            f"evaluation; max |Omega_cg - Omega_dense| at step {k}: {dev:.2e}"
        )


if __name__ == "__main__":
    main()
