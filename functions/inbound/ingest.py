"""The orchestration of one inbound email: record, store, enqueue, idempotently. Used by the webhook
(functions/handlers/process_email.py) and by `trapalert inbound release`.

Order of work, and why nothing is lost or doubled:
1. a body over MAX_EMAIL_BYTES, or a POST that is not a SendGrid form, is recorded ``rejected`` (keyed by the
   sha256 of the body) and answered 200;
2. the brand plugin reads the email (functions/inbound/brands/), and identify.py decides whether it is
   authentic and which camera each photo is, by the proofs the park trusts; anything else is
   ``quarantined`` with the reason;
3. the dedupe key (Message-ID, else sha256 of the body; plus the authenticated camera(s) and the photos'
   hashes) is looked up: a known email changes nothing, except that process-image messages not yet sent (an
   earlier attempt crashed after the rows) are sent now. A repeated Message-ID with other photos, or from a
   sender that is not the camera (a forged Message-ID), is another email: it cannot hide the genuine one;
4. the raw POST goes to ``raw-emails/<sha256>.form`` (deterministic name, written once);
5. each attachment is checked (images.py); usable photos go to
   ``images/<park>/<camera>/<day>/<sha256>.<ext>`` of the photo's own camera;
6. the email row and its image rows are inserted in one transaction (ON CONFLICT on the dedupe key: a
   concurrent delivery of the same email finds the row and goes to step 3's path);
7. one process-image message per stored image, written to the outbox in step 6's transaction and flushed
   to the queue now (functions/adapters/outbox.py).
Only then is 200 answered. Database or storage unreachable anywhere -> the exception reaches the handler,
which answers 503, and SendGrid's retry replays these steps, each of which is idempotent.

Health facts: only an email that is authentic and names its camera(s) by a trusted proof moves their
``last_seen_at``, and only an accepted (or released) email's ``meta`` carries battery/SD/temperature facts
(functions/adapters/health_repo.py reads those). Quarantined mail never touches either.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from .. import names
from ..adapters.inbound_repo import EmailRecord, ImageRecord, InboundRepository, email_scope
from ..adapters.parks import ParkRepository, RegistryError, token_hash
from ..db import DatabaseUnavailable
from ..statuses import EmailOutcome
from . import reasons
from .brands import BrandReading, parse_status, read_email
from .identify import (
    Claims,
    Identification,
    PhotoClaim,
    identify,
    load_patterns,
    normalize_serial,
    recipients_of,
    senders_of,
)
from .images import store_photo
from .parse_sendgrid import InboundEmail, parse_request
from .reasons import Rejected, with_detail
from .video import inspect_attachment

log = logging.getLogger(__name__)

# A DatabaseUnavailable this soon means a dead pooled connection, not an outage: worth one fresh try.
FRESH_TRY_WITHIN_S = 1.0


@dataclass
class Outcome:
    status: EmailOutcome
    correlation_id: str
    email_id: int | None = None
    reason: str | None = None
    images_stored: int = 0
    queued: int = 0
    images: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "email_id": self.email_id,
            "reason": self.reason,
            "images_stored": self.images_stored,
            "queued": self.queued,
            "correlation_id": self.correlation_id,
            "images": self.images,
        }


@lru_cache(maxsize=4)
def _patterns(extra: str | None):
    return load_patterns(extra)


def receive(body: bytes, headers: Mapping[str, str], svc, *, correlation_id: str | None = None) -> Outcome:
    """Process one SendGrid POST (already authenticated). Raises DatabaseUnavailable / StorageUnavailable /
    azure errors on transient failures; everything about the email itself ends in an Outcome."""
    cid = correlation_id or str(uuid.uuid4())
    started = time.monotonic()
    try:
        return _receive(body, headers, svc, cid)
    except DatabaseUnavailable:
        # A pooled connection may have died with a database restart: one fresh try before answering 5xx.
        # Not after the pool already waited out a failover (DATABASE_FAILOVER_WAIT_S): a second wait would
        # keep SendGrid's request open for twice as long, and its own retry is the mechanism for longer
        # outages (the webhook answers 503 promptly).
        if time.monotonic() - started > FRESH_TRY_WITHIN_S:
            raise
        log.warning("database unavailable; trying once more")
        return _receive(body, headers, svc, cid)


def _receive(body: bytes, headers: Mapping[str, str], svc, cid: str) -> Outcome:
    settings = svc.settings
    repo = InboundRepository(svc.db)
    received_at = datetime.now(UTC)
    sha = hashlib.sha256(body).hexdigest()
    content_type = headers.get("content-type") or headers.get("Content-Type")

    if len(body) > settings.max_email_bytes:
        return _record_unparsed(
            repo,
            svc,
            body,
            sha,
            content_type,
            cid,
            keep_raw=False,
            reason=with_detail(reasons.TOO_LARGE, f"{len(body)} bytes, limit {settings.max_email_bytes}"),
        )
    try:
        email = parse_request(
            body, content_type, max_parts=settings.max_attachments * 2 + 100, settings=settings
        )
    except Rejected as exc:
        return _record_unparsed(repo, svc, body, sha, content_type, cid, keep_raw=True, reason=exc.reason)

    reading = _read(email)
    claims = claims_of(email, reading)
    bases, tags = recipients_of(email)
    token_hashes = {token_hash(t) for t in tags[:20]}
    serials = sorted(
        {*claims.serials, *(normalize_serial(p.serial) for p in claims.photos if p.serial)} - {""}
    )
    parks, cameras = repo.identification_data(bases, senders_of(email), sorted(token_hashes), serials)
    ident = identify(email, claims, parks, cameras, _patterns(settings.inbound_camera_patterns), token_hashes)
    _check_cameras(ident)

    key = dedupe_key(email, sha, ident)
    existing = repo.by_dedupe_key(key)
    if existing is not None:
        return _duplicate(repo, svc, existing)

    raw_blob = _store_raw(svc, body, sha, content_type, cid, received_at)
    record = _email_record(email, key, cid, raw_blob, len(body), content_type)
    _redact_tokens(record, [t for t in tags if token_hash(t) in {c.get("token_hash") for c in cameras}])
    images: list[ImageRecord] = []
    record.authenticated_by = list(ident.authenticated_by)
    record.meta.update(
        {
            "brand": ident.brand,
            "vendor_shared": reading.vendor_shared,
            "ids": ident.ids[:10],
            "authentication": ident.auth_detail,
        }
    )
    if reading.notes:
        record.meta["brand_notes"] = reading.notes[:10]
    if ident.camera is not None:
        record.camera_id, record.park_id = ident.camera["id"], ident.camera["park_id"]
    elif ident.cameras:
        record.park_id = ident.cameras[0]["park_id"]
    elif len(parks) == 1:
        record.park_id = parks[0]["id"]

    seen: list[int] = []
    links: list[dict[str, Any]] = []
    if len(email.attachments) > settings.max_attachments:
        record.status, record.reason = (
            "rejected",
            with_detail(
                reasons.TOO_MANY_ATTACHMENTS,
                f"{len(email.attachments)} attachments, limit {settings.max_attachments}",
            ),
        )
    elif ident.quarantine_reason:
        record.status, record.reason = "quarantined", ident.quarantine_reason
    else:
        record.proofs = list(ident.proofs)
        seen = [c["id"] for c in ident.cameras]  # authentic and proven: the camera(s) are alive
        images = process_images(email, _camera_for(ident), svc, cid, received_at)
        links = _link_photos(reading, ident)  # recorded with the email; process-image fetches them
        record.status, record.reason = _email_status(email, images)
        if links and record.status == "rejected" and not any(i.status == "stored" for i in images):
            record.status, record.reason = "accepted", None
        if record.status == "accepted":
            # health facts only from accepted mail: the brand's reading, else the generic status line
            facts = parse_status(email.subject or "", email.text or "")
            facts.update(reading.status())
            record.meta.update(facts)

    email_id, created, _ = repo.record(record, images, seen, links)
    if not created:  # a concurrent delivery of the same email got there first
        return _duplicate(repo, svc, repo.email(email_id))
    queued = svc.outbox.flush(email_scope(email_id)) if record.status == "accepted" else 0
    outcome = Outcome(
        record.status,
        cid,
        email_id,
        record.reason,
        sum(1 for i in images if i.status == "stored"),
        queued,
        [
            {"index": i.attachment_index, "status": i.status, "reason": i.reason, "blob_name": i.blob_name}
            for i in images
        ],
    )
    log.info(
        "inbound email %s: %s",
        email_id,
        record.status,
        extra={
            "email_id": email_id,
            "status": record.status,
            "reason": record.reason,
            "camera_id": record.camera_id,
            "proofs": record.proofs,
            "authenticated_by": record.authenticated_by,
            "images_stored": outcome.images_stored,
            "queued": queued,
        },
    )
    return outcome


# ------------------------------------------------------------------------------------------ helpers
def _email_record(
    email: InboundEmail, key: str, cid: str, raw_blob: str | None, size: int, content_type: str | None
) -> EmailRecord:
    return EmailRecord(
        dedupe_key=key,
        mode=email.mode,
        status="accepted",
        correlation_id=cid,
        message_id=email.message_id,
        sender=email.sender,
        envelope_from=email.envelope_from,
        to_address=email.to_field,
        subject=email.subject[:1000],
        email_date=email.date,
        spf=email.spf,
        dkim=email.dkim,
        raw_blob=raw_blob,
        size_bytes=size,
        attachment_count=len(email.attachments),
        sender_ip=email.sender_ip,
        meta={
            "content_type": content_type,
            "recipients": email.recipients[:20],
            "defects": email.defects[:20],
        },
    )


def _record_unparsed(
    repo: InboundRepository,
    svc,
    body: bytes,
    sha: str,
    content_type: str | None,
    cid: str,
    *,
    keep_raw: bool,
    reason: str,
) -> Outcome:
    key = f"sha256:{sha}"
    existing = repo.by_dedupe_key(key)
    if existing is not None:
        return _duplicate(repo, svc, existing)
    raw_blob = _store_raw(svc, body, sha, content_type, cid, datetime.now(UTC)) if keep_raw else None
    record = EmailRecord(
        dedupe_key=key,
        mode="unknown",
        status="rejected",
        reason=reason,
        correlation_id=cid,
        raw_blob=raw_blob,
        size_bytes=len(body),
        meta={"content_type": (content_type or "")[:200]},
    )
    email_id, _, _ = repo.record(record, [])
    log.warning("inbound POST rejected: %s", reason, extra={"email_id": email_id, "reason": reason})
    return Outcome("rejected", cid, email_id, reason)


def _duplicate(repo: InboundRepository, svc, existing: dict[str, Any]) -> Outcome:
    queued = 0
    if existing["status"] in ("accepted", "released"):
        queued = svc.outbox.flush(email_scope(existing["id"]))
    log.info(
        "inbound email %s: duplicate delivery (%s); %d missing messages sent",
        existing["id"],
        existing["status"],
        queued,
        extra={"email_id": existing["id"], "queued": queued},
    )
    return Outcome(
        "duplicate", str(existing["correlation_id"]), existing["id"], existing.get("reason"), 0, queued
    )


def _store_raw(svc, body: bytes, sha: str, content_type: str | None, cid: str, received_at: datetime) -> str:
    name = f"{sha}.form"
    # printable ASCII only: a control character in a blob header makes Azure answer 400 (a 503, forever)
    safe_type = re.sub(r"[^\x20-\x7e]", "", content_type or "")[:200] or "application/octet-stream"
    svc.storage.put_blob(
        names.RAW_EMAILS_CONTAINER,
        name,
        body,
        content_type=safe_type,
        metadata={"correlation_id": cid, "received_at": received_at.isoformat()},
    )
    return name


def _read(email: InboundEmail) -> BrandReading:
    """The brand plugin's reading; a bug there must not turn the email into a 500 that SendGrid retries for
    three days: the email is then identified without it (every attachment a photo of the email's camera)."""
    try:
        return read_email(email)
    except Exception as exc:  # noqa: BLE001
        log.error("camera brands could not read the email: %s: %s", type(exc).__name__, exc)
        return BrandReading(brand="unreadable", notes=[f"brand reading failed: {type(exc).__name__}"])


def claims_of(email: InboundEmail, reading: BrandReading) -> Claims:
    """What the brand plugin read, as identify.py's claims; every attachment is a photo to attribute."""
    photos: list[PhotoClaim] = []
    covered: set[int] = set()
    for ref in reading.photos:
        key = ref.attachment_index if ref.attachment_index is not None else ref.url
        if key is None:
            continue
        if ref.attachment_index is not None:
            covered.add(ref.attachment_index)
        photos.append(PhotoClaim(key, ref.camera_id, ref.serial))
    photos += [PhotoClaim(a.index) for a in email.attachments if a.index not in covered]
    serials = [normalize_serial(reading.serial)] if reading.serial else []
    return Claims(
        brand=reading.brand,
        vendor_shared=bool(reading.vendor_shared),
        camera_id=reading.camera_id,
        serials=[s for s in dict.fromkeys(serials) if s],
        photos=photos,
    )


def _redact_tokens(record: EmailRecord, tokens: list[str]) -> None:
    """Camera tokens are secrets: the recorded addresses say ``+<token>`` instead (the raw POST in Blob
    Storage keeps the email as received)."""
    for token in tokens:
        rx = re.compile(r"\+" + re.escape(token) + "@", re.IGNORECASE)
        record.to_address = rx.sub("+<token>@", record.to_address or "") or record.to_address
        record.meta["recipients"] = [rx.sub("+<token>@", r) for r in record.meta.get("recipients") or []]


def _link_photos(reading: BrandReading, ident: Identification) -> list[dict[str, Any]]:
    """The photos given by link, each with its camera (functions/adapters/link_photos_repo.py)."""
    out = []
    for ref in reading.photos:
        if ref.attachment_index is not None or not ref.url:
            continue
        camera = ident.camera_of(ref.url).camera
        if camera is None:  # identify.py quarantines an email with an unattributed photo
            raise ValueError(f"photo {ref.url} has no camera")
        out.append(
            {
                "camera_id": camera["id"],
                "url": ref.url,
                "filename": ref.filename,
                "taken_at": ref.taken_at,
                "tz": ref.tz,
                "brand": reading.brand,
            }
        )
    return out


def _check_cameras(ident: Identification) -> None:
    """A camera marked inactive receives nothing (its mail is quarantined for a person to look at)."""
    if ident.quarantine_reason:
        return
    for camera in ident.cameras:
        if camera.get("active") is False:
            ident.quarantine_reason = with_detail(
                reasons.CAMERA_INACTIVE, f"camera {camera.get('name')} is inactive"
            )
            return


def dedupe_key(email: InboundEmail, body_sha: str, ident: Identification) -> str:
    """Message-ID (else the body's sha256) + the authenticated camera(s) + the photos' hashes.

    A SendGrid retry of the same email gives the same key. Another email with the same Message-ID, whether
    it carries other photos or comes from a sender that is not the camera (``cam:-``: not authenticated or
    not proven), gets another key: a forged Message-ID cannot hide the camera's genuine email."""
    base = f"mid:{email.message_id[:400]}" if email.message_id else f"sha256:{body_sha}"
    proven = ident.quarantine_reason is None and ident.cameras
    cams = ",".join(str(i) for i in sorted(c["id"] for c in ident.cameras)) if proven else "-"
    hashes = sorted(hashlib.sha256(a.data).hexdigest() for a in email.attachments)
    hashes += sorted(str(k) for k in ident.photos if isinstance(k, str))  # photos given by link
    photos = hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:32] if hashes else "none"
    return f"{base}|cam:{cams}|photos:{photos}"


CameraFor = Callable[[int], tuple[dict | None, dict | None, list[str]]]


def _camera_for(ident: Identification) -> CameraFor:
    def camera_for(index: int) -> tuple[dict | None, dict | None, list[str]]:
        photo = ident.camera_of(index)
        camera = photo.camera
        park = (camera or {}).get("park_row") or ident.park
        return camera, park, list(photo.proofs)

    return camera_for


def _email_status(email: InboundEmail, images: list[ImageRecord]) -> tuple[str, str | None]:
    if any(i.status == "stored" for i in images):
        return "accepted", None
    if not images or all((i.reason or "").startswith(reasons.NOT_AN_IMAGE) for i in images):
        return "rejected", with_detail(reasons.NO_IMAGES, f"{len(images)} attachments, none a photo")
    why = "; ".join(f"#{i.attachment_index} {i.reason}" for i in images)
    return "rejected", with_detail(reasons.NO_USABLE_IMAGES, why)


def process_images(
    email: InboundEmail, camera_for: CameraFor, svc, cid: str, received_at: datetime
) -> list[ImageRecord]:
    """Check every attachment as a photo of its camera (``camera_for(index)``: camera, park, proofs); store
    the usable ones in Blob Storage under that camera."""
    out = []
    for att in email.attachments:
        camera, park, proofs = camera_for(att.index)
        if camera is None or park is None:  # identify.py attributes every attachment of an accepted email
            raise ValueError(f"attachment {att.index} has no camera")
        tz = camera.get("effective_timezone") or camera.get("timezone") or park.get("timezone")
        check = inspect_attachment(  # a photo, or a video clip (video.py)
            att.data,
            declared_type=att.content_type,
            filename=att.filename,
            max_pixels=svc.settings.max_image_pixels,
            video_max_bytes=svc.settings.video_max_bytes,
            tz=tz,
            email_date=email.date,
            received_at=received_at,
        )
        reason, name = check.reason, None
        if check.status == "stored":
            name = store_photo(
                svc.storage,
                att.data,
                check,
                park_slug=park["slug"],
                park_id=park["id"],
                camera_name=camera["name"],
                camera_id=camera["id"],
                tz=tz,
                correlation_id=cid,
                filename=att.filename or "",
                **check.time_metadata(),
            )
            if att.filename_changed and att.original_filename:
                reason = with_detail(
                    reasons.FILENAME_SANITIZED, f"{att.original_filename!r} -> {att.filename!r}"
                )
        out.append(
            ImageRecord(
                attachment_index=att.index,
                status=check.status,
                correlation_id=cid,
                park_id=park["id"],
                camera_id=camera["id"],
                filename=att.filename,
                content_type=check.content_type or att.content_type,
                blob_name=name,
                reason=reason,
                proofs=proofs,
                **check.facts(),
            )
        )
    return out


# ------------------------------------------------------------------------------------------ release
class ReleaseError(ValueError):
    """The email cannot be released as asked; the message says why."""


def release(email_id: int, camera_ref: str, park_ref: str | None, svc) -> Outcome:
    """Process a quarantined email's kept raw POST as ``camera_ref`` (name, alias or id; ``park_ref`` slug or
    id narrows it). Idempotent: a second release stores and enqueues nothing new."""
    repo = InboundRepository(svc.db)
    row = repo.email(email_id)
    if row is None:
        raise ReleaseError(f"no inbound email {email_id}")
    if row["status"] not in ("quarantined", "released"):
        raise ReleaseError(f"email {email_id} is {row['status']}, not quarantined")
    if not row["raw_blob"]:
        raise ReleaseError(f"email {email_id} has no kept raw email")
    camera = _resolve_camera(svc, camera_ref, park_ref)
    if row["status"] == "released" and row["camera_id"] not in (None, camera["id"]):
        raise ReleaseError(f"email {email_id} was already released as camera {row['camera_id']}")
    parks = ParkRepository(svc.db)
    park = parks.park(camera["park_id"])
    body = svc.storage.get_blob(names.RAW_EMAILS_CONTAINER, row["raw_blob"])
    email = parse_request(
        body, (row["meta"] or {}).get("content_type"), max_parts=svc.settings.max_attachments * 2 + 100
    )
    cid = str(row["correlation_id"])
    images = process_images(email, lambda _i: (camera, park, []), svc, cid, row["received_at"])
    status, reason = _email_status(email, images)
    reason = reason if status != "accepted" else None
    repo.release(
        email_id,
        park["id"],
        camera["id"],
        images,
        "released",
        reason,
        {"released_as": camera["name"], "quarantine_reason": row["reason"]}
        if row["status"] == "quarantined"
        else {},
    )
    queued = svc.outbox.flush(email_scope(email_id))
    stored = [i for i in repo.images_of(email_id) if i["status"] == "stored"]
    log.info(
        "inbound email %s released as camera %s",
        email_id,
        camera["name"],
        extra={"email_id": email_id, "camera_id": camera["id"], "queued": queued},
    )
    return Outcome(
        "released",
        cid,
        email_id,
        reason,
        len(stored),
        queued,
        [
            {"index": i.attachment_index, "status": i.status, "reason": i.reason, "blob_name": i.blob_name}
            for i in images
        ],
    )


def _resolve_camera(svc, camera_ref: str, park_ref: str | None) -> dict[str, Any]:
    parks = ParkRepository(svc.db)
    try:
        park = parks.park(park_ref) if park_ref else None
    except RegistryError as exc:
        raise ReleaseError(str(exc)) from None
    rows = parks.cameras_named(camera_ref, park["slug"] if park is not None else None, or_id=True)
    if not rows:
        raise ReleaseError(f"no camera {camera_ref!r}" + (f" in park {park_ref}" if park_ref else ""))
    if len(rows) > 1:
        raise ReleaseError(
            f"camera {camera_ref!r} is ambiguous (parks {', '.join(r['park_slug'] for r in rows)}); "
            "name the park with --park"
        )
    return rows[0]
