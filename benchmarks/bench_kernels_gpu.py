"""Fast vs stax layerwise kernels on an accelerator (GPU/TPU), figures to Markdown.

Same comparison as ``bench_kernels.py`` (a): ``layerwise_kernels`` of all L heads,
x against itself, ``engine='fast'`` and ``engine='stax'``, float32 (and float64
unless ``--no-float64``), plus the input Gram GEMM, on the first accelerator. The
target on one H200 in float32 is >= 1e10 kernel entries x layers per second at
L = 10. The table is printed and, with ``--write PATH``, appended to that Markdown
file (e.g. benchmarks/RESULTS.md) with the command and the device name.

Example::

    python benchmarks/bench_kernels_gpu.py --n 16384 --depth 10 \\
        --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
from bench_kernels import _timed  # this folder is on sys.path when run as a script

from nftk_jax import MLP, layerwise_kernels


def run(n: int, m: int, depth: int, repeats: int, dtypes, block_size) -> list[dict]:
    spec = MLP(depth=depth)
    x = np.random.default_rng(0).normal(size=(n, m)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True) / np.sqrt(m)
    rows = []
    for dtype in dtypes:
        xd = x.astype(dtype)
        with jax.enable_x64(dtype == np.float64):
            xj = jnp.asarray(xd)
            gemm = jax.jit(lambda a: a @ a.T)
            t_gemm = _timed(lambda g=gemm, a=xj: g(a), repeats)
        row = {"dtype": np.dtype(dtype).name, "gemm_s": t_gemm}
        for engine in ("fast", "stax"):
            row[engine] = _timed(
                lambda e=engine, a=xd, dt=dtype: layerwise_kernels(
                    spec, a, dtype=dt, engine=e, block_size=block_size
                ),
                repeats,
            )
        row["rate"] = n * n * depth / row["fast"]
        rows.append(row)
    return rows


def _markdown(rows, args, device: str) -> str:
    lines = [
        f"### Accelerator: {device}",
        "",
        "```",
        "python " + " ".join(sys.argv),
        "```",
        "",
        f"n = {args.n}, m = {args.m}, L = {args.depth}, ReLU, best of "
        f"{args.repeats}; target >= 1e10 entries x layers / s (float32, one H200).",
        "",
        "| dtype | fast s | stax s | speedup | Gram GEMM s | fast / GEMM "
        "| fast entries x L / s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['fast']:.3f} | {r['stax']:.3f} | "
            f"{r['stax'] / r['fast']:.1f} | {r['gemm_s']:.4f} | "
            f"{r['fast'] / r['gemm_s']:.1f} | {r['rate']:.2e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16384)
    p.add_argument("--m", type=int, default=784)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--no-float64", action="store_true")
    p.add_argument("--write", default=None, help="Markdown file to append to")
    args = p.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # float32 runs with it off per call
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        print("no accelerator found (jax.devices() is CPU); nothing measured.")
        return
    dtypes = [np.float32] + ([] if args.no_float64 else [np.float64])
    rows = run(args.n, args.m, args.depth, args.repeats, dtypes, args.block_size)
    text = _markdown(rows, args, f"{dev.platform} {dev.device_kind}")
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
