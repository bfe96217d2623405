"""Learning Omega without cached kernels at large n: time and peak memory.

A synthetic 10-class problem (Gaussian clusters in 64 dimensions, unit-norm
inputs; no data set of this size ships with the package) with ``--n`` training
points, ReLU MLP, ``L = --depth``. ``fit_mkl(..., kernel_storage=--storage)``
learns Omega (val_mse + simplex on a stratified 20 % split) from kernels that are
never held in memory: ``'disk'`` computes them once into float32 files under
``--kernel-dir`` and streams them back per product; ``'recompute'`` recomputes
tiles per product. Prints the phases' wall times, the steps, the test accuracy
(``predict`` is streamed too) and the process's peak resident memory
(``ru_maxrss``), which does not count the page cache holding the files.

Usage::

    .venv/bin/python benchmarks/bench_matrix_free.py --n 20000 --kernel-dir /tmp/k
    .venv/bin/python benchmarks/bench_matrix_free.py --n 2000 --kernel-dir /tmp/k
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from nftk_jax import MLP, fit_mkl  # noqa: E402


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def synthetic(n: int, m: int = 64, d: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(d, m))
    y = rng.integers(0, d, size=n)
    x = centres[y] + 2.5 * rng.normal(size=(n, m))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--storage", choices=["disk", "recompute"], default="disk")
    p.add_argument("--kernel-dir", default="/tmp/nftk-kernels")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--cg-tol", type=float, default=1e-6)
    p.add_argument("--refit", action="store_true")
    args = p.parse_args(argv)

    x, y = synthetic(args.n + args.n_test)
    x_tr, y_tr, x_te, y_te = x[: args.n], y[: args.n], x[args.n :], y[args.n :]
    spec = MLP(depth=args.depth, activation="relu")
    times = []

    def cb(info):
        times.append(time.perf_counter())
        print(
            f"  step {info.step}: objective {info.objective:.6g}, "
            f"grad norm {info.grad_norm:.3g}, peak RSS {_peak_rss_gib():.2f} GiB",
            flush=True,
        )

    t0 = time.perf_counter()
    res = fit_mkl(
        spec,
        x_tr,
        y_tr,
        ridge=1e-3,
        relative_ridge=True,
        kernel_storage=args.storage,
        kernel_dir=args.kernel_dir,
        steps=args.steps,
        cg_tol=args.cg_tol,
        refit=args.refit,
        callback=cb,
        progress=False,
    )
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc = float(np.mean(res.predict_labels(x_te) == y_te))
    t_pred = time.perf_counter() - t0
    print(
        f"n={args.n} (fit {int(0.8 * args.n)}, val {args.n - int(0.8 * args.n)}), "
        f"L={args.depth}, storage={args.storage}; {platform.python_version()}, "
        f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} "
        "device(s)"
    )
    print(
        f"fit_mkl: {t_fit:.0f} s in total, {res.n_steps} steps, "
        f"{res.n_evaluations} evaluated Omegas, stop: {res.stop_reason}"
    )
    print(f"test accuracy ({args.n_test}): {100 * acc:.2f} % (predict {t_pred:.0f} s)")
    print(f"omega sparsity: {np.mean(res.omega == 0):.2f}")
    print(f"peak resident memory: {_peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
