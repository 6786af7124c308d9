"""scoring.download against a real HTTP server on loopback: Range resume, checksum, restarts, no network."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading

import pytest

from scoring.catalogue import SERVABLE, release
from scoring.download import CATALOGUE, ChecksumError, DownloadError, download_model
from tests.support.scoring_process import REPO_ROOT, free_port

PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class ModelServer(http.server.ThreadingHTTPServer):
    """Serves PAYLOAD at /md.pb; honours Range unless told not to; can cut a response short."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.cut_after: int | None = None  # send at most this many body bytes, then drop the connection
        self.honour_range = True
        self.requests: list[str | None] = []  # the Range header of each request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/md.pb"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server: ModelServer = self.server
        range_header = self.headers.get("Range")
        server.requests.append(range_header)
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and server.honour_range:
            start = int(match.group(1))
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            self.wfile.write(body[: server.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ModelServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.cut_after = 100_000
    with pytest.raises(DownloadError, match="run again to resume"):
        download_model("test-model", tmp_path, server.url, sha256=DIGEST, filename="md.pb")
    part = tmp_path / "md.pb.part"
    assert part.stat().st_size == 100_000 and not (tmp_path / "md.pb").exists()

    server.cut_after = None
    path = download_model("test-model", tmp_path, server.url, sha256=DIGEST, filename="md.pb")
    assert path == tmp_path / "md.pb" and path.read_bytes() == PAYLOAD and not part.exists()
    assert server.requests == [None, "bytes=100000-"]

    # already there and verified: no request at all
    assert download_model("test-model", tmp_path, server.url, sha256=DIGEST, filename="md.pb") == path
    assert len(server.requests) == 2


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    (tmp_path / "md.pb.part").write_bytes(b"stale partial bytes")
    server.honour_range = False
    path = download_model("test-model", tmp_path, server.url, sha256=DIGEST, filename="md.pb")
    assert path.read_bytes() == PAYLOAD and server.requests == ["bytes=19-"]


def test_complete_part_file_is_finished_without_refetching(server, tmp_path):
    (tmp_path / "md.pb.part").write_bytes(PAYLOAD)
    path = download_model("test-model", tmp_path, server.url, sha256=DIGEST, filename="md.pb")
    assert path.read_bytes() == PAYLOAD and server.requests == [f"bytes={len(PAYLOAD)}-"]


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    with pytest.raises(ChecksumError, match=DIGEST):
        download_model("test-model", tmp_path, server.url, sha256="0" * 64, filename="md.pb")
    assert list(tmp_path.iterdir()) == []


def test_corrupted_resume_is_caught_by_the_checksum(server, tmp_path):
    (tmp_path / "md.pb.part").write_bytes(b"X" * 1000)  # wrong first bytes, right length so far
    with pytest.raises(ChecksumError):
        download_model("test-model", tmp_path, server.url, sha256=DIGEST, filename="md.pb")
    assert not (tmp_path / "md.pb.part").exists()
    assert (
        download_model("test-model", tmp_path, server.url, sha256=DIGEST, filename="md.pb").read_bytes()
        == PAYLOAD
    )


def test_unpinned_download_records_its_digest_and_verifies_later(server, tmp_path, capsys):
    path = download_model("test-model", tmp_path, server.url, filename="md.pb")
    assert (tmp_path / "md.pb.sha256").read_text().split()[0] == DIGEST
    assert "no published checksum" in capsys.readouterr().err
    path.write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="delete it to re-download"):
        download_model("test-model", tmp_path, server.url, filename="md.pb")


def test_no_network_is_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/md_v4.1.0.pb"  # nothing listens there
    with pytest.raises(DownloadError) as info:
        download_model("megadetector-v4.1", tmp_path, url)
    message = str(info.value)
    assert url in message and "No internet here?" in message and str(tmp_path / "md_v4.1.0.pb") in message


def test_catalogue_and_unknown_names(tmp_path):
    assert set(SERVABLE) <= set(CATALOGUE)
    assert release("megadetector-v4.1") is CATALOGUE["mdv4.1"]  # the earlier names still work
    assert release("megadetector-v5a") is CATALOGUE["mdv5a"]
    assert CATALOGUE["mdv4.1"].filename == "md_v4.1.0.pb"
    for entry in CATALOGUE.values():
        assert entry.url.startswith("https://github.com/agentmorris/MegaDetector/releases/download/")
        assert entry.url.endswith("/" + entry.filename)
    with pytest.raises(DownloadError, match="unknown model 'md-v9'"):
        download_model("md-v9", tmp_path)


# The MD5 checksums MegaDetector's maintainer publishes (run_detector.py known_models), copied here on
# purpose: a change to the catalogue's pins must be a deliberate change to this table too.
PUBLISHED_MD5 = {
    "md_v5a.0.0.pt": "ec1d7603ec8cf642d6e0cd008ba2be8c",
    "md_v5b.0.0.pt": "bc235e73f53c5c95e66ea0d1b2cbf542",
    "md_v5a.0.1.pt": "60f8e7ec1308554df258ed1f4040bc4f",
    "md_v5b.0.1.pt": "f17ed6fedfac2e403606a08c89984905",
    "md_v1000.0.0-redwood.pt": "74474b3aec9cf1a990da38b37ddf9197",
    "md_v1000.0.0-cedar.pt": "3d6472c9b95ba687b59ebe255f7c576b",
    "md_v1000.0.0-larch.pt": "cab94ebd190c2278e12fb70ffd548b6d",
    "md_v1000.0.0-sorrel.pt": "4339a2c8af7a381f18ded7ac2a4df03e",
    "md_v1000.0.0-spruce.pt": "1c9d1d2b3ba54931881471fdd508e6f2",
}


def test_catalogue_pins_the_published_md5_checksums():
    pinned = {e.filename: e.md5 for e in CATALOGUE.values() if e.md5}
    assert pinned == PUBLISHED_MD5
    assert CATALOGUE["mdv4.1"].md5 is None  # none published: trust on first use
    for name in SERVABLE:
        entry = CATALOGUE[name]
        assert entry.md5 and entry.backend == "onnx" and entry.layout in ("yolov5", "yolov8")
        assert entry.filename.startswith("md_v") and entry.onnx_filename == entry.filename[:-3] + ".onnx"


def test_catalogue_sizes_thresholds_and_layouts():
    size = {n: CATALOGUE[n].image_size for n in SERVABLE}
    assert size == {"mdv5a": 1280, "mdv5b": 1280, "mdv1000-redwood": 1280, "mdv1000-cedar": 640,
                    "mdv1000-larch": 640, "mdv1000-sorrel": 960, "mdv1000-spruce": 640}
    assert {CATALOGUE[n].typical_threshold for n in ("mdv5a", "mdv5b")} == {0.2}
    assert {CATALOGUE[n].typical_threshold for n in SERVABLE if n.startswith("mdv1000")} == {0.3}
    assert CATALOGUE["mdv4.1"].typical_threshold == 0.8
    # YOLOv5-based releases have objectness; YOLOv9/v11 (Ultralytics-style heads) do not
    assert {n for n in SERVABLE if CATALOGUE[n].layout == "yolov5"} == {
        "mdv5a", "mdv5b", "mdv1000-redwood", "mdv1000-spruce"}


def test_md5_verification_accepts_the_right_file_and_refuses_a_wrong_one(server, tmp_path):
    path = download_model("test-model", tmp_path, server.url, md5=MD5, filename="md.pb")
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "md.pb.sha256").exists()
    with pytest.raises(ChecksumError, match=f"MD5 is {MD5}, expected {'0' * 32}"):
        download_model("test-model", tmp_path / "b", server.url, md5="0" * 32, filename="md.pb")
    assert list((tmp_path / "b").iterdir()) == []


def test_a_mirror_is_still_checked_against_the_pinned_md5(server, tmp_path):
    # the loopback "mirror" serves other bytes than the official md_v1000.0.0-spruce.pt
    with pytest.raises(ChecksumError, match=CATALOGUE["mdv1000-spruce"].md5):
        download_model("mdv1000-spruce", tmp_path, server.url)
    assert list(tmp_path.iterdir()) == []


def test_cli(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_")} | {
        "PYTHONPATH": str(REPO_ROOT)
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scoring.download",
            "megadetector-v4.1",
            "--dir",
            str(tmp_path),
            "--url",
            server.url,
            "--sha256",
            DIGEST,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "md_v4.1.0.pb")
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "scoring.download",
            "megadetector-v4.1",
            "--dir",
            str(tmp_path / "x"),
            "--url",
            f"http://127.0.0.1:{free_port()}/x",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "No internet here?" in bad.stderr
