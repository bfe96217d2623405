"""Benchmark of the layerwise kernel engine, every figure from one run.

(i)   one-pass multi-head kernels vs a loop of L stand-alone depth-l kernel_fns,
      both jitted, float32, for each requested L;
(ii)  throughput in kernel entries x layers per second;
(iii) a streamed layerwise_matvec at large n (never materialising (L, n, n)) with
      the process's peak resident memory.

Example::

    .venv/bin/python benchmarks/bench_kernels.py --n 2000 --depths 10 20 \\
        --stream-n 20000 --stream-depth 10
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import jax
import numpy as np

from nftk_jax import MLP, layerwise_matvec


def _timed(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up (compile) call."""
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def _inputs(n: int, m: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, m)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(m)


def one_pass_vs_loop(n: int, m: int, depth: int, repeats: int) -> dict:
    spec = MLP(depth=depth)
    x = _inputs(n, m)
    stacked = jax.jit(lambda a: spec.network().kernel_fn(a, None, "ntk"))
    singles = [
        jax.jit(spec.single_depth(d)[2], static_argnums=2) for d in range(1, depth + 1)
    ]

    def loop():
        return [f(x, None, "ntk") for f in singles]

    t_stack = _timed(lambda: stacked(x), repeats)
    t_loop = _timed(loop, repeats)
    return {
        "depth": depth,
        "n": n,
        "one_pass_s": t_stack,
        "loop_s": t_loop,
        "ratio": t_loop / t_stack,
        "entries_layers_per_s": n * n * depth / t_stack,
    }


def streamed_matvec(n: int, m: int, depth: int, block_size: int | None) -> dict:
    spec = MLP(depth=depth)
    x = _inputs(n, m, seed=1)
    v = np.random.default_rng(2).normal(size=(n, 10)).astype(np.float32)
    omega = np.full((10, depth), 1.0 / depth, np.float32)
    t0 = time.perf_counter()
    out = layerwise_matvec(
        spec, x, v, omega=omega, dtype=np.float32, block_size=block_size, devices=False
    )
    jax.block_until_ready(out)
    wall = time.perf_counter() - t0
    peak_gib = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )  # KiB on Linux
    return {
        "n": n,
        "depth": depth,
        "wall_s": wall,
        "peak_rss_gib": peak_gib,
        "dense_would_need_gib": 4 * depth * n * n / 2**30,
        "entries_layers_per_s": n * n * depth / wall,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="points for (i)/(ii)")
    p.add_argument("--m", type=int, default=784, help="input features")
    p.add_argument("--depths", type=int, nargs="+", default=[10, 20])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--stream-n", type=int, default=20000, help="points for (iii); 0 skips"
    )
    p.add_argument("--stream-depth", type=int, default=10)
    p.add_argument("--block-size", type=int, default=None, help="tile edge for (iii)")
    args = p.parse_args(argv)

    print(
        f"jax {jax.__version__}, {jax.devices()[0].platform} x{jax.device_count()}, "
        f"python {platform.python_version()}, float32"
    )
    print("\n(i)+(ii) one-pass stack vs loop of single-depth kernel_fns, n x n NTK")
    print(
        f"{'L':>4} {'n':>6} {'one-pass s':>11} {'loop s':>9} {'ratio':>6} "
        f"{'(L+1)/2':>8} {'entries*L/s':>12}"
    )
    for depth in args.depths:
        r = one_pass_vs_loop(args.n, args.m, depth, args.repeats)
        print(
            f"{depth:>4} {args.n:>6} {r['one_pass_s']:>11.2f} {r['loop_s']:>9.2f} "
            f"{r['ratio']:>6.2f} {(depth + 1) / 2:>8.1f} "
            f"{r['entries_layers_per_s']:>12.3e}",
            flush=True,
        )
    if args.stream_n:
        print("\n(iii) streamed omega-weighted matvec, (L, n, n) never materialised")
        r = streamed_matvec(args.stream_n, args.m, args.stream_depth, args.block_size)
        print(
            f"n={r['n']} L={r['depth']}: {r['wall_s']:.1f} s, peak RSS "
            f"{r['peak_rss_gib']:.2f} GiB (dense (L,n,n) float32 would be "
            f"{r['dense_would_need_gib']:.1f} GiB), "
            f"{r['entries_layers_per_s']:.3e} entries*L/s"
        )


if __name__ == "__main__":
    main()
