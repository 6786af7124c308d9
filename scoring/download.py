"""Fetch an official MegaDetector release into the model directory: resumable, checksum-verified.

    python -m scoring.download megadetector-v4.1 --dir models/
    python -m scoring.download megadetector-v5a --dir models/ --sha256 <hex>

* Resumable: bytes go to ``<file>.part``; a new attempt asks for the rest (HTTP ``Range``) and appends.
  A server that ignores Range (200 instead of 206) restarts the file from zero.
* Verified: the finished file's SHA-256 must equal the expected value (the ``sha256`` argument, else the
  catalogue's pinned value). A mismatch deletes the ``.part`` and fails; nothing is moved into place.
  Where no value is pinned yet (the catalogue entries below, until a maintainer pins them on a machine with
  internet), the digest of the download is written to ``<file>.sha256`` and printed, and later calls verify
  the file against it (trust on first use).
* No internet (as on the build machines) is a clear ``DownloadError`` naming the URL and the manual route.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelRelease:
    name: str
    filename: str
    url: str
    sha256: str | None  # None: not pinned yet (trust on first use, see the module docstring)
    backend: str
    note: str


CATALOGUE: dict[str, ModelRelease] = {
    release.name: release
    for release in (
        ModelRelease(
            "megadetector-v4.1",
            "md_v4.1.0.pb",
            "https://github.com/agentmorris/MegaDetector/releases/download/v4.1/md_v4.1.0.pb",
            None,
            "frozen_graph",
            "TF1 frozen graph; SCORING_MODEL_PATH=<dir>/md_v4.1.0.pb",
        ),
        ModelRelease(
            "megadetector-v5a",
            "md_v5a.0.0.pt",
            "https://github.com/agentmorris/MegaDetector/releases/download/v5.0/md_v5a.0.0.pt",
            None,
            "none (PyTorch)",
            "YOLOv5 PyTorch weights: this service runs TensorFlow; export to a SavedModel with the OD API "
            "signature to serve it (backend saved_model)",
        ),
        ModelRelease(
            "megadetector-v5b",
            "md_v5b.0.0.pt",
            "https://github.com/agentmorris/MegaDetector/releases/download/v5.0/md_v5b.0.0.pt",
            None,
            "none (PyTorch)",
            "as megadetector-v5a",
        ),
    )
}


class DownloadError(RuntimeError):
    """The download failed (network, HTTP, disk); the message says what to do."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected SHA-256."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Append the missing bytes of ``url`` to ``part`` (resuming from its size)."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "trapalert-scoring-download/1"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part already holds everything
            return
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot reach {url} ({reason}). No internet here? Download the file on a machine that "
            "has it and "
            f"copy it to {part.with_suffix('')}; {part.name} keeps what was fetched so far and a "
            "later run resumes."
        ) from None
    with response:
        status = getattr(response, "status", 200)
        mode = "ab"
        if offset and status != 206:  # the server ignored Range: start over
            mode = "wb"
        try:
            with part.open(mode) as out:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
            raise DownloadError(
                f"download of {url} interrupted after {part.stat().st_size} bytes ({exc}); "
                "run again to resume"
            ) from None
        expected_len = response.headers.get("Content-Length")
    if expected_len is not None:
        have = part.stat().st_size
        want = int(expected_len) + (offset if mode == "ab" else 0)
        if have < want:
            raise DownloadError(
                f"download of {url} interrupted at {have} of {want} bytes; run again to resume"
            )


def download_model(
    name: str,
    model_dir: Path,
    url: str | None = None,
    *,
    sha256: str | None = None,
    filename: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download release ``name`` into ``model_dir`` (resuming, verifying); return the file's path.

    ``url`` overrides the catalogue URL (a mirror). A name outside the catalogue needs ``url`` and, to be
    verified, ``sha256``. An existing file with the right digest is returned without a download.
    """
    release = CATALOGUE.get(name)
    if release is None and url is None:
        raise DownloadError(f"unknown model {name!r}; known: {', '.join(sorted(CATALOGUE))} (or pass a URL)")
    source = url or release.url
    target_name = filename or (release.filename if release else Path(source.split("?")[0]).name or name)
    expected = (sha256 or (release.sha256 if release else None) or "").lower() or None
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / target_name
    part = model_dir / (target_name + ".part")
    pin_file = model_dir / (target_name + ".sha256")
    if expected is None and pin_file.exists():
        expected = pin_file.read_text().split()[0].lower()

    if target.exists():
        digest = _sha256_file(target)
        if expected is None or digest == expected:
            return target
        raise ChecksumError(
            f"{target} exists but its SHA-256 is {digest}, expected {expected}; delete it to re-download"
        )

    _fetch(source, part, timeout)
    digest = _sha256_file(part)
    if expected is not None and digest != expected:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{source}: SHA-256 of the download is {digest}, expected {expected}; deleted {part.name}"
        )
    os.replace(part, target)
    if expected is None:
        pin_file.write_text(f"{digest}  {target_name}\n")
        print(
            f"warning: no pinned SHA-256 for {name}; recorded {digest} in {pin_file} (pin it in "
            "scoring/download.py)",
            file=sys.stderr,
        )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoring.download", description=__doc__.splitlines()[0])
    parser.add_argument("name", help=f"one of {', '.join(sorted(CATALOGUE))}")
    parser.add_argument("--dir", type=Path, default=Path("models"), help="model directory (default: models/)")
    parser.add_argument("--url", help="download from this URL instead (a mirror)")
    parser.add_argument("--sha256", help="expected SHA-256 (hex)")
    args = parser.parse_args(argv)
    try:
        path = download_model(args.name, args.dir, args.url, sha256=args.sha256)
    except DownloadError as exc:
        print(f"scoring.download: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
