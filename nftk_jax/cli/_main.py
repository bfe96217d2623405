"""The ``nftk`` command line.

Subcommands:

* ``nftk fit``: infinite-width NFT-K with a learned Omega (default: the embedded
  MNIST-5k, ReLU, L = 10); prints the accuracy of the learned Omega next to the best
  single depth and the uniform mix, the sparsity and the time; writes a run
  directory.
* ``nftk compare``: finite- versus infinite-width networks across widths.
* ``nftk interpret``: the Omega a finite network learns in paper mode against the
  kernel-learned Omega (rank correlation per class, a figure).
* ``nftk figures RUN_DIR``: the paper's Fig. 2 and the Omega trajectory from a run.
* ``nftk reproduce --dataset mnist|imdb``: the paper's Table 1 configuration.

Every run directory holds ``config.json``, ``metrics.json``, ``omega.npy`` and PNG
figures. Bad input is a one-line ``nftk: error: ...`` on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ._scalable import add_scalable_args, fit_scalable, scalable_summary

__all__ = ["main", "build_parser"]

DATASETS = ("mnist5k", "digits", "mnist", "fashion_mnist", "idx", "imdb_reviews")


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit code 2."""

    def error(self, message: str):  # noqa: D102
        hint = f" (see `{self.prog} --help`)"
        self.exit(2, f"nftk: error: {' '.join(message.split())}{hint}\n")


# -- argument parsing -------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be finite and > 0, got {text}")
    return v


def _fraction(text: str) -> float:
    v = _positive_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return v


def _ridge(text: str) -> float | str:
    if text in ("loo", "gcv"):
        return text
    return _positive_float(text)


def _dataset_name(text: str) -> str:
    if text in DATASETS or (text.startswith("ucr:") and len(text) > 4):
        return text
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from {', '.join(DATASETS)}, or ucr:NAME)"
    )


def _add_data_args(p: argparse.ArgumentParser, *, default: str = "mnist5k") -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default=default,
        type=_dataset_name,
        metavar="{" + ",".join(DATASETS) + ",ucr:NAME}",
        help="mnist5k: the embedded 5,000-image MNIST subset (no network needed); "
        "digits: scikit-learn's 8x8 digits; mnist, fashion_mnist, imdb_reviews: "
        "tensorflow-datasets (needs --data-dir or TFDS_DATA_DIR; fashion_mnist also "
        "reads Debian's dataset-fashion-mnist or IDX files in --data-dir); idx: "
        "MNIST-format IDX files in --data-dir; ucr:NAME: a UCR/UEA time-series set "
        "shipped with aeon, e.g. ucr:GunPoint (the timeseries extra; sequences for "
        "--arch rnn, resampled to the median length for mlp) (default: %(default)s)",
    )
    g.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="prepared tensorflow-datasets directory, or IDX directory",
    )
    g.add_argument(
        "--n-train",
        type=_positive_int,
        default=None,
        help="training examples (default: fit 4000 for mnist5k, all otherwise; "
        "compare 500)",
    )
    g.add_argument(
        "--n-test",
        type=_positive_int,
        default=None,
        help="test examples (default: fit 1000 for mnist5k, all otherwise; "
        "compare 200)",
    )
    g.add_argument("--seed", type=int, default=0, help="shuffle/split seed (default 0)")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--depth",
        type=int,
        default=10,
        help="hidden layers L, one readout each (default: %(default)s)",
    )
    g.add_argument("--activation", default="relu", help="activation (default: relu)")
    g.add_argument(
        "--w-std",
        type=float,
        default=2.0**0.5,
        help="hidden weight std (default: sqrt 2)",
    )
    g.add_argument(
        "--b-std",
        type=float,
        default=0.1,
        help="hidden bias std (default: %(default)s)",
    )
    g.add_argument("--parameterization", default="ntk", choices=("ntk", "standard"))
    g.add_argument(
        "--arch",
        default="mlp",
        choices=("mlp", "rnn"),
        help="mlp: the NFT-K MLP; rnn: a stacked RNN on sequences (--w-std is its "
        "recurrent scale sigma_w, --b-std its sigma_b; relu or erf) "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--ridge",
        type=_ridge,
        default=None,
        help="KRR ridge lambda > 0, or (fit only) 'loo'/'gcv' to select it in "
        "closed form (default: fit 1e-3, compare 0.1, x mean kernel diagonal)",
    )
    g.add_argument(
        "--float32", action="store_true", help="compute in float32 (default: float64)"
    )


def _add_out_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs"),
        help="parent directory of run directories (default: %(default)s)",
    )
    p.add_argument(
        "--name",
        default=None,
        help="run directory name (default: <command>-<dataset>-L<depth>)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nftk",
        description="NFT-K: layerwise neural tangent kernels with a learned per-class "
        "mixture. Start with `nftk fit` (runs on the embedded MNIST-5k data).",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    fit = sub.add_parser(
        "fit",
        help="infinite-width NFT-K with a learned Omega",
        description="Fit infinite-width NFT-K: layerwise NTKs, Theorem-1 kernel ridge "
        "regression, and Omega learned by projected gradient. Prints test accuracy "
        "of the learned Omega, the single depth selected on the validation split and "
        "the uniform mix, with bootstrap intervals and McNemar tests (the depth best "
        "on the test set only as a labelled oracle).",
    )
    _add_data_args(fit)
    _add_model_args(fit)
    g = fit.add_argument_group("Omega learning")
    g.add_argument(
        "--objective",
        default="val_mse",
        choices=("val_mse", "train_mse", "krr_dual"),
        help="val_mse: held-out loss (well posed); train_mse / krr_dual "
        "need a bounded constraint (default: %(default)s)",
    )
    g.add_argument(
        "--constraint",
        default="simplex",
        choices=("simplex", "nonneg", "l1_ball", "box"),
        help="feasible set for each class's Omega row; simplex gives "
        "exact zeros (default: %(default)s)",
    )
    g.add_argument(
        "--steps",
        type=_positive_int,
        default=100,
        help="maximum Omega steps (default: %(default)s)",
    )
    g.add_argument(
        "--tol",
        type=_positive_float,
        default=1e-5,
        help="stop when the relative objective change is below this "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--solver",
        default="auto",
        choices=("auto", "dense", "cg", "cg_matrix_free"),
        help="linear solver (default: planner picks)",
    )
    g.add_argument(
        "--normalize",
        default="trace",
        choices=("trace", "none"),
        help="scale each layer kernel by its mean training diagonal before mixing, "
        "so Omega measures importance, not kernel size (default: %(default)s)",
    )
    g.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=0.2,
        help="share of the training set held out (stratified, seeded) to learn "
        "Omega with val_mse (default: %(default)s)",
    )
    g.add_argument(
        "--resamples",
        type=_positive_int,
        default=1,
        help="learn Omega on K seeded validation splits (same kernels): per-entry "
        "mean, interval and selection frequency, rank correlation between runs, "
        "and accuracies averaged over splits (default: %(default)s)",
    )
    g.add_argument(
        "--bootstrap",
        action="store_true",
        help="with --resamples > 1, also resample each fitting part with replacement",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh: by default an interrupted run in the same run "
        "directory resumes from its checkpoint",
    )
    _add_out_args(fit)
    add_scalable_args(fit)

    cmp_ = sub.add_parser(
        "compare",
        help="finite- vs infinite-width networks across widths",
        description="Train the finite NFT-K network at several widths and compare its "
        "test predictions with the infinite-width Theorem-1 predictions.",
    )
    _add_data_args(cmp_, default="digits")
    _add_model_args(cmp_)
    cmp_.add_argument(
        "--widths",
        type=_positive_int,
        nargs="+",
        default=[64, 256, 1024],
        help="widths (default: 64 256 1024)",
    )
    cmp_.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="network seeds (default: 0)"
    )
    cmp_.add_argument(
        "--train-steps",
        type=_positive_int,
        default=500,
        help="full-batch gradient steps per network (default: %(default)s)",
    )
    cmp_.add_argument(
        "--omega",
        type=Path,
        default=None,
        help="Omega on the raw kernels: omega_raw.npy of a fit run, or the run "
        "directory (default: uniform 1/L)",
    )
    _add_out_args(cmp_)

    itp = sub.add_parser(
        "interpret",
        help="finite-width (paper-mode) Omega vs the kernel-learned Omega",
        description="Train the finite NFT-K network in the paper's alternating mode "
        "(theta and Omega) and compare its Omega with the Omega learned on the "
        "infinite-width kernels: Spearman rank correlation per class, same top layer, "
        "and a side-by-side figure.",
    )
    _add_data_args(itp, default="digits")
    _add_model_args(itp)
    itp.add_argument(
        "--width", type=_positive_int, default=256, help="hidden width (default: 256)"
    )
    itp.add_argument(
        "--train-steps",
        type=_positive_int,
        default=2000,
        help="paper-mode mini-batch steps (default: %(default)s)",
    )
    itp.add_argument(
        "--steps",
        type=_positive_int,
        default=100,
        help="Omega steps of the kernel learner (default: %(default)s)",
    )
    itp.add_argument(
        "--omega",
        type=Path,
        default=None,
        help="kernel-learned Omega on the raw kernels: omega_raw.npy of a fit run, "
        "or the run directory (default: learn it here)",
    )
    _add_out_args(itp)

    fig = sub.add_parser(
        "figures",
        help="the paper's Fig. 2 heatmaps and Omega trajectory from a saved run",
        description="Draw row-normalised Omega, Omega_n^T Omega_n and Omega_n "
        "Omega_n^T heatmaps (and the Omega trajectory when saved) into RUN_DIR.",
    )
    fig.add_argument("run_dir", type=Path, help="a directory written by `nftk fit`")

    rep = sub.add_parser(
        "reproduce",
        help="the paper's Table 1 configuration (needs the data set locally)",
        description="Run the paper's configuration: MNIST (L = 10 and 20) or IMDB "
        "(GPT-2 token-embedding features, L = 5 and 10).",
    )
    rep.add_argument("--dataset", required=True, choices=("mnist", "imdb"))
    rep.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="prepared tensorflow-datasets directory (or TFDS_DATA_DIR)",
    )
    rep.add_argument(
        "--gpt2-dir",
        type=Path,
        default=None,
        help="local directory with GPT-2 tokenizer.json and model.safetensors (imdb)",
    )
    rep.add_argument(
        "--n-train",
        type=_positive_int,
        default=5000,
        help="training examples, from the start of the split (default: %(default)s; "
        "the cached kernels and solves need about (1.7 L + d) n^2 x 8 bytes)",
    )
    rep.add_argument(
        "--n-test",
        type=_positive_int,
        default=2000,
        help="test examples, from the start of the split (default: %(default)s)",
    )
    rep.add_argument("--steps", type=_positive_int, default=100)
    _add_out_args(rep)
    return parser


# -- shared helpers ---------------------------------------------------------------
def _setup_jax(float32: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import jax

    if not float32:
        jax.config.update("jax_enable_x64", True)


def _load_data(args) -> Any:
    from .. import data

    name = args.dataset
    if name == "mnist5k":
        return data.load_mnist5k(
            n_train=args.n_train or 4000, n_test=args.n_test or 1000, seed=args.seed
        )
    if name.startswith("ucr:"):
        ds = _load_ucr(name[4:], getattr(args, "arch", "mlp"))
    elif name == "digits":
        ds = data.load_digits(seed=args.seed)
    elif name == "idx":
        if args.data_dir is None:
            raise CLIError("--dataset idx needs --data-dir pointing at IDX files")
        ds = data.load_idx_dataset(args.data_dir)
    elif name == "fashion_mnist":
        ds = data.load_fashion_mnist(args.data_dir)
    elif name == "mnist":
        ds = data.load_tfds(
            name,
            data_dir=None if args.data_dir is None else str(args.data_dir),
            n_train=args.n_train,
            n_test=args.n_test,
        )
    else:
        raise CLIError(
            f"--dataset {name} gives raw text; use `nftk reproduce --dataset imdb`"
        )
    return _subsample(ds, args.n_train, args.n_test)


def _load_ucr(name: str, arch: str):
    """A UCR set as a Dataset: packed sequences (rnn) or resampled rows (mlp)."""
    import numpy as np

    from .. import data
    from ..model._sequences import pack_sequences

    try:
        seq = data.load_ucr(name)
    except ImportError as e:
        raise CLIError(str(e)) from e
    if arch == "rnn":
        xs = pack_sequences(seq.x_train), pack_sequences(seq.x_test)
    else:
        length = int(np.median([len(s) for s in seq.x_train]))
        xs = tuple(
            data.resample_sequences(x, length) for x in (seq.x_train, seq.x_test)
        )
    return data.Dataset(xs[0], seq.y_train, xs[1], seq.y_test, seq.classes, name)


def _subsample(ds, n_train, n_test):
    if n_train is not None and n_train < len(ds.x_train):
        ds = ds._replace(x_train=ds.x_train[:n_train], y_train=ds.y_train[:n_train])
    if n_test is not None and n_test < len(ds.x_test):
        ds = ds._replace(x_test=ds.x_test[:n_test], y_test=ds.y_test[:n_test])
    return ds


def _spec(args):
    from ..model._rnn import RNN
    from ..model._spec import MLP

    if getattr(args, "arch", "mlp") == "rnn":
        return RNN(
            depth=args.depth,
            activation=args.activation,
            sigma_w=args.w_std,
            sigma_b=args.b_std or 0.0,
        )
    return MLP(
        depth=args.depth,
        activation=args.activation,
        W_std=args.w_std,
        b_std=args.b_std,
        parameterization=args.parameterization,
    )


def _run_dir(args, command: str) -> Path:
    from ..core._io import ensure_writable_dir

    ensure_writable_dir(args.out, "--out")
    depth = getattr(args, "depth", None)
    dataset = args.dataset.replace(":", "-")
    name = args.name or f"{command}-{dataset}" + (f"-L{depth}" if depth else "")
    return ensure_writable_dir(Path(args.out) / name, "--out/--name")


# -- subcommands ------------------------------------------------------------------
def _fit_one(args, spec, ds, run: Path) -> dict:
    import jax.numpy as jnp

    from ..experiment._run_fit import run_fit

    return run_fit(
        spec,
        ds,
        run,
        ridge=args.ridge,
        objective=args.objective,
        constraint=args.constraint,
        steps=args.steps,
        tol=args.tol,
        solver=args.solver,
        normalize=args.normalize,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        resamples=getattr(args, "resamples", 1),
        bootstrap=getattr(args, "bootstrap", False),
        dtype=jnp.float32 if args.float32 else None,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        log=lambda line: print(f"[nftk] {line}", file=sys.stderr, flush=True),
    )


def _baseline_lines(b: dict) -> list[str]:
    q = 100 * b["confidence"]
    lines = [f"test accuracy (with {q:.0f}% bootstrap interval over test points"
             + (f"; mean over {b['n_splits']} splits" if b["n_splits"] > 1 else "")
             + ")"]  # fmt: skip
    for r in b["rows"]:
        name = r["name"] + (f" (layer {r['depth']})" if "depth" in r else "")
        lo, hi = r["test_bootstrap_interval"]
        line = f"  {name:<52} {100 * r['test_accuracy']:6.2f} % [{100 * lo:.2f}, "
        line += f"{100 * hi:.2f}]"
        if "split_mean" in r:
            slo, shi = r["split_interval"]
            line += f"  splits {100 * r['split_mean']:.2f} % [{100 * slo:.2f}, "
            line += f"{100 * shi:.2f}]"
        lines.append(line)
    for key, label in (("vs_validation_depth", "validation depth"),
                       ("vs_uniform", "uniform mix")):  # fmt: skip
        t = b["paired_tests"][key]
        lo, hi = t["bootstrap_interval"]
        lines.append(
            f"  learned - {label:<17} {100 * t['accuracy_difference']:+6.2f} points "
            f"[{100 * lo:+.2f}, {100 * hi:+.2f}], McNemar p = {t['p_value']:.3g}"
        )
    return lines


def _summary(m: dict, run: Path, elapsed: float) -> str:
    t = m["timings_s"]
    lines = [
        *_baseline_lines(m["baselines"]),
        f"sparsity       {100 * m['sparsity']:.1f} % of Omega entries are exactly 0",
        f"Omega steps    {m['n_steps']} (converged: {m['converged']})",
        f"time           {elapsed:.1f} s total: kernels {t['kernels_s']:.1f} s, "
        f"Omega learning {t['omega_learning_s']:.1f} s",
        f"results        {run}",
    ]
    if "stability" in m:
        st = m["stability"]
        lines.insert(-3, f"stability      mean rank correlation of layer importance "
                     f"between runs {st['mean_rank_correlation']:.2f}")  # fmt: skip
    return "\n".join(lines)


def cmd_fit(args) -> int:
    t0 = time.perf_counter()
    spec = _spec(args)
    ds = _load_data(args)
    run = _run_dir(args, "fit")
    from ..core._checkpoint import CheckpointError

    try:
        if args.scalable:
            metrics = fit_scalable(args, spec, ds, run)
        else:
            metrics = _fit_one(args, spec, ds, run)
    except CheckpointError as e:
        raise CLIError(f"{e} With nftk fit: pass --overwrite or another --name.") from e
    summary = scalable_summary if args.scalable else _summary
    print(summary(metrics, run, time.perf_counter() - t0))
    return 0


def cmd_figures(args) -> int:
    import numpy as np

    from ..experiment._figures import plot_omega_heatmaps, plot_omega_trajectory

    run = args.run_dir
    omega_path = run / "omega.npy"
    if not omega_path.is_file():
        raise CLIError(f"{run} has no omega.npy; pass a directory written by nftk fit")
    omega = np.load(omega_path, allow_pickle=False)
    config = {}
    if (run / "config.json").is_file():
        config = json.loads((run / "config.json").read_text())
    classes = config.get("classes")
    plot_omega_heatmaps(
        omega, run / "fig2_omega.png", class_names=classes, title=config.get("title")
    )
    written = [run / "fig2_omega.png"]
    traj_path = run / "omega_trajectory.npy"
    if traj_path.is_file():
        traj = np.load(traj_path, allow_pickle=False)
        objective = None
        if (run / "metrics.json").is_file():
            objective = (
                json.loads((run / "metrics.json").read_text())
                .get("history", {})
                .get("objective")
            )
        plot_omega_trajectory(traj, run / "omega_trajectory.png", objective=objective)
        written.append(run / "omega_trajectory.png")
    for p in written:
        print(f"wrote {p}")
    return 0


def _load_omega(path: Path | None, d: int, depth: int):
    import numpy as np

    from ..linalg._krr import check_omega

    if path is None:
        return np.full((d, depth), 1.0 / depth)
    if path.is_dir():
        path = path / "omega_raw.npy"
    if not path.is_file():
        raise CLIError(
            f"--omega {path} does not exist; pass omega_raw.npy or a run dir"
        )
    return check_omega(
        np.load(path, allow_pickle=False), n_classes=d, depth=depth, name="--omega"
    )


def cmd_compare(args) -> int:
    import numpy as np

    from ..core._io import write_json
    from ..finite._width_study import compare_widths, plot_width_study
    from ..kernels._layerwise import layerwise_kernels
    from ..linalg._krr import combine_kernels

    t0 = time.perf_counter()
    spec = _spec(args)
    if args.n_train is None:
        args.n_train = 500
    if args.n_test is None:
        args.n_test = 200
    ds = _load_data(args)
    run = _run_dir(args, "compare")
    d = len(ds.classes)
    omega = _load_omega(args.omega, d, spec.depth)
    ridge = args.ridge
    if ridge is None or isinstance(ridge, str):
        if isinstance(ridge, str):
            raise CLIError("--ridge loo/gcv is for nftk fit; give a number here")
        theta = layerwise_kernels(spec, ds.x_train)
        diag = np.diagonal(np.asarray(combine_kernels(theta, omega)), axis1=1, axis2=2)
        ridge = float(0.1 * np.mean(diag))
    study = compare_widths(
        spec,
        omega,
        ds.x_train,
        ds.y_train,
        ds.x_test,
        ds.y_test,
        ridge=ridge,
        widths=args.widths,
        seeds=args.seeds,
        steps=args.train_steps,
        progress=not args.no_progress,
    )
    result = {"ridge": ridge, "omega": omega, **study.to_dict()}
    write_json(run / "width_study.json", result)
    plot_width_study(study, run / "width_study.png")
    print(f"{'width':>6}  {'pred gap':>9}  {'NTK gap':>8}  {'finite acc':>10}")
    for i, w in enumerate(study.widths):
        print(
            f"{w:>6}  {np.mean(study.pred_gap[i]):9.4f}  "
            f"{np.mean(study.ntk_gap[i]):8.4f}  "
            f"{100 * np.nanmean(study.acc_finite[i]):9.2f}%"
        )
    print(
        f"infinite-width accuracy {100 * study.acc_infinite:.2f}%; log-log slopes: "
        f"predictions {study.slope_pred:.2f}, NTK {study.slope_ntk:.2f} "
        "(about -0.5 expected)"
    )
    print(f"time {time.perf_counter() - t0:.1f} s; results in {run}")
    return 0


def cmd_interpret(args) -> int:
    import dataclasses

    from ..experiment._agreement import run_interpret

    t0 = time.perf_counter()
    spec = dataclasses.replace(_spec(args), width=args.width)
    if args.n_train is None:
        args.n_train = 500
    if args.n_test is None:
        args.n_test = 200
    ds = _load_data(args)
    run = _run_dir(args, "interpret")
    omega = None
    if args.omega is not None:
        omega = _load_omega(args.omega, len(ds.classes), spec.depth)
    ridge = 1e-3 if args.ridge is None else args.ridge
    if isinstance(ridge, str):
        raise CLIError("--ridge loo/gcv is for nftk fit; give a number here")
    r = run_interpret(
        spec, ds, run, omega_kernel=omega, relative_ridge=ridge, steps=args.steps,
        train_steps=args.train_steps, seed=args.seed,
        log=lambda line: print(f"[nftk] {line}", file=sys.stderr, flush=True),
    )  # fmt: skip
    print(f"{'class':>8}  {'rank corr':>9}  {'top layer kernel/finite':>24}")
    for c, name in enumerate(ds.classes):
        print(
            f"{name:>8}  {r['rank_correlation'][c]:9.2f}  "
            f"{r['top_layer_kernel'][c]:>12} / {r['top_layer_finite'][c]}"
        )
    acc = r["finite_test_accuracy"]
    print(
        f"mean rank correlation {r['mean_rank_correlation']:.2f}; same top layer for "
        f"{100 * r['top_layer_agreement']:.0f}% of classes; finite test accuracy "
        + ("n/a" if acc is None else f"{100 * acc:.2f}%")
    )
    print(f"time {time.perf_counter() - t0:.1f} s; results in {run}")
    return 0


#: The paper's Table 1 (test accuracy of the trained finite NFT-K MLP).
PAPER_TABLE1 = {
    ("mnist", 10): 0.9725,
    ("mnist", 20): 0.9523,
    ("imdb", 5): 0.864,
    ("imdb", 10): 0.867,
}


def _reproduce_data(args):
    from .. import data

    data_dir = None if args.data_dir is None else str(args.data_dir)
    if args.dataset == "mnist":
        return data.load_tfds(
            "mnist", data_dir=data_dir, n_train=args.n_train, n_test=args.n_test
        )
    if args.gpt2_dir is None:
        raise CLIError(
            "--dataset imdb needs --gpt2-dir: a folder with GPT-2's tokenizer.json "
            "and model.safetensors (e.g. a local copy of the 'gpt2' hub repository)"
        )
    emb = data.load_gpt2_embedding(args.gpt2_dir)
    return data.load_tfds(
        "imdb_reviews",
        data_dir=data_dir,
        n_train=args.n_train,
        n_test=args.n_test,
        text_embedding=emb,
    )


def cmd_reproduce(args) -> int:
    from ..core._io import write_json
    from ..model._spec import MLP

    t0 = time.perf_counter()
    ds = _reproduce_data(args)
    depths = (10, 20) if args.dataset == "mnist" else (5, 10)
    base = _run_dir(args, "reproduce")
    rows = []
    for depth in depths:
        run_args = argparse.Namespace(
            ridge=None,
            objective="val_mse",
            constraint="simplex",
            steps=args.steps,
            tol=1e-5,
            solver="auto",
            normalize="trace",
            validation_fraction=0.2,
            seed=0,
            float32=False,
            overwrite=False,
            no_progress=args.no_progress,
        )
        m = _fit_one(run_args, MLP(depth=depth), ds, base / f"L{depth}")
        rows.append(
            {
                "depth": depth,
                "paper_finite_nftk": PAPER_TABLE1[(args.dataset, depth)],
                "learned_omega": m["accuracy"]["learned_omega"],
                "uniform_omega": m["accuracy"]["uniform_omega"],
                "validation_selected_single_depth": m["accuracy"][
                    "validation_selected_single_depth"
                ],
                "oracle_best_single_depth": m["accuracy"]["oracle_best_single_depth"],
                "sparsity": m["sparsity"],
            }
        )
    write_json(base / "table1.json", {"dataset": args.dataset, "rows": rows})
    print(
        f"{'depth':>5}  {'paper':>7}  {'learned':>7}  {'uniform':>7}  "
        f"{'val l':>7}  {'oracle':>7}  {'zeros':>6}"
    )
    for r in rows:
        print(
            f"{r['depth']:>5}  {100 * r['paper_finite_nftk']:6.2f}%  "
            f"{100 * r['learned_omega']:6.2f}%  {100 * r['uniform_omega']:6.2f}%  "
            f"{100 * r['validation_selected_single_depth']:6.2f}%  "
            f"{100 * r['oracle_best_single_depth']:6.2f}%  {100 * r['sparsity']:5.1f}%"
        )
    print(f"time {time.perf_counter() - t0:.1f} s; results in {base}")
    return 0


_COMMANDS = {
    "fit": cmd_fit,
    "figures": cmd_figures,
    "compare": cmd_compare,
    "interpret": cmd_interpret,
    "reproduce": cmd_reproduce,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "float32"):
            _setup_jax(args.float32)
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(
            "nftk: interrupted; rerun the same command with --resume to continue",
            file=sys.stderr,
        )
        return 130
    except (CLIError, ValueError, TypeError, FileNotFoundError, ImportError) as e:
        msg = " ".join(str(e).split())
        print(f"nftk: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
