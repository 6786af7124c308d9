"""The Function app's deployment package, built as azure-pipelines.yml builds it, and its cold import time.

    .venv/bin/python bench/function_package.py                 # build (pipeline steps) + measure
    .venv/bin/python bench/function_package.py --app DIR       # measure an already staged package
    .venv/bin/python bench/function_package.py --runs 7 --keep /tmp/app

Build: the Build stage's two script steps, taken verbatim from azure-pipelines.yml ("Stage the Function app
files" and "Install the locked dependencies") and run with Build.ArtifactStagingDirectory set to a temporary
folder; then a deflate zip of the staged folder, as the ArchiveFiles task makes.
Measure: files and bytes staged, zip bytes, and the cold import of ``function_app`` (a fresh interpreter
without site-packages, ``python -S``, importing from the staged folder and its .python_packages only, as
the worker does), median of ``--runs``. The figures go to docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("Stage the Function app files", "Install the locked dependencies")


def pipeline_step(display_name_prefix: str) -> str:
    """The script of the Build stage step whose displayName starts with ``display_name_prefix``."""
    pipeline = yaml.safe_load((ROOT / "azure-pipelines.yml").read_text())
    for stage in pipeline["stages"]:
        for job in stage.get("jobs", []):
            for step in job.get("steps", []):
                if "script" in step and str(step.get("displayName", "")).startswith(display_name_prefix):
                    return step["script"]
    raise LookupError(f"no pipeline step named {display_name_prefix!r}")


def run_step(display_name_prefix: str, staging: Path) -> None:
    script = pipeline_step(display_name_prefix).replace("$(Build.ArtifactStagingDirectory)", str(staging))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, check=True)


def build(staging: Path) -> Path:
    for name in STEPS:
        run_step(name, staging)
    return staging / "app"


def size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def zip_bytes(app: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        archive = shutil.make_archive(str(Path(tmp) / "functionapp"), "zip", root_dir=app)
        return Path(archive).stat().st_size


def cold_import_s(app: Path, runs: int) -> list[float]:
    site = app / ".python_packages" / "lib" / "site-packages"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = f"{app}{os.pathsep}{site}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", "import function_app"], cwd=app, env=env, check=True)
        times.append(time.perf_counter() - started)
    return times


def measure(app: Path, runs: int) -> dict:
    files, total = size(app)
    deps_files, deps = size(app / ".python_packages")
    times = cold_import_s(app, runs)
    return {
        "app": str(app),
        "files": files,
        "bytes": total,
        "dependency_bytes": deps,
        "dependency_files": deps_files,
        "zip_bytes": zip_bytes(app),
        "cold_import_s_median": round(statistics.median(times), 3),
        "cold_import_s_runs": [round(t, 3) for t in times],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--app", type=Path, help="measure this staged package instead of building one")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build into this folder (kept) instead of a temporary one")
    args = parser.parse_args(argv)
    if args.app:
        result = measure(args.app.resolve(), args.runs)
    elif args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = measure(build(args.keep.resolve()), args.runs)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(build(Path(tmp)), args.runs)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
