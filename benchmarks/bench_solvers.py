"""Linear solvers on MNIST-5k NTKs: Cholesky vs cold, warm and preconditioned CG.

One run: ``n`` MNIST-5k training images, ``depth`` layerwise ReLU NTKs (float64),
``d = 10`` centred one-hot targets, ``ridge = ridge_rel * mean diag(theta)`` (the
mean diagonal of the layerwise kernels, averaged over layers). Omega is a random
positive ``(10, depth)`` matrix; the warm starts use the solution for a nearby Omega
(one projected-gradient-sized step: a relative change of ``--step`` in Frobenius norm,
clipped at 0), as an outer loop over Omega would. Optionally a matrix-free solve at
``--free-n`` points, with its peak RSS.

    .venv/bin/python benchmarks/bench_solvers.py
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nftk_jax import MLP, layerwise_kernels  # noqa: E402
from nftk_jax.data import load_mnist5k  # noqa: E402
from nftk_jax.linalg import (  # noqa: E402
    nystrom_preconditioner,
    solve_cg,
    solve_cg_matrix_free,
    solve_dense,
)
from nftk_jax.linalg._krr import encode_targets  # noqa: E402


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(out)
    return out, time.perf_counter() - t


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def cached(args, ds, spec, omega, omega_prev) -> float:
    """Cached-kernel solvers at n = args.n; returns the absolute ridge used."""
    x = ds.x_train[: args.n].astype(np.float64)
    y, _ = encode_targets(ds.y_train[: args.n], args.n, n_classes=10)

    theta, t_kernel = timed(layerwise_kernels, spec, x, dtype=np.float64)
    mean_diag = float(jnp.mean(jnp.diagonal(theta, axis1=1, axis2=2)))
    ridge = args.ridge_rel * mean_diag
    print(
        f"n={args.n} L={args.depth} d=10 ridge={args.ridge_rel:g} * mean diag "
        f"({mean_diag:.4g}) = {ridge:.4g}; tol={args.tol:g}; kernels {t_kernel:.1f} s"
    )

    # Compile once on the real shapes so timings below are steady-state.
    solve_cg(theta, y, omega, ridge=ridge, maxiter=1)
    solve_cg(theta, y, omega, ridge=ridge, maxiter=1, form_kernels=False)

    pre, t_pre = timed(
        nystrom_preconditioner, theta, omega, ridge=ridge, rank=args.rank
    )
    solve_cg(theta, y, omega, ridge=ridge, maxiter=1, preconditioner=pre)  # compile
    dense, t = timed(solve_dense, theta, y, omega, ridge=ridge)
    rows = [("dense Cholesky (per class)", t, dense)]
    prev = solve_cg(theta, y, omega_prev, ridge=ridge, tol=args.tol).alpha
    configs = [
        ("CG cold", {}),
        ("CG cold, theta matvec", {"form_kernels": False}),
        ("CG warm", {"x0": prev}),
        ("CG warm, theta matvec", {"x0": prev, "form_kernels": False}),
        (f"PCG cold (rank {args.rank})", {"preconditioner": pre}),
        (f"PCG warm (rank {args.rank})", {"preconditioner": pre, "x0": prev}),
    ]
    for name, kwargs in configs:
        res, t = timed(solve_cg, theta, y, omega, ridge=ridge, tol=args.tol, **kwargs)
        rows.append((name, t, res))

    t_dense, t_cold = rows[0][1], rows[1][1]
    print(f"preconditioner build (greedy Nystrom, rank {args.rank}): {t_pre:.2f} s")
    print(
        f"{'solver':30s} {'time s':>8s} {'/ dense':>8s} {'/ CG cold':>9s} "
        f"{'iters':>6s} {'max resid':>10s} {'max|a - a_dense| / max|a_dense|':>32s}"
    )
    scale = float(jnp.max(jnp.abs(dense.alpha)))
    for name, t, r in rows:
        err = float(jnp.max(jnp.abs(r.alpha - dense.alpha))) / scale
        print(
            f"{name:30s} {t:8.2f} {t / t_dense:8.2f} {t / t_cold:9.2f} "
            f"{r.iterations:6d} {float(np.max(r.residual)):10.2e} {err:32.2e}"
        )
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")
    return ridge


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=3200, help="0: skip the cached solvers")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--ridge-rel", type=float, default=1e-3)
    p.add_argument("--tol", type=float, default=1e-8)
    p.add_argument("--rank", type=int, default=200)
    p.add_argument("--step", type=float, default=1e-2)
    p.add_argument("--free-n", type=int, default=0, help="0: skip matrix-free run")
    p.add_argument("--free-tol", type=float, default=1e-6)
    p.add_argument("--free-rank", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    n_data = max(args.n, args.free_n)
    ds = load_mnist5k(n_train=n_data, n_test=0, seed=args.seed)
    spec = MLP(depth=args.depth)
    rng = np.random.default_rng(args.seed)
    omega = 0.5 + rng.random((10, args.depth))
    direction = rng.normal(size=omega.shape)
    direction *= args.step * np.linalg.norm(omega) / np.linalg.norm(direction)
    omega_prev = np.maximum(omega + direction, 0.0)
    print(
        f"machine: {platform.processor() or platform.machine()}, jax {jax.__version__}"
    )
    if args.n:
        ridge = cached(args, ds, spec, omega, omega_prev)
    if args.free_n:
        if not args.n:  # scale from the first 256 points' kernels
            sub = layerwise_kernels(spec, ds.x_train[:256].astype(np.float64))
            ridge = args.ridge_rel * float(
                jnp.mean(jnp.diagonal(sub, axis1=1, axis2=2))
            )
        xf = ds.x_train[: args.free_n].astype(np.float64)
        yf, _ = encode_targets(ds.y_train[: args.free_n], args.free_n, n_classes=10)
        pre_f, t_pre = timed(
            nystrom_preconditioner,
            None,
            omega,
            ridge=ridge,
            rank=args.free_rank,
            spec=spec,
            x=xf,
        )
        res, t = timed(
            solve_cg_matrix_free,
            spec,
            xf,
            yf,
            omega,
            ridge=ridge,
            tol=args.free_tol,
            preconditioner=pre_f,
        )
        print(
            f"matrix-free PCG n={args.free_n} (uniform Nystrom rank {args.free_rank}, "
            f"tol {args.free_tol:g}, ridge {ridge:.4g}): build {t_pre:.1f} s, "
            f"solve {t:.1f} s, "
            f"{res.iterations} iterations ({t / max(res.iterations, 1):.2f} s each), "
            f"max resid {float(np.max(res.residual)):.2e}, "
            f"peak RSS {peak_rss_gib():.2f} GiB"
        )


if __name__ == "__main__":
    main()
