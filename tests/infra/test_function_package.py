"""The Function app package: built the way azure-pipelines.yml builds it (its staging step, run verbatim: the
checkout minus .funcignore) it holds function_app.py, host.json, requirements.txt and functions/, nothing
else; and .funcignore alone (as `func azure functionapp publish` and `azd deploy` read it, on a developer's
folder with .venv, node_modules, .trapalert, models...) leaves out everything but those."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.infra.conftest import ROOT

APP_FILES = {"function_app.py", "host.json", "requirements.txt"}
NEVER = ("tests/", "node_modules/", ".venv/", ".trapalert/", "models/", "scoring/", "bench/", "infra/",
         "docs/", ".python_packages/", ".git/", "local.settings.json")


def _git(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
                          check=False).stdout


def _staging_script() -> str:
    pipeline = yaml.safe_load((ROOT / "azure-pipelines.yml").read_text(encoding="utf-8"))
    build = next(s for s in pipeline["stages"] if s["stage"] == "Build")
    job = next(j for j in build["jobs"] if j.get("job") == "FunctionApp")
    (step,) = [s for s in job["steps"] if str(s.get("displayName", "")).startswith("Stage the Function app")]
    return step["script"]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> set[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (the pipeline stages from one)")
    staging = tmp_path_factory.mktemp("staging")
    script = _staging_script().replace("$(Build.ArtifactStagingDirectory)", str(staging))
    subprocess.run(["bash", "-c", script], cwd=ROOT, check=True, timeout=120)
    app = staging / "app"
    assert not list(staging.glob("app.*")), "the step leaves no scratch files next to the package"
    return {p.relative_to(app).as_posix() for p in app.rglob("*") if p.is_file()}


def test_the_package_holds_the_app_and_nothing_else(package):
    top = {f.split("/", 1)[0] for f in package}
    assert top == APP_FILES | {"functions"}, sorted(top)
    leaked = sorted(f for f in package if f.startswith(NEVER) or "__pycache__/" in f or f.endswith(".pyc"))
    assert not leaked, leaked


def test_every_file_of_functions_is_in_the_package(package):
    in_repo = {f for f in _git("-c", "core.quotePath=off", "ls-files", "--cached", "--others",
                               "--exclude-standard", "functions").splitlines() if (ROOT / f).is_file()}
    assert in_repo and in_repo <= package, sorted(in_repo - package)[:20]
    for needed in ("functions/__init__.py", "functions/settings.py", "functions/db/migrations",
                   "functions/notify/annotate.py"):
        assert any(f == needed or f.startswith(needed + "/") for f in package), needed


def test_funcignore_alone_leaves_only_the_app_in_a_developers_folder(tmp_path):
    """`func publish` and `azd deploy` zip the folder itself, not git's files: every top-level entry a
    developer's checkout can hold, tracked or not, is ignored except the app's own (matched against
    .funcignore alone, in an empty repository: no .gitignore helps)."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    funcignore = str(ROOT / ".funcignore")

    def check_ignore(paths: list[str]) -> set[str]:
        return set(subprocess.run(
            ["git", "-c", f"core.excludesFile={funcignore}", "check-ignore", "--no-index", "--stdin"],
            cwd=tmp_path, input="\n".join(paths), capture_output=True, text=True, check=False,
        ).stdout.splitlines())

    entries = {p.name + ("/" if p.is_dir() else "") for p in ROOT.iterdir()}
    entries |= {".venv/", "node_modules/", ".trapalert/", "models/", ".python_packages/", ".azure/",
                "local.settings.json", ".vscode/", "trapalert.egg-info/", "requirements.lock"}
    kept = APP_FILES | {"functions/"}
    to_check = sorted((entries - kept) | {"functions/__pycache__/x.pyc", "functions/x/__pycache__/y.pyc"})
    ignored = check_ignore([e.rstrip("/") + ("/x" if e.endswith("/") else "") for e in to_check])
    not_ignored = [e for e in to_check if (e.rstrip("/") + ("/x" if e.endswith("/") else "")) not in ignored]
    assert not not_ignored, f".funcignore lets these into the package: {not_ignored}"
    kept_ignored = check_ignore(["function_app.py", "host.json", "requirements.txt", "functions/settings.py",
                                 "functions/db/migrations/0001_init.sql", "functions/ops/page.html"])
    assert not kept_ignored, kept_ignored
