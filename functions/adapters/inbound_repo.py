"""SQL of inbound email: inbound_emails and images rows, and the lookups that identify a camera.

Idempotency lives here:
- ``inbound_emails.dedupe_key`` (Message-ID, else sha256 of the raw POST) is unique: recording the same
  email twice inserts nothing (``record`` answers the existing id and ``created=False``); the email row and
  its image rows are written in one transaction, so a crash leaves all or nothing.
- ``images.enqueued_at`` says the process-image message of an image was sent. ``enqueue_pending`` sends the
  messages of the images that have none yet, holding row locks (``FOR UPDATE SKIP LOCKED``) so two
  concurrent deliveries of one email never both send, and commits ``enqueued_at`` only after the queue
  accepted the message. A crash between the two sends the message again on the retry, which process-image
  tolerates (it is idempotent by image id); a message is never missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..db import Database

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
)


@dataclass
class EmailRecord:
    dedupe_key: str
    mode: str
    status: str
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


@dataclass
class ImageRecord:
    attachment_index: int
    status: str
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
    def parks_for_addresses(self, addresses: list[str]) -> list[dict[str, Any]]:
        if not addresses:
            return []
        return self.db.fetchall("SELECT * FROM parks WHERE inbound_address = ANY(%s)", (addresses,))

    def identification_data(self, recipients: list[str], senders: list[str]) -> tuple[list[dict], list[dict]]:
        """In one transaction: the parks reached through ``recipients`` (their inbound addresses), and the
        candidate cameras: those with one of ``senders`` as a sender address and every camera of those parks
        (each with its park's row, for time zone and SPF/DKIM requirements)."""
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM parks WHERE inbound_address = ANY(%s)", (recipients,))
            parks = [dict(r) for r in cur.fetchall()]
            cur.execute(
                """SELECT c.*, p.slug AS park_slug, COALESCE(c.timezone, p.timezone) AS effective_timezone,
                          to_jsonb(p) AS park_row
                   FROM cameras c JOIN parks p ON p.id = c.park_id
                   WHERE c.sender_addresses && %s::text[] OR c.park_id = ANY(%s)
                   ORDER BY c.id""",
                (senders, [p["id"] for p in parks]),
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

    def images_of(self, email_id: int) -> list[dict[str, Any]]:
        return self.db.fetchall(
            "SELECT * FROM images WHERE email_id = %s ORDER BY attachment_index", (email_id,)
        )

    def quarantined(self, limit: int = 200) -> list[dict[str, Any]]:
        return self.db.fetchall(
            """SELECT id, received_at, sender, envelope_from, to_address, subject, reason, attachment_count,
                      size_bytes, raw_blob, correlation_id
               FROM inbound_emails WHERE status = 'quarantined' ORDER BY received_at DESC LIMIT %s""",
            (limit,),
        )

    def record(self, email: EmailRecord, images: list[ImageRecord]) -> tuple[int, bool, list[int]]:
        """Insert the email and its images in one transaction: (id, created, ids of the stored images);
        created is False (and nothing is written) when the email was there."""
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
            stored = self._insert_images(cur, email_id, images)
            if email.camera_id is not None:
                cur.execute(
                    "UPDATE cameras SET last_seen_at = GREATEST(COALESCE(last_seen_at, now()), now()) "
                    "WHERE id = %s",
                    (email.camera_id,),
                )
            return email_id, True, stored

    def release(
        self,
        email_id: int,
        park_id: int,
        camera_id: int,
        images: list[ImageRecord],
        status: str,
        reason: str | None,
        meta: dict,
    ) -> None:
        """A quarantined email processed as ``camera_id``: its images inserted (once), the email updated."""
        with self.db.transaction() as cur:
            cur.execute("SELECT id FROM inbound_emails WHERE id = %s FOR UPDATE", (email_id,))
            self._insert_images(cur, email_id, images)
            cur.execute(
                """UPDATE inbound_emails SET status = %s, reason = %s, park_id = %s, camera_id = %s,
                               released_at = COALESCE(released_at, now()), meta = meta || %s::jsonb
                           WHERE id = %s""",
                (status, reason, park_id, camera_id, json.dumps(meta, default=str), email_id),
            )

    @staticmethod
    def _insert_images(cur, email_id: int, images: list[ImageRecord]) -> list[int]:
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
                stored.append(int(row["id"]))
        return stored

    # -- queue bookkeeping -----------------------------------------------------------------------
    def enqueue_pending(
        self, email_id: int, send: Callable[[dict[str, Any]], str], image_ids: list[int] | None = None
    ) -> int:
        """Send the process-image message of each stored image of the email that has none yet, one image
        per transaction: an outage half-way keeps what was sent, and the retry sends only the rest.
        ``image_ids``: the email's stored images when the caller knows them (saves a query)."""
        if image_ids is None:
            image_ids = [
                r["id"]
                for r in self.db.fetchall(
                    "SELECT id FROM images WHERE email_id = %s AND status = 'stored' AND enqueued_at IS NULL "
                    "ORDER BY attachment_index",
                    (email_id,),
                )
            ]
        sent = 0
        for image_id in image_ids:
            with self.db.transaction() as cur:
                cur.execute(
                    """SELECT id, blob_name, park_id, camera_id, correlation_id FROM images
                               WHERE id = %s AND status = 'stored' AND enqueued_at IS NULL
                               FOR UPDATE SKIP LOCKED""",
                    (image_id,),
                )
                row = cur.fetchone()
                if row is None:  # sent already, or being sent by a concurrent delivery of the same email
                    continue
                message_id = send(dict(row))
                cur.execute(
                    "UPDATE images SET enqueued_at = now(), queue_message_id = %s WHERE id = %s",
                    (message_id, row["id"]),
                )
                sent += 1
        return sent

    def queued_count(self, email_id: int) -> int:
        row = self.db.fetchone(
            "SELECT count(*) AS n FROM images WHERE email_id = %s AND enqueued_at IS NOT NULL", (email_id,)
        )
        return int(row["n"]) if row else 0
