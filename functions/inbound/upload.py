"""Photos uploaded for a chosen camera (park console, `trapalert upload`): from an SD card or a phone, many
files or zips. They take the emailed photos' path, with nothing of their own but the door:

* every photo gets the SAME checks as an emailed attachment (functions/inbound/images.py: format sniffed,
  decoded, pixel bomb refused, EXIF time read in the camera's time zone or the one given), and is stored
  under the same blob name (``images/<park>/<camera>/<day>/<sha256>.<ext>``);
* it is recorded by the SAME repository (functions/adapters/inbound_repo.py) as one ``inbound_emails`` row
  of mode ``upload`` (sender = the uploader) with its image row, and its message goes into the outbox in
  that transaction; dedup: the row's key is ``upload|cam:<camera id>|photo:<sha256>``, so the same photo
  uploaded twice to a camera is a ``duplicate`` (nothing stored, nothing scored again), and so is a photo
  the camera already emailed (same bytes: an SD card read after the camera's emails);
* its message goes to the **bulk lane** (``BulkImage(purpose="upload")`` on ``process-image-bulk``,
  functions/names.py): scored, decided and alerted as a live photo, but a large upload never delays a live
  camera's alert;
* the upload is audited (``upload.received``: who, which camera, how many stored / duplicate / refused).

Zips are expanded here, bounded: at most ``UPLOAD_MAX_FILES`` photos and ``UPLOAD_MAX_BYTES`` bytes per
upload (expanded), ``UPLOAD_MAX_FILE_BYTES`` per photo; an archive is refused whole, with the reason, when a
member's name is a path out of the archive (absolute, ``..``, a drive letter), a member is a link, is
encrypted, claims a compression ratio over ``UPLOAD_MAX_ZIP_RATIO`` (a zip bomb), or expands to more than
it declared. Nested archives are not expanded (refused per member). Folders, ``__MACOSX/`` and hidden files
(``.DS_Store``) are skipped. Nothing is ever written to the local disk.
"""

from __future__ import annotations

import hashlib
import io
import logging
import stat
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..adapters.audit_repo import AuditRepository
from ..adapters.inbound_repo import EmailRecord, ImageRecord, InboundRepository, email_scope
from ..adapters.parks import ParkRepository, RegistryError
from ..statuses import AuditVia
from .images import store_photo
from .video import inspect_attachment

log = logging.getLogger(__name__)

# reasons of a refused file (a code, then ': ' and details: functions/inbound/reasons.py's convention)
ZIP_REFUSED = "zip_refused"
TOO_MANY_FILES = "too_many_files"
UPLOAD_TOO_LARGE = "upload_too_large"
FILE_TOO_LARGE = "file_too_large"
NESTED_ARCHIVE = "nested_archive"

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class UploadError(ValueError):
    """The upload as a whole cannot be taken (unknown park or camera, bad time zone)."""


@dataclass
class _File:
    name: str
    data: bytes | None
    reason: str | None = None
    status: str = "pending"


def _with(code: str, detail: str) -> str:
    return f"{code}: {detail}"[:500]


def _safe_member(name: str) -> bool:
    n = name.replace("\\", "/")
    if n.startswith("/") or (len(n) > 1 and n[1] == ":") or "\x00" in n:
        return False
    return ".." not in n.split("/")


def _skipped(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.endswith("/") or "__MACOSX" in parts or parts[-1].startswith(".")


def _zip_refusal(infos: list[zipfile.ZipInfo], members: list[zipfile.ZipInfo], budget: int, settings):
    """Why the whole archive is refused (code, detail), judged on its directory before anything is read."""
    if len(infos) > 4 * settings.upload_max_files:
        return ZIP_REFUSED, f"{len(infos)} entries (limit {4 * settings.upload_max_files})"
    for info in infos:
        what = f"member {info.filename[:100]!r}"
        if not _safe_member(info.filename):
            return ZIP_REFUSED, f"{what} leaves the archive"
        mode = info.external_attr >> 16
        if mode and stat.S_ISLNK(mode):
            return ZIP_REFUSED, f"{what} is a link"
        if info.flag_bits & 0x1:
            return ZIP_REFUSED, f"{what} is encrypted"
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > 1024 * 1024 and ratio > settings.upload_max_zip_ratio:
            limit = settings.upload_max_zip_ratio
            return ZIP_REFUSED, f"{what} expands {ratio:.0f}x (limit {limit:g}x): a zip bomb"
    declared = sum(i.file_size for i in members)
    if declared > budget:
        return UPLOAD_TOO_LARGE, f"expands to {declared} bytes, {budget} left"
    return None


def _expand_zip(name: str, data: bytes, budget: dict[str, int], settings) -> Iterator[_File]:
    """The photos of one zip, one at a time, or one refused entry for the whole archive (see the module
    docstring). A member that turns out bigger than declared, or unreadable, ends the archive there."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        yield _File(name, None, _with(ZIP_REFUSED, f"not a readable zip ({type(exc).__name__})"))
        return
    members = [i for i in infos if not _skipped(i.filename)]
    refusal = _zip_refusal(infos, members, budget["bytes"], settings)
    if refusal is not None:
        yield _File(name, None, _with(*refusal))
        return
    for info in members:
        label = f"{name}/{info.filename}"[:300]
        if info.file_size > settings.upload_max_file_bytes:
            yield _File(label, None, _with(FILE_TOO_LARGE, f"{info.file_size} bytes"))
            continue
        try:
            with zf.open(info) as fh:
                body = fh.read(info.file_size + 1)  # never more than declared (+1 to see a lie)
        except (zipfile.BadZipFile, RuntimeError, ValueError, OSError, EOFError) as exc:
            yield _File(
                label, None, _with(ZIP_REFUSED, f"unreadable ({type(exc).__name__}); archive ends here")
            )
            return
        if len(body) > info.file_size:
            yield _File(label, None, _with(ZIP_REFUSED, "expands past its declared size; archive ends here"))
            return
        budget["bytes"] -= len(body)
        if body.startswith(_ZIP_MAGIC):
            yield _File(label, None, _with(NESTED_ARCHIVE, "archives inside archives are not expanded"))
            continue
        yield _File(label, body)


def _expand(files: list[tuple[str, bytes]], settings) -> Iterator[_File]:
    """Every photo of the upload, one at a time (zips expanded), each within the upload's limits."""
    budget = {"bytes": settings.upload_max_bytes}
    photos = 0
    for filename, data in files:
        name = (filename or "upload").replace("\x00", "")[:300]
        if data.startswith(_ZIP_MAGIC) or name.lower().endswith(".zip"):
            entries: Iterable[_File] = _expand_zip(name, data, budget, settings)
        elif len(data) > settings.upload_max_file_bytes:
            entries = [_File(name, None, _with(FILE_TOO_LARGE, f"{len(data)} bytes"))]
        elif len(data) > budget["bytes"]:
            entries = [_File(name, None, _with(UPLOAD_TOO_LARGE, f"{budget['bytes']} bytes left"))]
        else:
            budget["bytes"] -= len(data)
            entries = [_File(name, data)]
        for e in entries:
            if e.data is not None:
                if photos >= settings.upload_max_files:
                    limit = settings.upload_max_files
                    e.data, e.reason = None, _with(TOO_MANY_FILES, f"limit {limit} photos per upload")
                else:
                    photos += 1
            if e.data is None:
                e.status = "rejected"
            yield e


def _camera(svc, park_slug: str, camera_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parks = ParkRepository(svc.db)
    try:
        park = parks.park(park_slug)
    except RegistryError as exc:
        raise UploadError(str(exc)) from None
    rows = parks.cameras_named(camera_name, park["slug"], or_id=True)
    if not rows:
        raise UploadError(f"no camera {camera_name!r} in park {park['slug']}")
    if len(rows) > 1:
        raise UploadError(f"camera {camera_name!r} is ambiguous in park {park['slug']}")
    return park, rows[0]


def upload_key(camera_id: int, sha256: str) -> str:
    """The dedupe key of an uploaded photo (inbound_emails.dedupe_key)."""
    return f"upload|cam:{camera_id}|photo:{sha256}"


def receive_upload(
    svc,
    *,
    park_slug: str,
    camera_name: str,
    files: list[tuple[str, bytes]],
    tz: str | None,
    uploader: str,
    uploader_role: str | None = None,
    via: AuditVia = "cli",
) -> list[dict[str, Any]]:
    """Take uploaded photos (and zips of photos) for one camera. Per photo (zip members named
    ``<zip>/<member>``), in order: ``{"file", "status": "stored" | "duplicate" | "rejected" |
    "unsupported", "image_id", "reason"}``; ``stored`` photos are queued on the bulk lane. Raises
    UploadError when the park, the camera or the time zone is unknown; database or storage errors
    propagate (the caller retries: every step is idempotent)."""
    if not uploader:
        raise UploadError("an upload needs the name of the uploader")
    park, camera = _camera(svc, park_slug, camera_name)
    if tz:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise UploadError(f"unknown time zone {tz!r}") from None
    photo_tz = tz or camera.get("effective_timezone") or park.get("timezone")
    settings = svc.settings
    repo = InboundRepository(svc.db)
    upload_id = str(uuid.uuid4())
    received_at = datetime.now(UTC)
    results: list[dict[str, Any]] = []
    for f in _expand(files, settings):
        if f.data is None:
            results.append({"file": f.name, "status": f.status, "image_id": None, "reason": f.reason})
            continue
        results.append(
            _one(svc, repo, park, camera, f, photo_tz, uploader, uploader_role, via, upload_id, received_at)
        )
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    AuditRepository(svc.db).record(
        actor=uploader,
        actor_role=uploader_role,
        via=via,
        action="upload.received",
        park_id=park["id"],
        target=f"camera:{camera['id']}",
        details={"upload_id": upload_id, "camera": camera["name"], "tz": photo_tz, "counts": counts},
    )
    log.info(
        "upload %s for camera %s by %s: %s",
        upload_id,
        camera["name"],
        uploader,
        counts,
        extra={"camera_id": camera["id"], "upload_id": upload_id},
    )
    return results


def _one(
    svc, repo, park, camera, f: _File, tz, uploader, role, via, upload_id, received_at
) -> dict[str, Any]:
    data = f.data
    assert data is not None
    sha = hashlib.sha256(data).hexdigest()
    key = upload_key(camera["id"], sha)
    existing = repo.by_dedupe_key(key)
    if existing is not None:
        return _duplicate(svc, repo, existing, f.name)
    emailed = repo.image_by_hash(camera["id"], sha)
    if emailed is not None:  # the camera emailed this very photo: nothing to store or score again
        why = f"the camera already sent this photo (image {emailed['id']})"
        return {"file": f.name, "status": "duplicate", "image_id": emailed["id"], "reason": why}
    check = inspect_attachment(  # a photo, or a video clip from a camera's SD card (video.py)
        data,
        declared_type=None,
        filename=f.name,
        max_pixels=svc.settings.max_image_pixels,
        video_max_bytes=svc.settings.video_max_bytes,
        tz=tz,
        email_date=None,
        received_at=received_at,
    )
    if check.status != "stored":
        return {"file": f.name, "status": check.status, "image_id": None, "reason": check.reason}
    cid = str(uuid.uuid4())
    name = store_photo(
        svc.storage,
        data,
        check,
        park_slug=park["slug"],
        park_id=park["id"],
        camera_name=camera["name"],
        camera_id=camera["id"],
        tz=tz,
        correlation_id=cid,
        filename=f.name.encode("ascii", "replace").decode()[:200],
        uploader=uploader.encode("ascii", "replace").decode()[:100],
        upload_id=upload_id,
        **check.time_metadata(),
    )
    record = EmailRecord(
        dedupe_key=key,
        mode="upload",
        status="accepted",
        correlation_id=cid,
        sender=uploader[:200],
        subject=f.name[:300],
        park_id=park["id"],
        camera_id=camera["id"],
        size_bytes=len(data),
        attachment_count=1,
        meta={"upload_id": upload_id, "uploader": uploader, "role": role, "via": via, "tz": tz},
    )
    image = ImageRecord(
        attachment_index=1,
        status="stored",
        correlation_id=cid,
        park_id=park["id"],
        camera_id=camera["id"],
        filename=f.name.rsplit("/", 1)[-1][:200],
        content_type=check.content_type,
        blob_name=name,
        proofs=[],
        lane="bulk",
        **check.facts(),
    )
    email_id, created, stored = repo.record(record, [image])
    if not created:  # a concurrent upload of the same photo got there first
        return _duplicate(svc, repo, repo.email(email_id), f.name)
    svc.outbox.flush(email_scope(email_id))
    return {"file": f.name, "status": "stored", "image_id": stored[0] if stored else None, "reason": None}


def _duplicate(svc, repo, existing: dict[str, Any], name: str) -> dict[str, Any]:
    svc.outbox.flush(email_scope(existing["id"]))  # a message an earlier attempt left unsent goes now
    images = repo.images_of(existing["id"])
    image_id = images[0]["id"] if images else None
    return {
        "file": name,
        "status": "duplicate",
        "image_id": image_id,
        "reason": f"already uploaded (image {image_id})",
    }
