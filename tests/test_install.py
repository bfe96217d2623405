"""The plain-pip requirement files mirror pyproject.toml (README.md, "Without uv")."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _read(name: str) -> tuple[set[tuple[str, str]], list[str]]:
    """``(name, specifier)`` pairs and ``-r`` includes of ``requirements/NAME.txt``."""
    reqs, includes = set(), []
    for raw in (ROOT / "requirements" / f"{name}.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            includes.append(line.removeprefix("-r ").strip())
        elif line:
            reqs.add(_key(line))
    return reqs, includes


def _key(text: str) -> tuple[str, str]:
    req = Requirement(text)
    return req.name.lower().replace("_", "-"), str(req.specifier)


def _pyproject(group: str) -> set[tuple[str, str]]:
    deps = (
        PYPROJECT["dependencies"]
        if group == "core"
        else PYPROJECT["optional-dependencies"][group]
    )
    return {_key(d) for d in deps}


def test_core_file_is_pyproject_without_neural_tangents():
    reqs, includes = _read("core")
    expected = {r for r in _pyproject("core") if r[0] != "neural-tangents"}
    assert not includes
    assert reqs == expected
    assert all(name not in {"tensorflow", "tf2jax", "keras"} for name, _ in reqs)


@pytest.mark.parametrize("extra", ["test", "text", "data", "timeseries"])
def test_extra_files_are_pyprojects_extras(extra):
    reqs, includes = _read(extra)
    assert reqs == _pyproject(extra)
    assert includes == (["core.txt"] if extra == "test" else [])


def test_readme_gives_the_recipe_that_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for step in (
        "pip install -r requirements/test.txt",
        "pip install --no-deps neural-tangents==0.6.5 -e .",
    ):
        assert step in readme, step
        assert step in ci, step
