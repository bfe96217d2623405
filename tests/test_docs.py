"""Documentation that runs: the README example, docstring examples, the API page."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
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


def _public_names(module) -> list[str]:
    return sorted(n for n in vars(module) if not n.startswith("_"))


@pytest.mark.parametrize("module_name", ["nftk_jax", "nftk_jax.data"])
def test_every_public_name_is_documented(module_name):
    module = importlib.import_module(module_name)
    api = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", api))
    missing = [
        n
        for n in _public_names(module)
        if not isinstance(getattr(module, n), type(nftk_jax)) and n not in documented
    ]
    assert not missing, f"docs/api.md does not mention {missing}"
