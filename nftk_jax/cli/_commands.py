"""The five ``nftk`` commands: fit, compare, interpret, figures, reproduce."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..core import NFTKInputError
from ._parser import COMPARE_RELATIVE_RIDGE, DEFAULTS, INTERPRET_RELATIVE_RIDGE
from ._report import compare_summary, fit_summary, interpret_summary, time_line

__all__ = ["COMMANDS", "CLIError", "PAPER_TABLE1"]


class CLIError(NFTKInputError):
    """A user error: printed as one line, exit code 2."""


def _log(line: str) -> None:
    print(f"[nftk] {line}", file=sys.stderr, flush=True)


# -- data ---------------------------------------------------------------------------
def _tfds(name: str, data_dir: Path | None, **kw) -> Any:
    """``load_tfds`` with the command line's own remedy when the data is missing."""
    from .. import data
    from ..data import DataNotPreparedError

    try:
        return data.load_tfds(
            name, data_dir=None if data_dir is None else str(data_dir), **kw
        )
    except DataNotPreparedError as e:
        raise CLIError(
            f"{e.name} is not prepared in {e.data_dir}; point --data-dir (or "
            f"TFDS_DATA_DIR) at a tensorflow-datasets directory holding it, prepared "
            f"on a machine with network access by "
            f"tfds.builder('{e.name}').download_and_prepare()"
        ) from None


def _load_data(args) -> Any:
    from .. import data

    name = args.dataset
    if name == "mnist5k":
        return data.load_mnist5k(
            n_train=args.n_train or 4000, n_test=args.n_test or 1000, seed=args.seed
        )
    length = getattr(args, "length", None)
    if length is not None and not name.startswith("ucr:"):
        raise CLIError(
            f"--length resamples the series of a ucr:NAME set; --dataset {name} "
            "has fixed-size rows (drop --length)"
        )
    if name.startswith("ucr:"):
        ds = _load_ucr(name[4:], getattr(args, "arch", "mlp"), length)
    elif name == "digits":
        ds = data.load_digits(seed=args.seed)
    elif name == "idx":
        if args.data_dir is None:
            raise CLIError("--dataset idx needs --data-dir pointing at IDX files")
        ds = data.load_idx_dataset(args.data_dir)
    elif name == "fashion_mnist":
        ds = data.load_fashion_mnist(args.data_dir)
    elif name == "mnist":
        ds = _tfds(name, args.data_dir, n_train=args.n_train, n_test=args.n_test)
    else:
        raise CLIError(
            f"--dataset {name} gives raw text; use `nftk reproduce --dataset imdb`"
        )
    return _subsample(ds, args.n_train, args.n_test)


def _load_ucr(name: str, arch: str, length: int | None = None):
    """A UCR set as a Dataset: packed sequences (rnn) or resampled rows (mlp).

    ``length``: every series resampled on its own to that many steps
    (``data.length_view``); ``None``: the raw series for an RNN (aligned at their
    last step), the median training length for an MLP."""
    import numpy as np

    from .. import data
    from ..model import pack_sequences

    try:
        seq = data.load_ucr(name)
    except ImportError as e:
        raise CLIError(str(e)) from e
    if arch == "rnn":
        xs = tuple(
            pack_sequences(data.length_view(x, length))
            for x in (seq.x_train, seq.x_test)
        )
    else:
        if length is None:
            length = int(np.median([len(s) for s in seq.x_train]))
        xs = tuple(
            data.resample_sequences(x, length) for x in (seq.x_train, seq.x_test)
        )
    if length is not None:
        name = f"{name} (resampled to {length} steps)"
    return data.Dataset(xs[0], seq.y_train, xs[1], seq.y_test, seq.classes, name)


def _subsample(ds, n_train, n_test):
    if n_train is not None and n_train < len(ds.x_train):
        ds = ds._replace(x_train=ds.x_train[:n_train], y_train=ds.y_train[:n_train])
    if n_test is not None and n_test < len(ds.x_test):
        ds = ds._replace(x_test=ds.x_test[:n_test], y_test=ds.y_test[:n_test])
    return ds


def _spec(args):
    from ..model import MLP, RNN

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


def _run_path(args, command: str) -> Path:
    """The run directory; only checked here, created at the first write."""
    from ..core import check_writable_dir

    check_writable_dir(args.out, "--out")
    depth = getattr(args, "depth", None)
    dataset = args.dataset.replace(":", "-")
    name = args.name or f"{command}-{dataset}" + (f"-L{depth}" if depth else "")
    return check_writable_dir(Path(args.out) / name, "--out/--name")


def _foreign_run(e) -> CLIError:
    return CLIError(f"{e.detail}; pass --overwrite to replace it, or another --name")


# -- fit ----------------------------------------------------------------------------
def _fit_one(args, spec, ds, run: Path) -> dict:
    import jax.numpy as jnp

    from ..experiment import run_fit

    return run_fit(
        spec,
        ds,
        run,
        ridge=args.ridge,
        ridge_grid=getattr(args, "ridge_grid", None),
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
        log=_log,
    )


def cmd_fit(args) -> int:
    from ..core import CheckpointError
    from ..experiment import RunDirectoryError

    t0 = time.perf_counter()
    spec = _spec(args)
    ds = _load_data(args)
    run = _run_path(args, "fit")
    t_data = time.perf_counter() - t0
    if getattr(args, "scalable", False):
        from ._scalable import fit_scalable, scalable_summary

        try:
            metrics = fit_scalable(args, spec, ds, run)
        except CheckpointError as e:
            hint = "With nftk fit: pass --overwrite or another --name."
            raise CLIError(f"{e} {hint}") from e
        print(scalable_summary(metrics, run, time.perf_counter() - t0))
        return 0
    try:
        metrics = _fit_one(args, spec, ds, run)
    except RunDirectoryError as e:
        raise _foreign_run(e) from e
    elapsed = time.perf_counter() - t0
    print(fit_summary(metrics, run, elapsed, t_data, getattr(args, "startup_s", 0)))
    return 0


# -- figures ------------------------------------------------------------------------
def cmd_figures(args) -> int:
    import numpy as np

    from ..experiment import plot_omega_heatmaps, plot_omega_trajectory

    run = args.run_dir
    omega_path = run / "omega.npy"
    if not omega_path.is_file():
        raise CLIError(f"{run} has no omega.npy; pass a directory written by nftk fit")
    omega = np.load(omega_path, allow_pickle=False)
    config = {}
    if (run / "config.json").is_file():
        config = json.loads((run / "config.json").read_text())
    plot_omega_heatmaps(
        omega,
        run / "fig2_omega.png",
        class_names=config.get("classes"),
        title=config.get("title"),
    )
    written = [run / "fig2_omega.png"]
    traj_path = run / "omega_trajectory.npy"
    if traj_path.is_file():
        traj = np.load(traj_path, allow_pickle=False)
        objective = None
        if (run / "metrics.json").is_file():
            metrics = json.loads((run / "metrics.json").read_text())
            objective = metrics.get("history", {}).get("objective")
        plot_omega_trajectory(
            traj,
            run / "omega_trajectory.png",
            objective=objective,
            title=config.get("title"),
        )
        written.append(run / "omega_trajectory.png")
    for p in written:
        print(f"wrote {p}")
    return 0


# -- compare ------------------------------------------------------------------------
def _load_omega(path: Path | None, d: int, depth: int):
    import numpy as np

    from ..linalg import check_omega

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


def _compare_ridge(args, spec, ds, omega) -> tuple[float, str]:
    import numpy as np

    from ..kernels import layerwise_kernels
    from ..linalg import combine_kernels

    if isinstance(args.ridge, str):
        raise CLIError("--ridge loo/gcv is for nftk fit; give a number here")
    if args.ridge is not None:
        return float(args.ridge), "given"
    theta = layerwise_kernels(spec, ds.x_train)
    diag = np.diagonal(np.asarray(combine_kernels(theta, omega)), axis1=1, axis2=2)
    rule = f"{COMPARE_RELATIVE_RIDGE} x mean combined kernel diagonal"
    return float(COMPARE_RELATIVE_RIDGE * np.mean(diag)), rule


def _run_config(command: str, args, spec, ds) -> dict:
    """What a compare or interpret run directory's config.json starts with."""
    from ..core import problem_digest
    from ..experiment import spec_config

    return {
        "command": command,
        "dataset": ds.name,
        "classes": list(ds.classes),
        "n_train": len(ds.x_train),
        "n_test": len(ds.x_test),
        "spec": spec_config(spec),
        "ridge": args.ridge,
        "seed": args.seed,
        "data_sha256": problem_digest(
            {"x": ds.x_train, "y": ds.y_train, "xt": ds.x_test, "yt": ds.y_test}, {}
        ),
    }


def _sample_defaults(args, command: str) -> None:
    """``--n-train``/``--n-test`` defaults of ``command`` when not given."""
    args.n_train = args.n_train or DEFAULTS[command]["n_train"]
    args.n_test = args.n_test or DEFAULTS[command]["n_test"]


def _open_run(run: Path, config: dict, overwrite: bool) -> dict:
    """Check ``run`` against ``config`` before any work; the JSON-ready config."""
    from ..experiment import RunDirectoryError, open_run_dir

    config = json.loads(json.dumps(config, default=str))
    try:
        open_run_dir(run, config, overwrite=overwrite, name="--out/--name")
    except RunDirectoryError as e:
        raise _foreign_run(e) from e
    return config


def _compare_config(args, spec, ds, omega) -> dict:
    return {
        **_run_config("compare", args, spec, ds),
        "widths": list(args.widths),
        "seeds": list(args.seeds),
        "train_steps": args.train_steps,
        "omega": omega,
        "omega_source": None if args.omega is None else str(args.omega),
        "title": f"{ds.name}, {spec.activation}, L = {spec.depth}, "
        f"n = {len(ds.x_train)}",
    }


def cmd_compare(args) -> int:
    from ..core import write_json
    from ..experiment import run_guard
    from ..finite import compare_widths, plot_width_study

    t0 = time.perf_counter()
    spec = _spec(args)
    _sample_defaults(args, "compare")
    ds = _load_data(args)
    run = _run_path(args, "compare")
    omega = _load_omega(args.omega, len(ds.classes), spec.depth)
    config = _open_run(run, _compare_config(args, spec, ds, omega), args.overwrite)
    ridge, rule = _compare_ridge(args, spec, ds, omega)
    t_setup = time.perf_counter() - t0
    study = compare_widths(
        spec, omega, ds.x_train, ds.y_train, ds.x_test, ds.y_test, ridge=ridge,
        widths=args.widths, seeds=args.seeds, steps=args.train_steps,
        progress=not args.no_progress,
    )  # fmt: skip
    t_train = time.perf_counter() - t0 - t_setup
    with run_guard(run):
        write_json(run / "config.json", config)
        result = {"ridge": ridge, "ridge_rule": rule, "omega": omega, **study.to_dict()}
        write_json(run / "width_study.json", result)
        plot_width_study(study, run / "width_study.png", title=config["title"])
        t_files = time.perf_counter() - t0 - t_setup - t_train
        total = time.perf_counter() - t0
        timings = {"setup_s": t_setup, "networks_s": t_train, "files_s": t_files}
        metrics = {**result, "timings_s": timings, "total_s": total}
        write_json(run / "metrics.json", metrics)
    print(compare_summary(study, run))
    startup = getattr(args, "startup_s", 0.0)
    stages = [("data, kernels and ridge", t_setup), ("networks", t_train)]
    stages = [("start-up", startup)] * (startup > 0) + stages
    print(time_line(total + startup, [*stages, ("files and figure", t_files)]))
    return 0


# -- interpret ----------------------------------------------------------------------
def _interpret_config(args, spec, ds) -> dict:
    return {
        **_run_config("interpret", args, spec, ds),
        "width": args.width,
        "train_steps": args.train_steps,
        "steps": args.steps,
        "omega_source": None if args.omega is None else str(args.omega),
    }


def cmd_interpret(args) -> int:
    import dataclasses

    from ..core import write_json
    from ..experiment import run_guard, run_interpret

    t0 = time.perf_counter()
    spec = dataclasses.replace(_spec(args), width=args.width)
    _sample_defaults(args, "interpret")
    ds = _load_data(args)
    run = _run_path(args, "interpret")
    omega = None
    if args.omega is not None:
        omega = _load_omega(args.omega, len(ds.classes), spec.depth)
    if isinstance(args.ridge, str):
        raise CLIError("--ridge loo/gcv is for nftk fit; give a number here")
    ridge = INTERPRET_RELATIVE_RIDGE if args.ridge is None else args.ridge
    config = _open_run(run, _interpret_config(args, spec, ds), args.overwrite)
    t_data = time.perf_counter() - t0
    with run_guard(run):
        write_json(run / "config.json", config)
        r = run_interpret(
            spec, ds, run, omega_kernel=omega, relative_ridge=ridge, steps=args.steps,
            train_steps=args.train_steps, seed=args.seed, log=_log,
        )  # fmt: skip
        total = time.perf_counter() - t0
        write_json(run / "metrics.json", {**r, "total_s": total})
    print(interpret_summary(r, ds.classes, run))
    t = r["timings_s"]
    startup = getattr(args, "startup_s", 0.0)
    stages = [("start-up", startup)] * (startup > 0) + [("data", t_data)]
    stages += [("kernel Omega", t["kernel_omega_s"])]
    stages += [("finite network", t["finite_training_s"])]
    rest = total - t_data - t["kernel_omega_s"] - t["finite_training_s"]
    stages += [("evaluation, files and figure", rest)]
    print(time_line(total + startup, stages))
    return 0


# -- reproduce ----------------------------------------------------------------------
#: The paper's Table 1 (test accuracy of the trained finite NFT-K MLP).
PAPER_TABLE1 = {
    ("mnist", 10): 0.9725,
    ("mnist", 20): 0.9523,
    ("imdb", 5): 0.864,
    ("imdb", 10): 0.867,
}


def _reproduce_data(args):
    from .. import data

    kw = {"n_train": args.n_train, "n_test": args.n_test}
    if args.dataset == "mnist":
        return _tfds("mnist", args.data_dir, **kw)
    if args.gpt2_dir is None:
        raise CLIError(
            "--dataset imdb needs --gpt2-dir: a folder with GPT-2's tokenizer.json "
            "and model.safetensors (e.g. a local copy of the 'gpt2' hub repository)"
        )
    emb = data.load_gpt2_embedding(local_dir=args.gpt2_dir)
    return _tfds("imdb_reviews", args.data_dir, text_embedding=emb, **kw)


def _reproduce_row(args, depth: int, ds, base: Path) -> dict:
    from ..model import MLP

    run_args = argparse.Namespace(
        ridge=None, objective="val_mse", constraint="simplex", steps=args.steps,
        tol=1e-5, solver="auto", normalize="trace", validation_fraction=0.2, seed=0,
        float32=False, overwrite=args.overwrite, no_progress=args.no_progress,
    )  # fmt: skip
    m = _fit_one(run_args, MLP(depth=depth), ds, base / f"L{depth}")
    return {
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


def cmd_reproduce(args) -> int:
    from ..core import write_json
    from ..experiment import RunDirectoryError, run_guard

    t0 = time.perf_counter()
    ds = _reproduce_data(args)
    depths = (10, 20) if args.dataset == "mnist" else (5, 10)
    base = _run_path(args, "reproduce")
    with run_guard(base, keep=("L5", "L10", "L20")):
        try:
            rows = [_reproduce_row(args, depth, ds, base) for depth in depths]
        except RunDirectoryError as e:
            raise _foreign_run(e) from e
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


COMMANDS = {
    "fit": cmd_fit,
    "figures": cmd_figures,
    "compare": cmd_compare,
    "interpret": cmd_interpret,
    "reproduce": cmd_reproduce,
}
