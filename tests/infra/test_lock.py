"""requirements.lock (what the pipeline installs into the Function app) agrees with requirements.txt: every
requirement of requirements.txt is pinned in the lock at a version it allows, every pin has hashes, and the
Function app's runtime carries no OpenCV/NumPy and no local-only or CLI-only package. Parses files only (no
resolver, no network)."""

from __future__ import annotations

import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.infra.conftest import ROOT

REQUIREMENTS = ROOT / "requirements.txt"
LOCK = ROOT / "requirements.lock"
ENV = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def requirements(path) -> list[Requirement]:
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(Requirement(line))
    return out


def lock_pins() -> dict[str, tuple[Version, int]]:
    """{canonical name: (pinned version, number of hashes)} from the pip-compile output."""
    text = LOCK.read_text(encoding="utf-8")
    # join the backslash continuations: one logical line per pin
    logical = re.sub(r"\\\n\s*", " ", text)
    pins: dict[str, tuple[Version, int]] = {}
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        spec, *options = line.split(" --")
        req = Requirement(spec.strip())
        (op, version), = [(s.operator, s.version) for s in req.specifier]
        assert op == "==", f"requirements.lock: {spec} is not an exact pin"
        if req.marker is not None and not req.marker.evaluate(ENV):
            continue
        pins[canonicalize_name(req.name)] = (Version(version),
                                             sum(1 for o in options if o.startswith("hash=sha256:")))
    return pins


def test_every_requirement_is_pinned_at_an_allowed_version():
    pins = lock_pins()
    problems = []
    for req in requirements(REQUIREMENTS):
        if req.marker is not None and not req.marker.evaluate(ENV):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name}: not in requirements.lock")
        elif not req.specifier.contains(pins[name][0], prereleases=True):
            problems.append(
                f"{req.name}: requirements.txt wants {req.specifier}, the lock pins {pins[name][0]}"
            )
    assert not problems, "re-run pip-compile (command in requirements.txt):\n" + "\n".join(problems)


def test_every_pin_has_hashes_and_the_lock_was_compiled_from_requirements_txt():
    pins = lock_pins()
    assert pins and all(n >= 1 for _, n in pins.values()), [k for k, (_, n) in pins.items() if n == 0]
    header = LOCK.read_text(encoding="utf-8")[:600]
    assert "pip-compile" in header and "--generate-hashes" in header and "requirements.txt" in header
    options = [ln for ln in LOCK.read_text(encoding="utf-8").splitlines() if ln.startswith("-")]
    assert not options, f"no machine-specific index or find-links in the lock: {options}"


def test_the_function_app_runtime_is_lean():
    direct = {canonicalize_name(r.name) for r in requirements(REQUIREMENTS)}
    pins = lock_pins()
    heavy_packages = ("opencv-python-headless", "opencv-python", "numpy", "tensorflow-cpu", "torch")
    for heavy in heavy_packages:
        assert heavy not in direct and heavy not in pins, f"{heavy} belongs to the scoring service"
    local = {canonicalize_name(r.name) for r in requirements(ROOT / "requirements-local.txt")}
    for only_local in ("croniter", "click", "uvicorn", "starlette", "pgserver"):
        assert only_local in local and only_local not in direct, only_local


def test_every_third_party_import_of_the_deployed_code_is_declared():
    """The modules function_app.py imports (at any depth) come from packages requirements.txt names."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    declared = {canonicalize_name(r.name) for r in requirements(REQUIREMENTS)}
    # local-only and CLI-only code is shipped (functions/**) but never imported by the Function app
    local_only = ("functions/localhost/", "functions/cli/")
    missing = set()
    for path in [ROOT / "function_app.py", *sorted((ROOT / "functions").rglob("*.py"))]:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(local_only):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("functions", "scoring"):
                    continue
                candidates = {canonicalize_name(d) for d in dists.get(top, [])}
                if top == "azure":  # a namespace package: azure.storage.blob is azure-storage-blob
                    parts = name.split(".")
                    candidates = {canonicalize_name("-".join(parts[:i])) for i in range(2, len(parts) + 1)}
                if not candidates & declared:
                    missing.add(f"{rel}: {name} ({', '.join(sorted(candidates)) or '?'})")
    assert not missing, "\n".join(sorted(missing))
