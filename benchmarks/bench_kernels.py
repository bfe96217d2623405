"""Benchmark of the layerwise kernel engines, fast vs stax side by side in one run.

(a) ``layerwise_kernels`` (all L heads, x against itself) with ``engine='fast'``
    (on CPUs: the compiled kernel), ``engine='fast_xla'`` (the same recursion as
    one XLA program) and ``engine='stax'``, float32 and float64, and the input
    Gram GEMM ``x @ x.T`` alone (the floor: the fast engine's target is <= 3x it
    in float32), as XLA's dot and as numpy's (BLAS ``syrk``, half the work);
(b) the XLA program's row-chunk size (cache-sized blocks through all L layers vs
    the whole tile per layer);
(c) the streamed Omega-weighted ``layerwise_matvec`` at large n, each engine in its
    own subprocess so that its peak resident memory is its own, optionally beside
    another checkout's ``engine='fast'`` (``--stream-baseline``), in interleaved
    rounds (``--stream-repeats``);
(d) optionally, the multi-head stack vs a loop of stand-alone depth-l kernel_fns.

Example::

    .venv/bin/python benchmarks/bench_kernels.py --n 4000 --depth 10 \\
        --stream-n 20000 --stream-depth 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import nftk_jax
from nftk_jax import MLP, layerwise_kernels, layerwise_matvec
from nftk_jax.kernels import _layerwise

#: Engines of (a): the compiled CPU kernel, the XLA program, neural-tangents.
ENGINES = ("fast", "fast_xla", "stax")


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


def engines_side_by_side(n: int, m: int, depth: int, repeats: int) -> list[dict]:
    spec = MLP(depth=depth)
    x = _inputs(n, m)
    rows = []
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        with jax.enable_x64(dtype == np.float64):
            gemm = jax.jit(lambda a: a @ a.T)
            xj = jnp.asarray(xd)
            t_gemm = _timed(lambda g=gemm, a=xj: g(a), repeats)
        t_np_gemm = _timed(lambda a=xd: a @ a.T, repeats)  # BLAS syrk
        times = {}
        for engine in ENGINES:
            times[engine] = _timed(
                lambda e=engine, a=xd, dt=dtype: layerwise_kernels(
                    spec, a, dtype=dt, devices=False, engine=e
                ),
                repeats,
            )
        rows.append(
            {
                "dtype": np.dtype(dtype).name,
                "fast_s": times["fast"],
                "fast_xla_s": times["fast_xla"],
                "stax_s": times["stax"],
                "speedup": times["stax"] / times["fast"],
                "over_xla": times["fast_xla"] / times["fast"],
                "gemm_s": t_gemm,
                "fast_over_gemm": times["fast"] / t_gemm,
                "np_gemm_s": t_np_gemm,
                "fast_over_np_gemm": times["fast"] / t_np_gemm,
                "stax_over_gemm": times["stax"] / t_gemm,
                "fast_entries_layers_per_s": n * n * depth / times["fast"],
            }
        )
    return rows


def chunk_sweep(n: int, m: int, depth: int, repeats: int, chunks) -> list[dict]:
    spec = MLP(depth=depth)
    x = _inputs(n, m)
    old = _layerwise.FAST_CHUNK_ENTRIES
    rows = []
    try:
        for c in chunks:
            _layerwise.FAST_CHUNK_ENTRIES = c
            t = _timed(
                lambda: layerwise_kernels(
                    spec, x, dtype=np.float32, devices=False, engine="fast_xla"
                ),
                repeats,
            )
            rows.append({"chunk_entries": c, "s": t})
    finally:
        _layerwise.FAST_CHUNK_ENTRIES = old
    return rows


def streamed_matvec(n: int, m: int, depth: int, engine: str) -> dict:
    spec = MLP(depth=depth)
    x = _inputs(n, m, seed=1)
    v = np.random.default_rng(2).normal(size=(n, 10)).astype(np.float32)
    omega = np.full((10, depth), 1.0 / depth, np.float32)
    t0 = time.perf_counter()
    out = layerwise_matvec(
        spec, x, v, omega=omega, dtype=np.float32, devices=False, engine=engine
    )
    out = np.asarray(jax.block_until_ready(out))
    wall = time.perf_counter() - t0
    peak_gib = _peak_rss_gib()
    return {
        "engine": engine,
        "n": n,
        "depth": depth,
        "wall_s": wall,
        "peak_rss_gib": peak_gib,
        "checksum": float(np.abs(out).sum()),
        "package": os.path.dirname(os.path.dirname(nftk_jax.__file__)),
    }


def _peak_rss_gib() -> float:
    """This process's peak resident memory since it started (``VmHWM``; unlike
    ``ru_maxrss``, which Linux keeps across ``exec``, it does not count the
    forking parent's memory)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # KiB
    except OSError:  # not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _stream_in_subprocess(
    n: int, m: int, depth: int, engine: str, root: str | None = None
) -> dict:
    """(c) in a fresh process, with the package imported from ``root`` (another
    checkout, e.g. an older commit's worktree) or from this one."""
    root = os.path.abspath(root or os.path.join(os.path.dirname(__file__), ".."))
    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import json, sys; sys.path[:0] = [{root!r}, {here!r}];"
        "import jax; jax.config.update('jax_enable_x64', True);"
        "import bench_kernels as b;"
        f"print(json.dumps(b.streamed_matvec({n}, {m}, {depth}, {engine!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def stream_side_by_side(args) -> None:
    """(c): every engine, and the baseline checkout's ``fast``, each in its own
    process, interleaved ``--stream-repeats`` times; ratios to the first."""
    runs = [(e, None) for e in args.stream_engines]
    if args.stream_baseline:
        runs.append(("baseline", args.stream_baseline))
    times: dict[str, list[float]] = {}
    checks: dict[str, float] = {}
    for rep in range(args.stream_repeats):
        for label, root in runs:
            engine = "fast" if root else label
            with open("/proc/loadavg") as f:
                load = " ".join(f.read().split()[:3])
            r = _stream_in_subprocess(
                args.stream_n, args.m, args.stream_depth, engine, root
            )
            times.setdefault(label, []).append(r["wall_s"])
            checks[label] = r["checksum"]
            print(
                f"  run {rep + 1} {label:>8}: {r['wall_s']:.1f} s, peak RSS "
                f"{r['peak_rss_gib']:.2f} GiB, load average before {load} "
                f"({r['package']})",
                flush=True,
            )
    first = runs[0][0]
    for label, _ in runs[1:]:
        ratios = [b / a for a, b in zip(times[first], times[label], strict=True)]
        rel = abs(checks[first] / checks[label] - 1)
        print(
            f"{label} / {first}: "
            + ", ".join(f"{x:.2f}x" for x in ratios)
            + f" the time (run by run), |checksum ratio - 1| = {rel:.1e}"
        )


def one_pass_vs_loop(n: int, m: int, depth: int, repeats: int) -> dict:
    spec = MLP(depth=depth)
    x = _inputs(n, m)
    stacked = jax.jit(lambda a: spec.network().kernel_fn(a, None, "ntk"))
    singles = [
        jax.jit(spec.single_depth(d)[2], static_argnums=2) for d in range(1, depth + 1)
    ]
    t_stack = _timed(lambda: stacked(x), repeats)
    t_loop = _timed(lambda: [f(x, None, "ntk") for f in singles], repeats)
    return {"depth": depth, "one_pass_s": t_stack, "loop_s": t_loop}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000, help="points for (a)/(b)")
    p.add_argument("--m", type=int, default=784, help="input features")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--chunks",
        type=int,
        nargs="*",
        default=[1 << 12, 1 << 15, 1 << 18, 1 << 30],
        help="FAST_CHUNK_ENTRIES values for (b); none skips",
    )
    p.add_argument("--stream-n", type=int, default=0, help="points for (c); 0 skips")
    p.add_argument("--stream-depth", type=int, default=10)
    p.add_argument(
        "--stream-engines",
        nargs="+",
        default=["fast", "fast_xla"],
        help="engines for (c), the first is the reference of the ratios",
    )
    p.add_argument(
        "--stream-baseline",
        default="",
        help="another checkout (e.g. a worktree of an older commit) whose "
        "engine='fast' joins (c) as 'baseline'",
    )
    p.add_argument("--stream-repeats", type=int, default=1, help="rounds of (c)")
    p.add_argument("--loop-depths", type=int, nargs="*", default=[], help="for (d)")
    args = p.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # float32 runs with it off per call

    print(
        f"jax {jax.__version__}, {jax.devices()[0].platform} x{jax.device_count()}, "
        f"python {platform.python_version()}, ReLU, W_std=sqrt(2), b_std=0.1"
    )
    print(f"\n(a) layerwise_kernels(x) all {args.depth} heads, n={args.n}, m={args.m}")
    print(
        f"{'dtype':>8} {'fast s':>8} {'xla s':>8} {'stax s':>8} {'stax/fast':>9} "
        f"{'xla/fast':>8} {'gemm s':>8} {'fast/gemm':>10} {'stax/gemm':>10} "
        f"{'fast entries*L/s':>17} {'np gemm s':>9} {'fast/np':>8}"
    )
    for r in engines_side_by_side(args.n, args.m, args.depth, args.repeats):
        print(
            f"{r['dtype']:>8} {r['fast_s']:>8.2f} {r['fast_xla_s']:>8.2f} "
            f"{r['stax_s']:>8.2f} {r['speedup']:>9.2f} {r['over_xla']:>8.2f} "
            f"{r['gemm_s']:>8.3f} {r['fast_over_gemm']:>10.2f} "
            f"{r['stax_over_gemm']:>10.2f} {r['fast_entries_layers_per_s']:>17.3e} "
            f"{r['np_gemm_s']:>9.3f} {r['fast_over_np_gemm']:>8.2f}",
            flush=True,
        )
    if args.chunks:
        print("\n(b) fast_xla, float32: entries per row chunk through all layers")
        for r in chunk_sweep(args.n, args.m, args.depth, args.repeats, args.chunks):
            print(f"{r['chunk_entries']:>12} {r['s']:>8.2f} s", flush=True)
    if args.stream_n:
        print(
            f"\n(c) streamed Omega-weighted matvec, n={args.stream_n}, "
            f"L={args.stream_depth}, float32, one subprocess per run"
        )
        stream_side_by_side(args)
    for depth in args.loop_depths:
        r = one_pass_vs_loop(args.n, args.m, depth, args.repeats)
        print(
            f"\n(d) L={depth}: stack {r['one_pass_s']:.2f} s, "
            f"loop {r['loop_s']:.2f} s, "
            f"ratio {r['loop_s'] / r['one_pass_s']:.2f} ((L+1)/2 = {(depth + 1) / 2})"
        )


if __name__ == "__main__":
    main()
