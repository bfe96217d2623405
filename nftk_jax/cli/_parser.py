"""The ``nftk`` argument parser: every option has a help text with its default.

Options shared by several commands (data, model, output) are added per command, so
``nftk fit --help`` shows ``fit``'s defaults and ``nftk compare --help`` shows
``compare``'s (:data:`DEFAULTS`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..mkl import CONSTRAINT_REGISTRY, OBJECTIVES, SOLVER_REGISTRY
from ._scalable import add_scalable_args

__all__ = [
    "ACTIVATION_NAMES",
    "COMPARE_DEFAULTS",
    "DATASETS",
    "DEFAULTS",
    "FIT_DEFAULTS",
    "INTERPRET_DEFAULTS",
    "build_parser",
]

DATASETS = ("mnist5k", "digits", "mnist", "fashion_mnist", "idx", "imdb_reviews")

#: Per-command defaults of the shared options (``n_train``/``n_test`` ``None``:
#: decided from the data).
FIT_DEFAULTS = {"dataset": "mnist5k", "n_train": None, "n_test": None}
COMPARE_DEFAULTS = {"dataset": "digits", "n_train": 500, "n_test": 200}
INTERPRET_DEFAULTS = {"dataset": "digits", "n_train": 500, "n_test": 200}
DEFAULTS = {
    "fit": FIT_DEFAULTS,
    "compare": COMPARE_DEFAULTS,
    "interpret": INTERPRET_DEFAULTS,
}
COMPARE_RELATIVE_RIDGE = 0.1
INTERPRET_RELATIVE_RIDGE = 1e-3


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit code 2."""

    def error(self, message: str):  # noqa: D102
        hint = f" (see `{self.prog} --help`)"
        self.exit(2, f"nftk: error: {' '.join(message.split())}{hint}\n")


# -- argument types -----------------------------------------------------------------
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


#: The names of ``nftk_jax.model._spec.ACTIVATIONS``, listed here so that ``--help``
#: does not import JAX (tests/test_cli.py keeps the two in step).
ACTIVATION_NAMES = (
    "abrelu", "abs", "cos", "erf", "exp", "gaussian", "gelu", "leaky_relu",
    "monomial", "rbf", "rectified_monomial", "relu", "sigmoid_like", "sign", "sin",
)  # fmt: skip


def cached_kernel_solvers() -> tuple[str, ...]:
    """The names of :data:`~nftk_jax.mkl.SOLVER_REGISTRY` that work on kernels
    held in memory, which is what ``nftk fit`` computes."""
    return tuple(k for k, cls in SOLVER_REGISTRY.items() if cls.cached_kernels)


def _activations() -> str:
    return ", ".join(ACTIVATION_NAMES)


# -- option kinds ------------------------------------------------------------------
def _add_count(g, flag: str, default: int | None, help_text: str) -> None:
    """A positive-integer option."""
    g.add_argument(flag, type=_positive_int, default=default, help=help_text)


def _add_path(g, flag: str, help_text: str, default: Path | None = None) -> None:
    """A path option."""
    g.add_argument(flag, type=Path, default=default, help=help_text)


def _add_flag(g, flag: str, help_text: str) -> None:
    """An on/off option, off by default."""
    g.add_argument(flag, action="store_true", help=help_text)


def _add_split_sizes(g, defaults: tuple, notes: tuple[str, str]) -> None:
    """``--n-train`` and ``--n-test``; ``notes``: what their help gives as default."""
    for which, default, note in zip(("train", "test"), defaults, notes, strict=True):
        noun = "training" if which == "train" else "test"
        _add_count(
            g,
            f"--n-{which}",
            default,
            f"{noun} examples, from the start of the split (default: {note})",
        )


# -- shared option groups ----------------------------------------------------------
_RIDGE_HELP = {
    "fit": "KRR ridge lambda, absolute, added to the trace-normalised kernels (mean "
    "diagonal 1 with --normalize trace, so it is also relative to them); or 'loo' "
    "/ 'gcv' to select it in closed form on the uniform mix (default: 1e-3 x the "
    "mean kernel diagonal)",
    "compare": "KRR ridge lambda, absolute, added to the raw combined kernels "
    f"(default: {COMPARE_RELATIVE_RIDGE} x their mean diagonal, so gradient descent "
    "converges in a few hundred steps)",
    "interpret": "KRR ridge of the kernel learner, relative: lambda = RIDGE x the "
    "mean kernel diagonal; used only without --omega "
    f"(default: {INTERPRET_RELATIVE_RIDGE})",
}


def _add_data_args(p: argparse.ArgumentParser, command: str) -> None:
    defaults = DEFAULTS[command]
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default=defaults["dataset"],
        type=_dataset_name,
        metavar="{" + ",".join(DATASETS) + ",ucr:NAME}",
        help="mnist5k: the embedded 5,000-image MNIST subset (no network needed); "
        "digits: scikit-learn's 8x8 digits; mnist: tensorflow-datasets (needs "
        "--data-dir or TFDS_DATA_DIR); fashion_mnist: Debian's "
        "dataset-fashion-mnist, IDX files in --data-dir or a tensorflow-datasets "
        "copy; idx: MNIST-format IDX files in --data-dir; imdb_reviews: raw text, "
        "use `nftk reproduce --dataset imdb`; ucr:NAME: a UCR/UEA time-series set "
        "shipped with aeon, e.g. ucr:GunPoint (the timeseries extra; sequences for "
        "--arch rnn, resampled to the median length for mlp) (default: %(default)s)",
    )
    g.add_argument(
        "--length",
        type=_positive_int,
        default=None,
        metavar="T",
        help="ucr:NAME only: resample every series on its own to T steps "
        "(nftk_jax.data.length_view); for --arch rnn the default is the raw series "
        "aligned at their last step, for mlp the median training length",
    )
    _add_path(
        g,
        "--data-dir",
        "prepared tensorflow-datasets directory, or IDX directory (default: "
        "$TFDS_DATA_DIR for tensorflow-datasets)",
    )
    notes = (defaults["n_train"], defaults["n_test"])
    if notes[0] is None:
        notes = (
            "4000 for mnist5k, the whole training split otherwise",
            "1000 for mnist5k, the whole test split otherwise",
        )
    _add_split_sizes(g, (None, None), notes)
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the shuffle and of the validation split (default: %(default)s)",
    )


def _add_model_args(p: argparse.ArgumentParser, command: str) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--depth",
        type=int,
        default=10,
        help="hidden layers L, one readout each (default: %(default)s)",
    )
    g.add_argument(
        "--activation",
        default="relu",
        metavar="NAME",
        help=f"activation, one of: {_activations()} (default: %(default)s)",
    )
    g.add_argument(
        "--w-std",
        type=float,
        default=2.0**0.5,
        help="hidden weight standard deviation (default: sqrt 2 = 1.414)",
    )
    g.add_argument(
        "--b-std",
        type=float,
        default=0.1,
        help="hidden bias standard deviation (default: %(default)s)",
    )
    g.add_argument(
        "--parameterization",
        default="ntk",
        choices=("ntk", "standard"),
        help="ntk: weights N(0, 1) scaled by w_std/sqrt(fan-in) in the forward "
        "pass (the NTK limit); standard: weights N(0, w_std^2/fan-in) "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--arch",
        default="mlp",
        choices=("mlp", "rnn"),
        help="mlp: the NFT-K MLP; rnn: a stacked RNN on sequences (--w-std is its "
        "recurrent scale sigma_w, --b-std its sigma_b; relu or erf) "
        "(default: %(default)s)",
    )
    g.add_argument("--ridge", type=_ridge, default=None, help=_RIDGE_HELP[command])
    _add_flag(g, "--float32", "compute in float32 (default: float64)")


def _add_out_args(p: argparse.ArgumentParser, command: str) -> None:
    g = p.add_argument_group("output")
    _add_path(
        g,
        "--out",
        "parent directory of run directories (default: %(default)s)",
        Path("runs"),
    )
    pattern = {
        "fit": "fit-<dataset>-L<depth>",
        "compare": "compare-<dataset>-L<depth>",
        "interpret": "interpret-<dataset>-L<depth>",
        "reproduce": "reproduce-<dataset>",
    }[command]
    g.add_argument(
        "--name", default=None, help=f"run directory name (default: {pattern})"
    )
    resume = (
        "by default a rerun of the same command resumes the run in its directory"
        if command in ("fit", "reproduce")
        else "by default a directory holding another run is refused"
    )
    _add_flag(
        g,
        "--overwrite",
        f"delete an earlier run in the run directory and start afresh; {resume}",
    )
    _add_flag(
        g,
        "--no-progress",
        "hide progress bars (stage lines and the summary are still printed)",
    )


# -- commands ----------------------------------------------------------------------
def _add_pipeline_command(
    sub, command: str, add_own, **texts
) -> argparse.ArgumentParser:
    """A subcommand with the data and model options, then its own (``add_own``),
    then the output options; ``texts``: its ``help`` and ``description``."""
    p = sub.add_parser(command, **texts)
    _add_data_args(p, command)
    _add_model_args(p, command)
    add_own(p)
    _add_out_args(p, command)
    return p


def _add_fit(sub) -> None:
    fit = _add_pipeline_command(
        sub,
        "fit",
        _add_omega_args,
        help="infinite-width NFT-K with a learned Omega",
        description="Fit infinite-width NFT-K: layerwise NTKs, Theorem-1 kernel ridge "
        "regression, and Omega learned by projected gradient. Prints test accuracy "
        "of the learned Omega, the single depth selected on the validation split and "
        "the uniform mix, with bootstrap intervals and McNemar tests (the depth best "
        "on the test set only as a labelled oracle), and the time of every stage.",
    )
    add_scalable_args(fit)


def _add_omega_args(fit: argparse.ArgumentParser) -> None:
    g = fit.add_argument_group("Omega learning")
    g.add_argument(
        "--ridge-grid",
        type=_positive_float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="grid of --ridge loo/gcv, relative to the mean kernel diagonal, 4 "
        "points per decade (default: 1e-6 10)",
    )
    g.add_argument(
        "--objective",
        default="val_mse",
        choices=OBJECTIVES,
        help="val_mse: held-out loss (well posed); train_mse / krr_dual "
        "need a bounded constraint (default: %(default)s)",
    )
    g.add_argument(
        "--constraint",
        default="simplex",
        choices=tuple(CONSTRAINT_REGISTRY),
        help="feasible set for each class's Omega row; simplex gives "
        "exact zeros (default: %(default)s)",
    )
    _add_count(
        g,
        "--steps",
        100,
        "maximum Omega steps; the learner usually stops earlier, see --tol "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--tol",
        type=_positive_float,
        default=1e-5,
        help="stop when the relative objective change |J_k - J_k+1| / |J_k| stays "
        "below TOL for two consecutive steps, or when the projected-gradient norm "
        "drops below TOL (default: %(default)s)",
    )
    g.add_argument(
        "--solver",
        default="auto",
        # The solvers that work on kernels held in memory ('matrix_free' needs a
        # layer operator); tests/test_cli_errors.py runs each.
        choices=cached_kernel_solvers(),
        help="linear solver of the Omega steps: dense Cholesky, conjugate "
        "gradients, or auto: dense up to n = 2000, CG above (default: %(default)s)",
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
    _add_count(
        g,
        "--resamples",
        1,
        "learn Omega on K seeded validation splits (same kernels): per-entry "
        "mean, interval and selection frequency, rank correlation between runs, "
        "and accuracies averaged over splits (default: %(default)s)",
    )
    _add_flag(
        g,
        "--bootstrap",
        "with --resamples > 1, also resample each fitting part with replacement",
    )


def _add_compare(sub) -> None:
    _add_pipeline_command(
        sub,
        "compare",
        _add_width_study_args,
        help="finite- vs infinite-width networks across widths",
        description="Train the finite NFT-K network at several widths and compare its "
        "test predictions with the infinite-width Theorem-1 predictions.",
    )


def _add_width_study_args(cmp_: argparse.ArgumentParser) -> None:
    g = cmp_.add_argument_group("width study")
    g.add_argument(
        "--widths",
        type=_positive_int,
        nargs="+",
        default=[64, 256, 1024],
        help="hidden widths (default: 64 256 1024)",
    )
    g.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="network initialisation seeds (default: 0)",
    )
    _add_count(
        g,
        "--train-steps",
        500,
        "full-batch gradient steps per network (default: %(default)s)",
    )
    _add_path(
        g,
        "--omega",
        "Omega on the raw kernels: omega_raw.npy of a fit run, or the run "
        "directory (default: uniform 1/L)",
    )


def _add_interpret(sub) -> None:
    _add_pipeline_command(
        sub,
        "interpret",
        _add_paper_mode_args,
        help="finite-width (paper-mode) Omega vs the kernel-learned Omega",
        description="Train the finite NFT-K network in the paper's alternating mode "
        "(theta and Omega) and compare its Omega with the Omega learned on the "
        "infinite-width kernels: Spearman rank correlation per class, same top layer, "
        "and a side-by-side figure.",
    )


def _add_paper_mode_args(itp: argparse.ArgumentParser) -> None:
    g = itp.add_argument_group("finite network and Omega")
    _add_count(g, "--width", 256, "hidden width (default: %(default)s)")
    _add_count(
        g, "--train-steps", 2000, "paper-mode mini-batch steps (default: %(default)s)"
    )
    _add_count(
        g,
        "--steps",
        100,
        "maximum Omega steps of the kernel learner (default: %(default)s)",
    )
    _add_path(
        g,
        "--omega",
        "kernel-learned Omega on the raw kernels: omega_raw.npy of a fit run, "
        "or the run directory (default: learn it here)",
    )


def _add_figures(sub) -> None:
    fig = sub.add_parser(
        "figures",
        help="the paper's Fig. 2 heatmaps and Omega trajectory from a saved run",
        description="Draw row-normalised Omega, Omega_n^T Omega_n and Omega_n "
        "Omega_n^T heatmaps (and the Omega trajectory when saved) into RUN_DIR.",
    )
    fig.add_argument("run_dir", type=Path, help="a directory written by `nftk fit`")


def _add_reproduce(sub) -> None:
    rep = sub.add_parser(
        "reproduce",
        help="the paper's Table 1 configuration (needs the data set locally)",
        description="Run the paper's configuration: MNIST (L = 10 and 20) or IMDB "
        "(GPT-2 token-embedding features, L = 5 and 10).",
    )
    rep.add_argument(
        "--dataset",
        required=True,
        choices=("mnist", "imdb"),
        help="mnist: tensorflow-datasets MNIST, L = 10 and 20; imdb: "
        "tensorflow-datasets imdb_reviews with GPT-2 token-embedding features, "
        "L = 5 and 10",
    )
    _add_path(
        rep,
        "--data-dir",
        "prepared tensorflow-datasets directory (default: $TFDS_DATA_DIR)",
    )
    _add_path(
        rep,
        "--gpt2-dir",
        "local directory with GPT-2's tokenizer.json and model.safetensors "
        "(needed for imdb)",
    )
    _add_split_sizes(
        rep,
        (5000, 2000),
        (
            "%(default)s; see docs/reproduce.md for the memory this needs",
            "%(default)s",
        ),
    )
    _add_count(
        rep, "--steps", 100, "maximum Omega steps per depth (default: %(default)s)"
    )
    _add_out_args(rep, "reproduce")


def build_parser() -> argparse.ArgumentParser:
    """The ``nftk`` parser with its five subcommands."""
    parser = _Parser(
        prog="nftk",
        description="NFT-K: layerwise neural tangent kernels with a learned per-class "
        "mixture. Start with `nftk fit` (runs on the embedded MNIST-5k data).",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    _add_fit(sub)
    _add_compare(sub)
    _add_interpret(sub)
    _add_figures(sub)
    _add_reproduce(sub)
    return parser
