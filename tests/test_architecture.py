"""The package layout stays as docs/architecture.md describes it.

Walks the AST of every module of ``nftk_jax/`` (imports inside functions included):

* imports point down the layers only (or stay in their folder);
* a folder uses another folder only through its ``__init__`` (no ``_private``
  module of another folder is imported), and the top-level package too;
* docs/architecture.md has one section per folder, naming what it may import,
  and matches this test's table;
* every module is named in its folder's section of docs/architecture.md;
* no function is longer than :data:`MAX_FUNCTION_LINES` lines, except the
  ones listed in :data:`KNOWN_LONG`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nftk_jax"

#: Folder -> the folders it may import (besides itself). Bottom to top.
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "model": {"core"},
    "kernels": {"core", "model"},
    "linalg": {"core", "model", "kernels"},
    "mkl": {"core", "model", "kernels", "linalg"},
    "finite": {"core", "model", "kernels", "linalg", "mkl"},
    "experiment": {"core", "model", "kernels", "linalg", "mkl", "finite", "data"},
    "cli": {
        "core",
        "model",
        "kernels",
        "linalg",
        "mkl",
        "finite",
        "experiment",
        "data",
    },
}
#: Longest function allowed anywhere in the package (lines, docstring excluded).
MAX_FUNCTION_LINES = 80


def _modules(package: Path = PACKAGE) -> list[Path]:
    return sorted(package.rglob("*.py"))


def _folder(path: Path, package: Path) -> str | None:
    rel = path.relative_to(package).parts
    return rel[0] if len(rel) > 1 else None


def _imports(path: Path, root: Path) -> list[tuple[int, list[str]]]:
    """Absolute dotted names (as path parts under nftk_jax) each import reaches."""
    tree = ast.parse(path.read_text())
    pkg = list(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if target[:1] != ["nftk_jax"]:
                continue
            names = [a.name for a in node.names]
            if len(target) <= 2:  # `from nftk_jax.core import x` or `from .. import x`
                for name in names:
                    found.append((node.lineno, [*target, name]))
            else:
                found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "nftk_jax":
                    found.append((node.lineno, a.name.split(".")))
    return found


def _violations(package: Path = PACKAGE) -> list[str]:
    root = package.parent
    bad = []
    for path in _modules(package):
        here = _folder(path, package)
        rel = path.relative_to(root)
        for line, target in _imports(path, root):
            parts = target[1:]  # below nftk_jax
            if not parts or parts[0] not in ALLOWED:
                continue  # the package itself, e.g. `from .. import data` handled below
            there = parts[0]
            where = f"{rel}:{line} imports {'.'.join(target)}"
            if here == there:
                continue
            if here is not None and there not in ALLOWED[here]:
                bad.append(f"{where}: {here}/ may not import {there}/")
            if len(parts) > 1 and parts[1].startswith("_") and parts[1] != "__init__":
                bad.append(f"{where}: private module of another folder")
    return bad


def test_imports_point_down_and_use_public_names():
    bad = _violations()
    assert not bad, "\n".join(bad)


def test_the_checker_catches_violations(tmp_path):
    """The walk sees an upward import and a private cross-folder import, also
    inside a function, and accepts imports through a folder's ``__init__``."""
    fake = tmp_path / "nftk_jax"
    (fake / "linalg").mkdir(parents=True)
    (fake / "linalg" / "_x.py").write_text(
        "from ..kernels import layerwise_kernels\n"
        "def f():\n    from ..mkl import fit_mkl\n    from ..kernels._tiles import t\n"
    )
    bad = _violations(fake)
    assert len(bad) == 2, bad
    assert any("linalg/ may not import mkl/" in b for b in bad), bad
    assert any("private module of another folder" in b for b in bad), bad


def test_every_folder_is_in_the_table():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(ALLOWED)


def _doc_sections() -> dict[str, set[str]]:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    sections = {}
    for m in re.finditer(r"^## `(\w+)/`\n(.*?)(?=^## |\Z)", doc, re.M | re.S):
        may = re.search(r"May\s+import:\s+(.*?)\.", m.group(2), re.S)
        assert may, f"section {m.group(1)}/ does not say what it may import"
        named = set(re.findall(r"`(\w+)/`", may.group(1)))
        sections[m.group(1)] = named
    return sections


def test_architecture_doc_matches_the_tree():
    assert _doc_sections() == ALLOWED


def test_every_module_is_named_in_its_section():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    sections = dict(re.findall(r"^## `(\w+)/`\n(.*?)(?=^## |\Z)", doc, re.M | re.S))
    missing = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if path.name != "__init__.py"
        and f"`{path.name}`" not in sections.get(_folder(path, PACKAGE) or "", "")
    ]
    assert not missing, missing


def _length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    n = node.end_lineno - node.lineno + 1
    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    ):
        if isinstance(body[0].value.value, str):
            n -= body[0].end_lineno - body[0].lineno + 1
    return n


def _long_functions() -> list[str]:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _length(node)
                if n > MAX_FUNCTION_LINES:
                    rel = path.relative_to(ROOT)
                    long.append(f"{rel}:{node.lineno} {node.name} has {n} lines")
    return long


#: Functions allowed over the limit (none): a new one must be split, not listed.
KNOWN_LONG: set[str] = set()


def test_no_function_is_longer_than_the_limit():
    long = {re.sub(r":\d+ (\w+) has \d+ lines", r" \1", x) for x in _long_functions()}
    assert long == KNOWN_LONG
