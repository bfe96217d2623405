"""The public API: a small top level, sub-namespaces whose ``__all__`` is what they
export, docs/api.md listing exactly those names, and the names the top level used
to re-export still resolving with a DeprecationWarning."""

from __future__ import annotations

import importlib
import re
import types
import warnings
from pathlib import Path

import pytest

import nftk_jax

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["model", "kernels", "linalg", "mkl", "finite", "experiment", "data"]
NAMESPACES = ["nftk_jax"] + [f"nftk_jax.{s}" for s in [*SUBPACKAGES, "core", "cli"]]
#: The top level holds what a user needs; the rest lives in the sub-namespaces.
MAX_TOP_LEVEL = 35


def _doc_sections() -> dict[str, list[str]]:
    """docs/api.md: namespace -> the names in the first column of its tables."""
    doc = (ROOT / "docs" / "api.md").read_text()
    heads = list(re.finditer(r"^## `(nftk_jax[\w.]*)`\s*$", doc, re.M))
    sections = {}
    for head, nxt in zip(heads, [*heads[1:], None], strict=True):
        body = doc[head.end() : nxt.start() if nxt else len(doc)]
        sections[head.group(1)] = re.findall(r"^\| `(\w+)` \|", body, re.M)
    return sections


def _exported(module: types.ModuleType) -> set[str]:
    """Public names a module defines, less its own sub-packages, plus lazy ones."""
    names = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not (
            isinstance(value, types.ModuleType)
            and value.__name__.startswith(module.__name__ + ".")
        )
    }
    return names | set(getattr(module, "_LAZY", ()))


def test_docs_list_every_namespace_once():
    assert list(_doc_sections()) == NAMESPACES


@pytest.mark.parametrize("name", NAMESPACES)
def test_docs_list_exactly_the_namespace_all(name):
    module = importlib.import_module(name)
    documented = _doc_sections()[name]
    dupes = sorted({n for n in documented if documented.count(n) > 1})
    assert not dupes, f"docs/api.md lists {dupes} twice under {name}"
    assert len(set(module.__all__)) == len(module.__all__), f"{name}.__all__ repeats"
    missing = sorted(set(module.__all__) - set(documented))
    extra = sorted(set(documented) - set(module.__all__))
    assert not missing, f"docs/api.md does not list {name}: {missing}"
    assert not extra, f"docs/api.md lists {extra} under {name}, not in its __all__"


@pytest.mark.parametrize("name", NAMESPACES)
def test_all_is_what_the_namespace_exports(name):
    module = importlib.import_module(name)
    exported = _exported(module)
    assert not exported - set(module.__all__), (
        f"{name} exports names missing from __all__: "
        f"{sorted(exported - set(module.__all__))}"
    )
    assert not set(module.__all__) - exported, (
        f"{name}.__all__ names what it does not define: "
        f"{sorted(set(module.__all__) - exported)}"
    )
    for attr in module.__all__:
        getattr(module, attr)


def test_top_level_is_small_and_comes_from_the_sub_namespaces():
    assert len(nftk_jax.__all__) <= MAX_TOP_LEVEL, len(nftk_jax.__all__)
    homes = [importlib.import_module(n) for n in NAMESPACES[1:]]
    for name in nftk_jax.__all__:
        value = getattr(nftk_jax, name)
        assert any(
            name in home.__all__ and getattr(home, name) is value for home in homes
        ), f"nftk_jax.{name} is not the object of a sub-namespace's __all__"


def test_moved_names_warn_and_return_the_same_object():
    with pytest.warns(DeprecationWarning) as caught:
        old = nftk_jax.solve_cg
    message = str(caught[0].message)
    assert "nftk_jax.solve_cg moved to nftk_jax.linalg.solve_cg" in message
    assert old is nftk_jax.linalg.solve_cg
    with pytest.warns(DeprecationWarning, match="nftk_jax.model.pack_sequences"):
        from nftk_jax import pack_sequences
    assert pack_sequences is nftk_jax.model.pack_sequences


@pytest.mark.parametrize("name", sorted(nftk_jax._MOVED))
def test_every_moved_name_resolves_to_its_new_home(name):
    home = nftk_jax._MOVED[name]
    assert name in home.__all__ and name not in nftk_jax.__all__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert getattr(nftk_jax, name) is getattr(home, name)
    assert [w.category for w in caught] == [DeprecationWarning]


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        nftk_jax.no_such_name  # noqa: B018


def _uses_of_moved_names(path: Path) -> list[str]:
    """Lines of ``path`` that reach a moved name through the top level."""
    moved = "|".join(sorted(nftk_jax._MOVED))
    attr = re.compile(rf"\b(?:nftk_jax|nj|nk)\.({moved})\b")
    text = path.read_text()
    found = [
        f"{path.relative_to(ROOT)}:{i}: {m.group(0)}"
        for i, line in enumerate(text.splitlines(), 1)
        for m in attr.finditer(line)
    ]
    for m in re.finditer(r"from nftk_jax import (\([^)]*\)|[^\n]*)", text):
        names = set(re.findall(r"\b\w+\b", m.group(1))) & set(nftk_jax._MOVED)
        if names:
            line = text[: m.start()].count("\n") + 1
            found.append(f"{path.relative_to(ROOT)}:{line}: imports {sorted(names)}")
    return found


def test_the_repository_uses_the_new_homes_of_moved_names():
    """Code, tests, benchmarks and docs import moved names from their
    sub-namespace (this file and the API page show the deprecated form on
    purpose)."""
    skip = {Path(__file__).resolve(), ROOT / "docs" / "api.md"}
    paths = [
        p
        for folder in ("nftk_jax", "tests", "benchmarks", "docs")
        for p in sorted((ROOT / folder).rglob("*"))
        if p.suffix in (".py", ".md") and p.resolve() not in skip
    ]
    found = [
        hit for p in [*paths, ROOT / "README.md"] for hit in _uses_of_moved_names(p)
    ]
    assert not found, "\n".join(found)
