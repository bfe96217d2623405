"""``nftk fit --scalable``: the full-scale staged run's options and summary."""

from __future__ import annotations

import argparse
import sys

from ..core import NFTKInputError

__all__ = ["add_scalable_args", "fit_scalable", "scalable_summary"]


def add_scalable_args(p: argparse.ArgumentParser) -> None:
    """The 'large data' option group of ``nftk fit``."""
    g = p.add_argument_group(
        "large data (--scalable)",
        "learn Omega exactly on a stratified subset, then fit Theorem 1 on all "
        "training images by Nystrom KRR with that subset as landmarks; resumable "
        "stages (see docs/scaling.md)",
    )
    g.add_argument(
        "--scalable",
        action="store_true",
        help="use the staged full-scale run (no n x n kernels)",
    )
    g.add_argument(
        "--landmarks",
        type=int,
        default=None,
        help="subset size and Nystrom landmarks m (default: the planner's choice)",
    )
    g.add_argument(
        "--memory-gb",
        type=float,
        default=None,
        help="memory the run may use, GiB (default: the free memory)",
    )
    g.add_argument(
        "--time-budget-min",
        type=float,
        default=25.0,
        help="wall time the planner sizes m for, minutes (default: %(default)s)",
    )

    g.add_argument(
        "--exact",
        action="store_true",
        help="also fit the learned-Omega predictor by exact Theorem 1 on all "
        "training images (CG over streamed kernel products, resumable)",
    )
    g.add_argument(
        "--exact-only",
        action="store_true",
        help="with --exact: skip the Nystrom stages (and their selected-depth and "
        "uniform models); the exact fit is the only one on all training images",
    )
    g.add_argument(
        "--cg-preconditioner",
        choices=("per-class", "shared"),
        default="per-class",
        help="the exact fit's Nystrom preconditioner: one per class, or one of the "
        "mean kernel (default: %(default)s)",
    )
    g.add_argument(
        "--cg-tol",
        type=float,
        default=1e-2,
        help="relative residual at which the exact fit's CG stops "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--cg-rank",
        type=int,
        default=1000,
        help="landmarks of the exact fit's Nystrom preconditioner "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--cg-maxiter",
        type=int,
        default=100,
        help="iteration cap of the exact fit's CG (default: %(default)s)",
    )


def fit_scalable(args, spec, ds, run) -> dict:
    from ..experiment import ExactOptions, run_scalable_fit

    if args.landmarks is not None and args.landmarks < 2:
        raise NFTKInputError(f"--landmarks must be >= 2, got {args.landmarks}.")
    if args.ridge is not None and not isinstance(args.ridge, float):
        raise NFTKInputError("--scalable takes a numeric --ridge (on trace-normalised "
                         "kernels), not 'loo' or 'gcv'.")  # fmt: skip
    if args.exact_only and not args.exact:
        raise NFTKInputError("--exact-only needs --exact (it skips the Nystrom fit, "
                             "so the exact fit must run).")  # fmt: skip
    budget = None if args.memory_gb is None else int(args.memory_gb * 2**30)
    exact = None
    if args.exact:
        exact = ExactOptions(
            rank=args.cg_rank, tol=args.cg_tol, maxiter=args.cg_maxiter,
            per_class=args.cg_preconditioner == "per-class",
        ).check()  # fmt: skip
    return run_scalable_fit(
        spec,
        ds,
        run,
        landmarks=args.landmarks,
        memory_budget=budget,
        time_budget_s=60.0 * args.time_budget_min,
        relative_ridge=1e-3 if args.ridge is None else args.ridge,
        constraint=args.constraint,
        steps=args.steps,
        tol=args.tol,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        log=lambda line: print(f"[nftk] {line}", file=sys.stderr, flush=True),
        exact=exact,
        nystrom=not args.exact_only,
    )


def scalable_summary(m: dict, run, elapsed: float) -> str:
    t = m["timings_s"]
    lines = [
        *_nystrom_lines(m["accuracy"]),
        *_exact_lines(m),
        f"landmarks      m = {m['plan']['landmarks']} (Omega learned on them)",
        f"time           {elapsed:.1f} s total: "
        + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in t.items() if k != "total_s"),
        "stages         " + ", ".join(f"{k}: {v}" for k, v in m["stages"].items()),
        f"results        {run}",
    ]
    return "\n".join(lines)


def _nystrom_lines(acc: dict) -> list[str]:
    if "learned_omega" not in acc:  # --exact-only
        return [f"selected depth layer {acc['selected_depth']} (on validation)"]
    return [
        f"test accuracy  learned Omega          {100 * acc['learned_omega']:6.2f} %",
        "               selected single depth  "
        f"{100 * acc['selected_single_depth']:6.2f} %  (layer "
        f"{acc['selected_depth']}, chosen on validation)",
        f"               uniform Omega          {100 * acc['uniform_omega']:6.2f} %",
    ]


def _exact_lines(m: dict) -> list[str]:
    if "exact" not in m:
        return []
    ex = m["exact"]
    return [
        f"exact fit      learned Omega          {100 * ex['learned_omega']:6.2f} %  "
        f"(all training images, CG {ex['cg_iterations']} iterations, residual "
        f"{ex['cg_residual']:.1e}, {ex['cg_status']})"
    ]
