"""Fetch an official MegaDetector release into the model directory: resumable, checksum-verified.

    python -m scoring.download mdv5a --dir models/          # -> models/md_v5a.0.0.pt (MD5 verified)
    python -m scoring.download mdv4.1 --dir models/         # -> models/md_v4.1.0.pb (trust on first use)

The releases, their URLs and their pinned checksums are in ``scoring.catalogue`` (the one catalogue).

* Resumable: bytes go to ``<file>.part``; a new attempt asks for the rest (HTTP ``Range``) and appends.
  A server that ignores Range (200 instead of 206) restarts the file from zero.
* Verified: the finished file must have the expected digests: the MD5 the maintainer published (pinned in
  the catalogue, or ``--md5``) and/or a SHA-256 (``--sha256``). A mismatch deletes the ``.part`` and fails;
  nothing is moved into place.
  Where no checksum is published (v4.1), the SHA-256 of the first download is written to ``<file>.sha256``
  and printed, and later calls verify the file against it (trust on first use).
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
from pathlib import Path

from scoring.catalogue import CATALOGUE, SERVABLE, ModelRelease, release

CHUNK = 1 << 20

__all__ = ["CATALOGUE", "ChecksumError", "DownloadError", "ModelRelease", "download_model", "digests"]


class DownloadError(RuntimeError):
    """The download failed (network, HTTP, disk); the message says what to do."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected checksum."""


def digests(path: Path) -> dict[str, str]:
    """{"md5": hex, "sha256": hex} of a file, in one pass."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            md5.update(block)
            sha256.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def _mismatch(have: dict[str, str], expected: dict[str, str]) -> str | None:
    """'MD5 is x, expected y' for the first expected digest that differs, else None."""
    for algo, want in expected.items():
        if have[algo] != want:
            return f"{algo.upper().replace('SHA256', 'SHA-256')} is {have[algo]}, expected {want}"
    return None


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
    md5: str | None = None,
    filename: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download release ``name`` into ``model_dir`` (resuming, verifying); return the file's path.

    ``url`` overrides the catalogue URL (a mirror; the pinned checksum still applies). A name outside the
    catalogue needs ``url`` and, to be verified, ``sha256`` or ``md5``. An existing file with the right
    digests is returned without a download.
    """
    entry = release(name)
    if entry is None and url is None:
        others = ", ".join(sorted(set(CATALOGUE) - set(SERVABLE)))
        raise DownloadError(
            f"unknown model {name!r}; known: {', '.join(SERVABLE)} (also {others}), or pass a URL"
        )
    source = url or (entry.url if entry else "")
    target_name = filename or (entry.filename if entry else Path(source.split("?")[0]).name or name)
    expected: dict[str, str] = {}
    pinned_md5 = md5 or (entry.md5 if entry else None)
    if pinned_md5:
        expected["md5"] = pinned_md5.lower()
    if sha256:
        expected["sha256"] = sha256.lower()
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / target_name
    part = model_dir / (target_name + ".part")
    pin_file = model_dir / (target_name + ".sha256")
    if not expected and pin_file.exists():
        expected["sha256"] = pin_file.read_text().split()[0].lower()

    if target.exists():
        problem = _mismatch(digests(target), expected)
        if problem is None:
            return target
        raise ChecksumError(f"{target} exists but its {problem}; delete it to re-download")

    _fetch(source, part, timeout)
    have = digests(part)
    problem = _mismatch(have, expected)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{source}: the download's {problem}; deleted {part.name}")
    os.replace(part, target)
    if not expected:
        pin_file.write_text(f"{have['sha256']}  {target_name}\n")
        print(
            f"warning: no published checksum for {name}; recorded its SHA-256 {have['sha256']} in {pin_file} "
            "(later downloads are verified against it)",
            file=sys.stderr,
        )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoring.download", description=__doc__.splitlines()[0])
    parser.add_argument("name", help=f"one of {', '.join(sorted(CATALOGUE))}")
    parser.add_argument("--dir", type=Path, default=Path("models"), help="model directory (default: models/)")
    parser.add_argument("--url", help="download from this URL instead (a mirror)")
    parser.add_argument("--sha256", help="expected SHA-256 (hex)")
    parser.add_argument("--md5", help="expected MD5 (hex; the catalogue pins the published ones)")
    args = parser.parse_args(argv)
    try:
        path = download_model(args.name, args.dir, args.url, sha256=args.sha256, md5=args.md5)
    except DownloadError as exc:
        print(f"scoring.download: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
