"""The ``nftk`` command line.

Subcommands:

* ``nftk fit``: infinite-width NFT-K with a learned Omega (default: the embedded
  MNIST-5k, ReLU, L = 10); prints the accuracy of the learned Omega next to the
  single depth selected on the validation split and the uniform mix (with
  intervals and paired tests), the sparsity and the time of every stage; writes a
  run directory.
* ``nftk compare``: finite- versus infinite-width networks across widths.
* ``nftk interpret``: the Omega a finite network learns in paper mode against the
  kernel-learned Omega (rank correlation per class, a figure).
* ``nftk figures RUN_DIR``: the paper's Fig. 2 and the Omega trajectory from a run.
* ``nftk reproduce --dataset mnist|imdb``: the paper's Table 1 configuration.

Every run directory holds ``config.json``, ``metrics.json`` and the results. Bad
input (an :class:`~nftk_jax.core.NFTKInputError`) is a one-line ``nftk: error: ...``
on stderr with exit code 2, any other exception keeps its traceback; Ctrl-C is one
line and exit code 130, without a traceback.
"""

from __future__ import annotations

import os
import signal
import sys

from ..core import NFTKInputError
from ._commands import COMMANDS, PAPER_TABLE1, CLIError
from ._parser import build_parser
from ._report import seconds_since_start

__all__ = ["main", "build_parser", "PAPER_TABLE1", "CLIError"]


def _setup_jax(float32: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import jax

    if not float32:
        jax.config.update("jax_enable_x64", True)


def _close_bars() -> None:
    """End the lines of open progress bars, so the message starts a line."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _interrupted(exit_now: bool) -> int:
    """One line for Ctrl-C; from the command line, exit without shutdown hooks.

    A second Ctrl-C is ignored from here on. Leaving with ``os._exit`` skips the
    interpreter's shutdown (JAX's atexit hooks, joining tqdm's and XLA's threads),
    which is where interrupted runs printed tracebacks; every file a run writes is
    already complete (atomic writes), so nothing is lost.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _close_bars()
    print(
        "nftk: interrupted; rerun the same command to resume",
        file=sys.stderr,
        flush=True,
    )
    if exit_now:
        sys.stdout.flush()
        os._exit(130)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Run ``nftk`` with ``argv`` (default: the command line); returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        args.startup_s = seconds_since_start() if argv is None else 0.0
        if hasattr(args, "float32"):
            _setup_jax(args.float32)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return _interrupted(exit_now=argv is None)
    except NFTKInputError as e:
        # Only the package's own input errors are one line; anything else is a bug
        # and keeps its traceback.
        msg = " ".join(str(e).split())
        print(f"nftk: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
