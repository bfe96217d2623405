"""The ``nftk`` command: which errors are one line, every offered choice works."""

from __future__ import annotations

import argparse
import json
import re
import signal

import pytest

from nftk_jax.cli import _main as cli
from nftk_jax.cli import build_parser, main
from nftk_jax.core import CheckpointError, NFTKInputError, NFTKTypeError
from nftk_jax.mkl import SOLVERS

TINY_FIT = [
    "fit",
    "--dataset",
    "digits",
    "--n-train",
    "60",
    "--n-test",
    "30",
    "--depth",
    "2",
    "--steps",
    "2",
    "--no-progress",
]


def _options(command: str) -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        flag: action
        for action in sub.choices[command]._actions
        for flag in action.option_strings
    }


def test_offered_solvers_are_known_to_the_learner():
    """``cg_matrix_free`` was offered by ``nftk fit`` but unknown to the learner."""
    assert set(_options("fit")["--solver"].choices) <= set(SOLVERS)


@pytest.mark.slow
@pytest.mark.parametrize("solver", _options("fit")["--solver"].choices)
def test_every_offered_solver_runs(solver, tmp_path, capsys):
    """Each ``--solver`` choice of ``nftk fit`` runs to the end."""
    argv = [*TINY_FIT, "--solver", solver, "--out", str(tmp_path), "--name", "s"]
    assert main(argv) == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["solver"] == solver


def _raise(exc: BaseException):
    def command(args):
        raise exc

    return command


@pytest.mark.parametrize(
    "exc",
    [
        TypeError("unsupported operand"),
        ImportError("cannot import name 'x'"),
        ValueError("operands could not be broadcast"),
        KeyError("omega"),
    ],
)
def test_library_bugs_keep_their_traceback(exc, monkeypatch):
    """Only the package's input errors become one-line errors; a bug propagates."""
    monkeypatch.setitem(cli.COMMANDS, "figures", _raise(exc))
    with pytest.raises(type(exc)):
        main(["figures", "somewhere"])


@pytest.mark.parametrize(
    "exc",
    [
        NFTKInputError("ridge must be > 0"),
        NFTKTypeError("steps must be an integer"),
        CheckpointError("checkpoint belongs to another problem"),
    ],
)
def test_input_errors_are_one_line(exc, monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "figures", _raise(exc))
    assert main(["figures", "somewhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nftk: error: {exc.args[0]}"]


@pytest.mark.parametrize("command", ["fit", "reproduce"])
def test_interrupt_hint_names_real_options(command, monkeypatch, capsys):
    """The Ctrl-C message names no option the command lacks (it once named a
    ``--resume`` flag that does not exist) and says how to resume."""
    monkeypatch.setitem(cli.COMMANDS, command, _raise(KeyboardInterrupt()))
    handler = signal.getsignal(signal.SIGINT)
    try:
        argv = ["fit"] if command == "fit" else ["reproduce", "--dataset", "mnist"]
        assert main(argv) == 130
    finally:
        signal.signal(signal.SIGINT, handler)
    err = capsys.readouterr().err
    assert "rerun the same command to resume" in err
    flags = re.findall(r"--[a-z][a-z0-9-]*", err)
    assert set(flags) <= set(_options(command)), flags
