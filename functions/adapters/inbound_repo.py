"""SQL of inbound email: inbound_emails and images rows, and the lookups that identify a camera.

Idempotency lives here:
- ``inbound_emails.dedupe_key`` (Message-ID, else sha256 of the raw POST, plus the authenticated camera(s)
  and the photos' hashes: functions/inbound/ingest.py) is unique: recording the same email twice inserts
  nothing (``record`` answers the existing id and ``created=False``); the email row and
  its image rows are written in one transaction, so a crash leaves all or nothing.
- each stored image of an accepted (or released) email gets its process-image message in the outbox
  (functions/adapters/outbox.py, key ``process-image:<image id>``, scope ``email:<email id>``) in the same
  transaction as its row: the caller flushes the scope after the commit, and a SendGrid retry of the same
  email flushes whatever is still pending. A message is never missing and never sent twice by two
  concurrent deliveries (the flusher locks each row); a crash between the queue's accept and the mark sends
  it again, which process-image tolerates (it is idempotent by image id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import names
from ..db import Database
from ..messages import BulkImage, ProcessImage
from ..statuses import EmailMode, EmailStatus, ImageStatus
from .outbox import Outbox, OutboxMessage

_EMAIL_COLUMNS = (
    "dedupe_key",
    "message_id",
    "mode",
    "sender",
    "envelope_from",
    "to_address",
    "subject",
    "email_date",
    "spf",
    "dkim",
    "park_id",
    "camera_id",
    "status",
    "reason",
    "raw_blob",
    "size_bytes",
    "attachment_count",
    "correlation_id",
    "meta",
    "sender_ip",
    "authenticated_by",
    "proofs",
)
_IMAGE_COLUMNS = (
    "attachment_index",
    "park_id",
    "camera_id",
    "filename",
    "content_type",
    "sha256",
    "blob_name",
    "size_bytes",
    "width",
    "height",
    "taken_at",
    "taken_at_source",
    "gps_latitude",
    "gps_longitude",
    "orientation",
    "status",
    "reason",
    "correlation_id",
    "proofs",
)


@dataclass
class EmailRecord:
    dedupe_key: str
    mode: EmailMode
    status: EmailStatus
    correlation_id: str
    reason: str | None = None
    message_id: str | None = None
    sender: str | None = None
    envelope_from: str | None = None
    to_address: str | None = None
    subject: str | None = None
    email_date: datetime | None = None
    spf: str | None = None
    dkim: str | None = None
    park_id: int | None = None
    camera_id: int | None = None
    raw_blob: str | None = None
    size_bytes: int | None = None
    attachment_count: int = 0
    meta: dict = field(default_factory=dict)
    sender_ip: str | None = None
    authenticated_by: list[str] = field(default_factory=list)
    proofs: list[str] = field(default_factory=list)


@dataclass
class ImageRecord:
    attachment_index: int
    status: ImageStatus
    correlation_id: str
    park_id: int | None = None
    camera_id: int | None = None
    filename: str | None = None
    content_type: str | None = None
    sha256: str | None = None
    blob_name: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    taken_at_source: str | None = None
    gps_latitude: float | None = None
    gps_longitude: float | None = None
    orientation: int | None = None
    reason: str | None = None
    proofs: list[str] = field(default_factory=list)
    # "bulk": an uploaded photo, announced on the bulk lane (BulkImage "upload": functions/inbound/upload.py)
    lane: str = "live"


def _without_nul(value: Any) -> Any:
    """jsonb cannot hold \\u0000 either."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nul(v) for v in value]
    return value


def _value(record: Any, column: str) -> Any:
    value = getattr(record, column)
    if column == "meta":
        return json.dumps(_without_nul(value), default=str)
    if column == "correlation_id":
        return str(value)
    if isinstance(value, str):
        return value.replace("\x00", "")[:10000]  # PostgreSQL text cannot hold NUL
    return value


class InboundRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- identification lookups ------------------------------------------------------------------
    def identification_data(
        self,
        recipients: list[str],
        senders: list[str],
        token_hashes: list[str] = (),
        serials: list[str] = (),
    ) -> tuple[list[dict], list[dict]]:
        """In one transaction: the parks reached through ``recipients`` (their inbound addresses), and the
        candidate cameras: those with one of ``senders`` as a sender address, one of ``token_hashes`` as
        their token's hash or one of ``serials``, and every camera of those parks and of the token cameras'
        parks (each with its park's row, for time zone and requirements)."""
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM parks WHERE inbound_address = ANY(%s)", (recipients,))
            parks = [dict(r) for r in cur.fetchall()]
            cur.execute(
                """SELECT c.*, p.slug AS park_slug, COALESCE(c.timezone, p.timezone) AS effective_timezone,
                          to_jsonb(p) AS park_row
                   FROM cameras c JOIN parks p ON p.id = c.park_id
                   WHERE c.sender_addresses && %(senders)s::text[] OR c.park_id = ANY(%(parks)s)
                      OR c.serials && %(serials)s::text[]
                      OR c.park_id IN (SELECT park_id FROM cameras WHERE token_hash = ANY(%(tokens)s::text[]))
                   ORDER BY c.id""",
                {
                    "senders": list(senders),
                    "parks": [p["id"] for p in parks],
                    "serials": list(serials)[:500],
                    "tokens": list(token_hashes)[:20],
                },
            )
            cameras = [dict(r) for r in cur.fetchall()]
        return parks, cameras

    def park(self, park_id: int) -> dict[str, Any] | None:
        return self.db.fetchone("SELECT * FROM parks WHERE id = %s", (park_id,))

    # -- emails ----------------------------------------------------------------------------------
    def by_dedupe_key(self, key: str) -> dict[str, Any] | None:
        return self.db.fetchone("SELECT * FROM inbound_emails WHERE dedupe_key = %s", (key,))

    def email(self, email_id: int) -> dict[str, Any] | None:
        return self.db.fetchone("SELECT * FROM inbound_emails WHERE id = %s", (email_id,))

    def image_by_hash(self, camera_id: int, sha256: str) -> dict[str, Any] | None:
        """A usable photo of the camera with these bytes (emailed or uploaded), if any: an upload of a photo
        the camera already emailed is a duplicate (functions/inbound/upload.py)."""
        return self.db.fetchone(
            "SELECT id, email_id, status FROM images WHERE camera_id = %s AND sha256 = %s "
            "AND status IN ('stored', 'scored', 'failed') ORDER BY id LIMIT 1",
            (camera_id, sha256),
        )

    def images_of(self, email_id: int) -> list[dict[str, Any]]:
        return self.db.fetchall(
            "SELECT * FROM images WHERE email_id = %s ORDER BY attachment_index", (email_id,)
        )

    def images_with_cameras(self, email_id: int) -> list[dict[str, Any]]:
        """The email's images with their camera's name and park (``trapalert inbound show``)."""
        return self.db.fetchall(
            """SELECT i.*, c.name AS camera_name, p.slug AS park_slug
               FROM images i LEFT JOIN cameras c ON c.id = i.camera_id LEFT JOIN parks p ON p.id = i.park_id
               WHERE i.email_id = %s ORDER BY i.attachment_index""",
            (email_id,),
        )

    def quarantined(self, limit: int = 200) -> list[dict[str, Any]]:
        return self.db.fetchall(
            """SELECT id, received_at, sender, envelope_from, to_address, subject, reason, attachment_count,
                      size_bytes, raw_blob, correlation_id
               FROM inbound_emails WHERE status = 'quarantined' ORDER BY received_at DESC LIMIT %s""",
            (limit,),
        )

    def record(
        self,
        email: EmailRecord,
        images: list[ImageRecord],
        seen_cameras: list[int] = (),
        link_photos: list[dict[str, Any]] = (),
    ) -> tuple[int, bool, list[int]]:
        """Insert the email and its images in one transaction: (id, created, ids of the stored images);
        created is False (and nothing is written) when the email was there. ``seen_cameras``: the cameras
        this email proves alive (authenticated and named by a trusted proof: the caller decides); their
        ``last_seen_at`` moves. No other email touches a camera's health facts. ``link_photos``: photos
        given by link (keyword arguments of link_photos_repo.add_link_photo: camera_id, url, filename,
        taken_at, tz, brand), recorded and announced in the same transaction."""
        with self.db.transaction() as cur:
            cols = ", ".join(_EMAIL_COLUMNS)
            marks = ", ".join(["%s"] * len(_EMAIL_COLUMNS))
            cur.execute(
                f"INSERT INTO inbound_emails ({cols}) VALUES ({marks}) "
                "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
                [_value(email, c) for c in _EMAIL_COLUMNS],
            )
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT id FROM inbound_emails WHERE dedupe_key = %s", (email.dedupe_key,))
                return int(cur.fetchone()["id"]), False, []
            email_id = int(row["id"])
            stored = self._insert_images(cur, email_id, images, announce=email.status == "accepted")
            if link_photos:
                from .link_photos_repo import add_link_photo  # it builds on this module

                for photo in link_photos:
                    stored.append(
                        add_link_photo(cur, email_id=email_id, announce=email.status == "accepted", **photo)
                    )
            if seen_cameras:
                cur.execute(
                    "UPDATE cameras SET last_seen_at = GREATEST(COALESCE(last_seen_at, now()), now()) "
                    "WHERE id = ANY(%s)",
                    (sorted(set(seen_cameras)),),
                )
            return email_id, True, stored

    def release(
        self,
        email_id: int,
        park_id: int,
        camera_id: int,
        images: list[ImageRecord],
        status: EmailStatus,
        reason: str | None,
        meta: dict,
    ) -> None:
        """A quarantined email processed as ``camera_id``: its images inserted (once), the email updated."""
        with self.db.transaction() as cur:
            cur.execute("SELECT id FROM inbound_emails WHERE id = %s FOR UPDATE", (email_id,))
            self._insert_images(cur, email_id, images, announce=True)
            cur.execute(
                """UPDATE inbound_emails SET status = %s, reason = %s, park_id = %s, camera_id = %s,
                               released_at = COALESCE(released_at, now()), meta = meta || %s::jsonb
                           WHERE id = %s""",
                (status, reason, park_id, camera_id, json.dumps(meta, default=str), email_id),
            )

    @staticmethod
    def _insert_images(cur, email_id: int, images: list[ImageRecord], *, announce: bool) -> list[int]:
        """Insert the image rows (once); with ``announce``, each newly stored image's process-image message
        goes into the outbox in the same transaction."""
        cols = ", ".join(("email_id",) + _IMAGE_COLUMNS)
        marks = ", ".join(["%s"] * (len(_IMAGE_COLUMNS) + 1))
        stored = []
        for img in images:
            cur.execute(
                f"INSERT INTO images ({cols}) VALUES ({marks}) "
                "ON CONFLICT (email_id, attachment_index) DO NOTHING RETURNING id",
                [email_id] + [_value(img, c) for c in _IMAGE_COLUMNS],
            )
            row = cur.fetchone()
            if row is not None and img.status == "stored":
                image_id = int(row["id"])
                stored.append(image_id)
                if announce:
                    Outbox.add(cur, process_image_message(email_id, image_id, img))
        return stored


def email_scope(email_id: int) -> str:
    """The outbox scope of an email's process-image messages."""
    return f"email:{email_id}"


def process_image_message(email_id: int, image_id: int, img: ImageRecord) -> OutboxMessage:
    if img.lane == "bulk":  # an uploaded photo: the bulk lane never delays a live camera's alert
        return OutboxMessage(
            queue=names.BULK_IMAGE_QUEUE,
            message=BulkImage(
                image_id=image_id,
                blob_name=img.blob_name,
                park_id=img.park_id,
                camera_id=img.camera_id,
                purpose="upload",
                alert=True,
                correlation_id=img.correlation_id,
            ),
            key=f"bulk:upload:{image_id}",
            scope=email_scope(email_id),
        )
    return OutboxMessage(
        queue=names.PROCESS_IMAGE_QUEUE,
        message=ProcessImage(
            image_id=image_id,
            blob_name=img.blob_name,
            park_id=img.park_id,
            camera_id=img.camera_id,
            correlation_id=img.correlation_id,
        ),
        key=f"process-image:{image_id}",
        scope=email_scope(email_id),
    )
