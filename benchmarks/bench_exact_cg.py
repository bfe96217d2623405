"""How fast the exact full-scale fit's CG converges, and when its accuracy settles.

On a random subset of ``n`` Fashion-MNIST training images (cached float32
kernels, so that each product is cheap), the learned-Omega systems
``(K_c + rho I) alpha_c = y_c`` of a finished full-scale run are solved by
batched CG preconditioned with the package's matrix-free Nystrom preconditioner
(`nystrom_preconditioner`, uniform landmarks, the same call as the ``exact`` stage)
at several ranks, with the complement scaled by ``lambda_r + rho`` (the default)
or by ``rho`` (plain Woodbury), and per class (``per_class=True``, floor-scaled)
against shared. Every few iterations it prints the largest relative
residual and the test accuracy on ``--n-test`` test images, next to the accuracy
of a dense Cholesky solve.

Usage::

    .venv/bin/python benchmarks/bench_exact_cg.py --n 8000 --ranks 400,800,1600 \
        --omega runs/fs60k/omega.npy [--variants shared,per-class --tol 1e-4]
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

from nftk_jax import MLP, layerwise_kernels  # noqa: E402
from nftk_jax.data import load_fashion_mnist  # noqa: E402
from nftk_jax.linalg import encode_targets, nystrom_preconditioner  # noqa: E402

REPORT = (1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300)


def pcg(matvec, apply, y, accuracy, maxiter=300, tol=1e-6):
    """Batched preconditioned CG; (iteration, residual, accuracy) at REPORT."""
    x, r = np.zeros_like(y), y.copy()
    z = apply(r)
    p, rz, bnorm, out = z.copy(), (r * z).sum(0), np.linalg.norm(y, axis=0), []
    for k in range(1, maxiter + 1):
        ap = matvec(p)
        a = rz / (p * ap).sum(0)
        x += a * p
        r -= a * ap
        rel = float((np.linalg.norm(r, axis=0) / bnorm).max())
        if k in REPORT or rel < tol:
            out.append((k, f"{rel:.1e}", round(accuracy(x), 4)))
        if rel < tol:
            break
        z = apply(r)
        rz_new = (r * z).sum(0)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=8000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--ranks", default="400,800,1600")
    p.add_argument("--omega", required=True, help="omega.npy of a full-scale run")
    p.add_argument("--ridge", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--maxiter", type=int, default=300)
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument(
        "--variants", default="shared,woodbury,per-class",
        help="comma-separated: shared (floor-scaled), woodbury (rho on the "
        "complement), per-class (floor-scaled, one per class)",
    )  # fmt: skip
    args = p.parse_args()
    ds = load_fashion_mnist()
    spec = MLP(depth=10)
    idx = np.random.default_rng(args.seed).choice(
        len(ds.y_train), args.n, replace=False
    )
    x = np.asarray(ds.x_train[idx], np.float32)
    xt = np.asarray(ds.x_test[: args.n_test], np.float32)
    yt = np.asarray(ds.y_test[: args.n_test])
    t0 = time.perf_counter()
    th = np.asarray(layerwise_kernels(spec, x, dtype=np.float32))
    tt = np.asarray(layerwise_kernels(spec, xt, x, dtype=np.float32))
    print(f"kernels: {time.perf_counter() - t0:.1f} s", flush=True)
    scale = np.einsum("lii->l", th) / args.n  # trace-normalised, as in the run
    raw = np.load(args.omega) / scale
    d, rho = raw.shape[0], args.ridge
    y, _ = encode_targets(ds.y_train[idx], args.n, n_classes=d)
    k = np.stack([np.tensordot(w.astype(np.float32), th, 1) for w in raw])
    kt = np.stack([np.tensordot(w.astype(np.float32), tt, 1) for w in raw])
    del th, tt

    def accuracy(alpha):
        s = np.stack([kt[c] @ alpha[:, c] for c in range(d)], 1)
        return float(np.mean(s.argmax(1) == yt))

    def matvec(v):
        return np.stack([k[c] @ v[:, c] for c in range(d)], 1) + rho * v

    exact = np.empty((args.n, d))
    for c in range(d):
        a = k[c].astype(np.float64)
        a[np.diag_indices_from(a)] += rho
        exact[:, c] = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a), y[:, c])
    print(f"dense Cholesky: test accuracy {accuracy(exact):.4f}", flush=True)
    variants = {"shared": (True, False), "woodbury": (False, False),
                "per-class": (True, True)}  # fmt: skip
    for rank in (int(r) for r in args.ranks.split(",")):
        for name in args.variants.split(","):
            floor, per_class = variants[name]
            pre = nystrom_preconditioner(
                None, raw, ridge=rho, rank=rank, seed=args.seed, spec=spec, x=x,
                dtype=np.float32, scale_complement=floor, per_class=per_class,
            )  # fmt: skip

            def apply(r, pre=pre):
                return np.asarray(pre.apply(r))

            rows = pcg(matvec, apply, y, accuracy, args.maxiter, args.tol)
            lam = float(np.max(np.asarray(pre.eigvals)[..., -1]))
            print(f"rank {rank}, {name}, largest lambda_r {lam:.3g}: (iteration, "
                  f"residual, accuracy) {rows}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
