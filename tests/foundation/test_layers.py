"""The layers of functions/ (docs/architecture.md), enforced on the source:

* the domain (functions/domain/) decides and does no I/O: it imports nothing from the rest of the app and no
  I/O library;
* adapters (functions/adapters/) read and write, and never decide: they may build domain *types* (dataclasses,
  models, constants) but import no domain *function*;
* SQL lives in functions/adapters/ and functions/db/ only.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "functions"
IO_LIBRARIES = {
    "psycopg2",
    "azure",
    "httpx",
    "requests",
    "sendgrid",
    "erclient",
    "socket",
    "urllib",
    "subprocess",
}


def modules(folder: str) -> list[Path]:
    return sorted((PKG / folder).rglob("*.py"))


def dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def absolute(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name of a (possibly relative) ``from X import`` in ``path``."""
    if node.level == 0:
        return node.module or ""
    package = dotted(path).split(".") if path.name == "__init__.py" else dotted(path).split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports(path: Path) -> list[tuple[str, list[str], ast.AST]]:
    """(absolute module, imported names, node) for each import of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, [], node) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.append((absolute(path, node), [a.name for a in node.names], node))
    return out


def is_decision(module: str, name: str) -> bool:
    """A function (not a class, constant or module) defined in a domain module."""
    obj = getattr(importlib.import_module(module), name)
    return inspect.isfunction(obj)


def test_the_resolver_sees_relative_imports():
    found = {m for m, _, _ in imports(PKG / "adapters" / "alerts_repo.py")}
    assert "functions.domain.decision" in found and "functions.db" in found


@pytest.mark.parametrize("path", modules("domain"), ids=lambda p: p.name)
def test_the_domain_imports_nothing_from_the_app_and_does_no_io(path):
    for module, _, node in imports(path):
        top = module.split(".")[0]
        assert top not in IO_LIBRARIES, f"{path.name}:{node.lineno} imports {module} (I/O) into the domain"
        if module.startswith("functions."):
            assert module.startswith("functions.domain"), f"{path.name}:{node.lineno} imports {module}"


@pytest.mark.parametrize("path", modules("adapters"), ids=lambda p: p.name)
def test_adapters_import_no_decision_function_from_the_domain(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    for module, names, node in imports(path):
        if module == "functions.domain" or module.startswith("functions.domain."):
            for name in names:
                target = f"{module}.{name}"
                try:
                    importlib.import_module(target)
                    aliases[name] = target  # a module: check what is used of it below
                    continue
                except ImportError:
                    pass
                assert not is_decision(module, name), f"{path.name}:{node.lineno} imports {module}.{name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            module = aliases[node.value.id]
            assert not is_decision(module, node.attr), f"{path.name}:{node.lineno} calls {module}.{node.attr}"


SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.S)


def test_sql_lives_in_adapters_and_db_only():
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).parts
        if rel[0] in ("adapters", "db"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                if isinstance(node, ast.Constant) and _is_docstring(tree, node):
                    continue
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], "SQL outside functions/adapters and functions/db: " + ", ".join(offenders)


def _is_docstring(tree: ast.AST, const: ast.Constant) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and body[0].value is const:
                return True
    return False


def test_the_check_catches_a_decision_function():
    assert is_decision("functions.domain.decision", "decide")
    assert not is_decision("functions.domain.decision", "CameraState")
    assert SQL.search("SELECT id FROM images WHERE x") and not SQL.search("select a photo from the list")
