"""`trapalert model list|download|export`: the catalogue, and PyTorch only when an export really runs."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from functions.cli import cli
from scoring.catalogue import CATALOGUE, SERVABLE
from tests.support.scoring_process import REPO_ROOT


def test_list_shows_every_release_with_its_pinned_checksum():
    r = CliRunner().invoke(cli, ["model", "list"])
    assert r.exit_code == 0, r.output
    for entry in CATALOGUE.values():
        line = next(x for x in r.output.splitlines() if x.startswith(entry.name + " "))
        assert entry.version in line
        assert (f"MD5 {entry.md5}" if entry.md5 else "none published") in line


def test_export_without_pytorch_says_what_to_install(tmp_path):
    (tmp_path / CATALOGUE["mdv1000-spruce"].filename).write_bytes(b"not really a checkpoint")
    r = CliRunner().invoke(cli, ["model", "export", "mdv1000-spruce", "--dir", str(tmp_path)])
    assert r.exit_code != 0
    assert "PyTorch is not installed" in r.output and "pip install torch==2.13.0" in r.output
    assert not list(tmp_path.glob("*.onnx"))


def test_export_needs_the_download_first_and_refuses_v41(tmp_path):
    r = CliRunner().invoke(cli, ["model", "export", "mdv5a", "--dir", str(tmp_path)])
    assert r.exit_code != 0 and "run `trapalert model download mdv5a` first" in r.output
    r = CliRunner().invoke(cli, ["model", "export", "mdv4.1", "--dir", str(tmp_path)])
    assert r.exit_code != 0 and "served as downloaded (frozen_graph)" in r.output
    r = CliRunner().invoke(cli, ["model", "export", "mdv7", "--dir", str(tmp_path)])
    assert r.exit_code != 0 and "unknown model 'mdv7'" in r.output and ", ".join(SERVABLE) in r.output


def test_the_service_and_the_cli_never_import_pytorch():
    code = (
        "import sys, scoring.export, scoring.download, scoring.app, scoring.backends.onnx_yolo, "
        "functions.cli.model\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'yolov5') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
