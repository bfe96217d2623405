"""Documentation that runs: the README example and the docstring examples (the API
page is checked against the namespaces' ``__all__`` in tests/test_api.py)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import nftk_jax

ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_readme_python_example_runs():
    result = doctest.testfile(
        str(ROOT / "README.md"), module_relative=False, optionflags=FLAGS
    )
    assert result.attempted >= 5, "the README lost its Python example"
    assert result.failed == 0


MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(nftk_jax.__path__, prefix="nftk_jax.")
    if m.name.rsplit(".", 1)[-1] != "__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS)
    assert result.failed == 0
