"""Fixtures of the infrastructure checks: parsed Bicep files, parameter files, the app's names."""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
if str(ROOT) not in sys.path:  # functions/ is imported from the repository root
    sys.path.insert(0, str(ROOT))

import pycep  # noqa: E402,F401 - pycep-parser (requirements-dev.txt); a missing parser fails the run


@cache
def parse_bicep(path: Path) -> dict[str, Any]:
    from pycep import BicepParser

    return BicepParser().parse(file_path=path)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def param_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted((INFRA / "parameters").glob("*.json"))}


@pytest.fixture(scope="session")
def main_bicep() -> dict[str, Any]:
    return parse_bicep(INFRA / "main.bicep")


@pytest.fixture(scope="session")
def module():
    def load(name: str) -> dict[str, Any]:
        return parse_bicep(INFRA / "modules" / f"{name}.bicep")

    return load


@pytest.fixture(scope="session")
def parameters() -> dict[str, dict[str, Any]]:
    """{"dev": {name: value}, "prod": {...}, "azd": {...}} from the ARM parameter files."""
    out = {}
    files = dict(param_files())
    files["azd"] = INFRA / "main.parameters.json"
    for env, path in files.items():
        doc = json.loads(path.read_text(encoding="utf-8"))
        out[env] = {k: v.get("value") for k, v in doc["parameters"].items()}
    return out


def resources_of_type(parsed: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in parsed.get("resources", {}).items() if r["type"] == rtype}


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """The object of a resource, under its loop or condition if it has one."""
    config = resource["config"]
    while isinstance(config, dict) and "config" in config and ({"loop_type", "condition"} & set(config)):
        config = config["config"]
    return config


def walk(node: Any):
    """Every dict, list and scalar of a parsed tree."""
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def function_call(node: Any) -> tuple[str, dict[str, Any]] | None:
    if isinstance(node, dict) and "function" in node and isinstance(node["function"], dict):
        return node["function"]["type"], node["function"].get("parameters") or {}
    return None


def render(node: Any) -> Any:
    """A parsed expression back as short Bicep-like text: property access as a.b.c, calls as f(x, y)."""
    if isinstance(node, dict) and "operator" in node:
        op = node["operator"]
        if op["type"] == "property_accessor":
            return f"{render(op['operands']['operand_1'])}.{render(op['operands']['operand_2'])}"
        if op["type"] == "function_accessor":
            return f"{render(op['operands']['operand_1'])}.{op['operands']['func_name']}()"
        if op["type"] == "index_accessor":
            return f"{render(op['operands']['operand_1'])}[{render(op['operands']['operand_2'])}]"
        return f"<{op['type']}>"
    call = function_call(node)
    if call:
        return f"{call[0]}({', '.join(str(render(v)) for v in call[1].values() if v is not None)})"
    return node
