"""Full-scale NFT-K on Fashion-MNIST, and the scalable fit against exact Theorem 1.

Runs `run_scalable_fit` (Omega learned exactly on a stratified subset of ``m``
images, then Nystrom KRR on all training images with that subset as landmarks) and
prints the test accuracy of the learned Omega, the validation-selected single depth
and the uniform mix. With ``--exact`` it also fits exact Theorem 1 for the same
three kernels on the same training images, same ridge, and prints both side by side:

* ``--exact memory``: cached float32 kernels and dense float64 solves (CPU, needs
  ``4 L n^2`` bytes: n <= ~12,000 on a 24 GB machine);
* ``--exact grouped``: the combined kernels three at a time from row blocks of the
  layer kernels, float64 Cholesky solves (``12 n^2 + 4 n n_test`` bytes per group:
  n = 20,000 in about 10 GB);
* ``--exact recompute``: matrix-free CG whose every product recomputes the kernel
  tiles (`StreamedLayerOperator`); nothing of size ``n^2`` is stored. This is the
  accelerator path: on one GPU, all 60,000 images with exact kernels.

Usage::

    # the full run (planner picks m from free memory/disk and the time budget)
    /usr/bin/time -v .venv/bin/python benchmarks/bench_fullscale.py --out runs/fs60k
    # scalable vs exact on the same split
    .venv/bin/python benchmarks/bench_fullscale.py --n-train 10000 --landmarks 2000 \
        --exact memory --out runs/fs10k
    # on a GPU machine: exact kernels for all 60,000 images
    .venv/bin/python benchmarks/bench_fullscale.py --exact recompute --landmarks 4000 \
        --out runs/fs60k-gpu
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

from nftk_jax import MLP, layerwise_kernels, layerwise_matvec  # noqa: E402
from nftk_jax.data import load_fashion_mnist  # noqa: E402
from nftk_jax.experiment._run_scalable import run_scalable_fit  # noqa: E402
from nftk_jax.kernels._operators import StreamedLayerOperator  # noqa: E402
from nftk_jax.linalg import host_cholesky, solve_cg  # noqa: E402
from nftk_jax.linalg._krr import encode_targets  # noqa: E402


def kernel_rows(metrics: dict, omega: np.ndarray) -> dict[str, np.ndarray]:
    """The (d, L) layer weights of the three models, on normalised kernels."""
    d, L = omega.shape
    depth = metrics["accuracy"]["selected_depth"] - 1
    return {
        "learned_omega": omega,
        "selected_single_depth": np.eye(L)[np.full(d, depth)],
        "uniform_omega": np.full((d, L), 1.0 / L),
    }


def exact_memory(spec, ds, rows, scale, ridge) -> dict[str, float]:
    """Exact Theorem 1 from cached float32 kernels, dense float64 solves."""
    th = np.asarray(
        layerwise_kernels(spec, ds.x_train, dtype=np.float32, progress=True)
    )
    tt = np.asarray(
        layerwise_kernels(spec, ds.x_test, ds.x_train, dtype=np.float32, progress=True)
    )
    y, _ = encode_targets(ds.y_train, len(ds.y_train), n_classes=len(ds.classes))
    out = {}
    cache: dict[bytes, np.ndarray] = {}
    for name, omega in rows.items():
        scores = np.zeros((len(ds.x_test), omega.shape[0]))
        for c, w in enumerate(omega):
            key = w.tobytes()
            if key not in cache:
                k = np.tensordot((w / scale).astype(np.float32), th, axes=1)
                k = k.astype(np.float64)
                k[np.diag_indices_from(k)] += ridge
                factor = scipy.linalg.cho_factor(k, lower=True, overwrite_a=True)
                alpha = scipy.linalg.cho_solve(factor, y)
                del k
                kt = np.tensordot((w / scale).astype(np.float32), tt, axes=1)
                cache[key] = kt.astype(np.float64) @ alpha
            scores[:, c] = cache[key][:, c]
        out[name] = float(np.mean(np.argmax(scores, axis=1) == ds.y_test))
    return out


def _combined(spec, x, z, weights, out, block) -> None:
    """``out[g] = sum_l weights[g, l] Theta_l(x, z)``, float32, rows in blocks."""
    for r0 in range(0, len(x), block):
        th = np.asarray(
            layerwise_kernels(spec, x[r0 : r0 + block], z, dtype=np.float32)
        )
        out[:, r0 : r0 + block] = np.tensordot(weights, th, axes=1)


def exact_grouped(spec, ds, rows, scale, ridge, group=3) -> dict[str, float]:
    """Exact Theorem 1 without the ``(L, n, n)`` layer kernels: the distinct combined
    kernels, ``group`` at a time, formed in float32 from row blocks of the layer
    kernels, then one float64 Cholesky each. Memory ``4 group (n + n_test) n`` plus
    ``8 n^2`` bytes (n = 20,000: 10.4 GB); kernel work ``G / group`` passes."""
    x = np.asarray(ds.x_train, np.float32)
    xt = np.asarray(ds.x_test, np.float32)
    y, _ = encode_targets(ds.y_train, len(ds.y_train), n_classes=len(ds.classes))
    keys = sorted({w.tobytes(): w for om in rows.values() for w in om}.items())
    scores: dict[bytes, np.ndarray] = {}
    for g0 in range(0, len(keys), group):
        part = keys[g0 : g0 + group]
        w = np.stack([wk / scale for _, wk in part]).astype(np.float32)
        k = np.empty((len(part), len(x), len(x)), np.float32)
        kt = np.empty((len(part), len(xt), len(x)), np.float32)
        t0 = time.perf_counter()
        _combined(spec, x, x, w, k, 512)
        _combined(spec, xt, x, w, kt, 512)
        print(f"kernels {g0 + 1}-{g0 + len(part)} of {len(keys)}: "
              f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
        for i, (key, _) in enumerate(part):
            # factorised in place (the C-ordered float64 copy is the only one)
            chol, _ = host_cholesky(
                lambda i=i, k=k: k[i].astype(np.float64), ridge, what="K + ridge I",
                remedy="increase the ridge",
            )  # fmt: skip
            alpha = scipy.linalg.cho_solve((chol, True), y, check_finite=False)
            scores[key] = kt[i].astype(np.float64) @ alpha
            del chol
            print(f"solve {g0 + i + 1} of {len(keys)}: "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
        del k, kt
    out = {}
    for name, omega in rows.items():
        s = np.stack([scores[w.tobytes()][:, c] for c, w in enumerate(omega)], 1)
        out[name] = float(np.mean(np.argmax(s, axis=1) == ds.y_test))
    return out


def exact_recompute(spec, ds, rows, scale, ridge, maxiter) -> dict[str, float]:
    """Exact Theorem 1 by matrix-free CG; every product recomputes kernel tiles."""
    d = len(ds.classes)
    y, _ = encode_targets(ds.y_train, len(ds.y_train), n_classes=d)
    op = StreamedLayerOperator(spec, ds.x_train, dtype=np.float32, progress=True)
    out = {}
    for name, omega in rows.items():
        raw = omega / scale[None, :]  # normalised kernels = raw kernels / scale
        sol = solve_cg(op, y, raw, ridge=ridge, tol=1e-6, maxiter=maxiter)
        scores = layerwise_matvec(
            spec, ds.x_test, np.asarray(sol.alpha), x2=ds.x_train, omega=raw,
            dtype=np.float32, product_dtype=np.float64, progress=True,
        )  # fmt: skip
        out[name] = float(np.mean(np.argmax(np.asarray(scores), axis=1) == ds.y_test))
        print(f"exact {name}: {out[name]:.4f} (CG residual {sol.residual})")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--landmarks", type=int, default=None)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--memory-gb", type=float, default=None)
    p.add_argument("--time-budget-min", type=float, default=25.0)
    p.add_argument("--data-dir", default=None)
    p.add_argument(
        "--exact", choices=("none", "memory", "grouped", "recompute"), default="none"
    )
    p.add_argument("--cg-maxiter", type=int, default=2000)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    print(f"machine: {platform.machine()}, {jax.devices()[0].platform}, "
          f"jax {jax.__version__}")  # fmt: skip
    ds = load_fashion_mnist(args.data_dir, n_train=args.n_train, n_test=args.n_test)
    spec = MLP(depth=args.depth)
    t0 = time.perf_counter()
    budget = None if args.memory_gb is None else int(args.memory_gb * 2**30)
    m = run_scalable_fit(
        spec, ds, args.out, landmarks=args.landmarks, memory_budget=budget,
        time_budget_s=60 * args.time_budget_min, steps=args.steps,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    acc = m["accuracy"]
    print(f"\nn = {len(ds.x_train)} train / {len(ds.x_test)} test, "
          f"m = {m['plan']['landmarks']} landmarks, wall {wall:.1f} s")  # fmt: skip
    print("timings:", {k: round(v, 1) for k, v in m["timings_s"].items()})
    result = {"scalable": acc, "wall_s": wall, "timings_s": m["timings_s"]}
    if args.exact != "none":
        omega = np.load(f"{args.out}/omega.npy")
        rows = kernel_rows(m, omega)
        scale = np.asarray(m["kernel_scale"])
        t1 = time.perf_counter()
        if args.exact == "memory":
            exact = exact_memory(spec, ds, rows, scale, m["ridge"])
        elif args.exact == "grouped":
            exact = exact_grouped(spec, ds, rows, scale, m["ridge"])
        else:
            exact = exact_recompute(spec, ds, rows, scale, m["ridge"], args.cg_maxiter)
        result["exact"] = exact
        result["exact_s"] = time.perf_counter() - t1
    print("\n| model | scalable (Nystrom) | exact Theorem 1 |")
    print("|---|---|---|")
    for name in ("learned_omega", "selected_single_depth", "uniform_omega"):
        ex = result.get("exact", {}).get(name)
        ex_s = "" if ex is None else f"{100 * ex:.2f} %"
        print(f"| {name} | {100 * acc[name]:.2f} % | {ex_s} |")
    print(f"selected depth: {acc['selected_depth']}")
    with open(f"{args.out}/bench.json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
