"""A small lint of the scoring Dockerfiles (the pipeline also runs hadolint); no Docker engine needed."""

from __future__ import annotations

import re

import pytest

from tests.infra.conftest import ROOT

DOCKERFILES = [ROOT / "scoring" / "Dockerfile", ROOT / "scoring" / "Dockerfile.cpu"]


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_lint(path):
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    ins = instructions(path.read_text(encoding="utf-8"))
    assert ins and ins[0][0] in ("FROM", "ARG"), "must start with FROM (or ARG)"
    for word, rest in ins:
        if word == "FROM":
            image = rest.split()[0]
            assert ":" in image or "@sha256" in image or image.startswith("$"), f"pin the base image: {image}"
            assert not image.endswith(":latest"), f"pin the base image: {image}"
        if word == "ADD":
            assert not rest.startswith(("http://", "https://")), "use RUN curl with a checksum, not ADD <url>"
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the service must not run as root"
    assert any(word in ("CMD", "ENTRYPOINT") for word, _ in ins)
