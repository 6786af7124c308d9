"""SQL of photos given as links (RidgeTec): recorded by process-email, fetched by process-image.

For process-email (functions/inbound/ingest.py), inside the transaction that records the email::

    image_id = add_link_photo(cur, email_id=..., camera_id=..., url=photo.url, filename=photo.filename,
                              taken_at=photo.taken_at, tz=photo.tz, brand=reading.brand)

inserts the image row (status ``linked``, ``source_url``, no blob yet) and, with ``announce=True`` (the
default; pass False for a quarantined email), its process-image message into the outbox (key
``process-image:<image id>``, scope ``email:<email id>``), exactly like an attached photo's: the caller's
flush of the email's scope sends it. Idempotent: the same url of the same email answers the same image id
and adds nothing. Link photos take attachment indexes -1, -2, ... (attachments count from 1).
``taken_at``: aware, or naive local time in ``tz`` (else the camera's, else the park's zone); None: the
email's Date, else its receipt.

For process-image (functions/inbound/links.py): ``LinkPhotosRepository(db)`` ``.link_photo(id)``,
``.store_fetched(...)``, ``.mark_failed(id, reason)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..db import Database
from .inbound_repo import ImageRecord, process_image_message
from .outbox import Outbox


def add_link_photo(
    cur,
    *,
    email_id: int,
    camera_id: int,
    url: str,
    filename: str | None = None,
    taken_at: datetime | None = None,
    tz: str | None = None,
    brand: str | None = None,
    announce: bool = True,
) -> int:
    """Record one photo given as a link (see the module docstring); the image id."""
    cur.execute("SELECT id FROM images WHERE email_id = %s AND source_url = %s", (email_id, url))
    row = cur.fetchone()
    if row is not None:
        return int(row["id"])
    naive = taken_at.replace(tzinfo=None) if taken_at is not None else None
    aware = taken_at if taken_at is not None and taken_at.tzinfo is not None else None
    cur.execute(
        """INSERT INTO images (email_id, attachment_index, park_id, camera_id, filename, source_url,
                               source_brand, taken_at, taken_at_source, status, correlation_id)
           SELECT e.id,
                  -1 - (SELECT count(*) FROM images x WHERE x.email_id = e.id AND x.attachment_index < 0),
                  c.park_id, c.id, %(filename)s, %(url)s, %(brand)s,
                  COALESCE(%(aware)s::timestamptz,
                           %(naive)s::timestamp AT TIME ZONE COALESCE(%(tz)s, c.timezone, p.timezone, 'UTC'),
                           e.email_date, e.received_at),
                  CASE WHEN %(naive)s::timestamp IS NOT NULL THEN 'vendor'
                       WHEN e.email_date IS NOT NULL THEN 'email_date' ELSE 'received' END,
                  'linked', e.correlation_id
           FROM inbound_emails e, cameras c JOIN parks p ON p.id = c.park_id
           WHERE e.id = %(email_id)s AND c.id = %(camera_id)s
           RETURNING id, park_id, camera_id, correlation_id""",
        {
            "filename": (filename or "")[:200] or None,
            "url": url,
            "brand": brand,
            "aware": aware,
            "naive": naive,
            "tz": tz,
            "email_id": email_id,
            "camera_id": camera_id,
        },
    )
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"email {email_id} or camera {camera_id} does not exist")
    image_id = int(row["id"])
    if announce:
        record = ImageRecord(
            attachment_index=0,
            status="linked",
            correlation_id=str(row["correlation_id"]),
            park_id=row["park_id"],
            camera_id=row["camera_id"],
            blob_name="",
        )
        Outbox.add(cur, process_image_message(email_id, image_id, record))
    return image_id


_FETCHED_COLUMNS = frozenset(
    {
        "status",
        "reason",
        "sha256",
        "blob_name",
        "size_bytes",
        "content_type",
        "width",
        "height",
        "taken_at",
        "taken_at_source",
        "gps_latitude",
        "gps_longitude",
        "orientation",
    }
)


class LinkPhotosRepository:
    def __init__(self, db: Database):
        self.db = db

    def link_photo(self, image_id: int) -> dict[str, Any] | None:
        """The image row with what fetching and storing it needs (park slug, camera name, time zone)."""
        return self.db.fetchone(
            """SELECT i.id, i.status, i.source_url, i.source_brand, i.filename, i.email_id, i.park_id,
                      i.camera_id, i.taken_at, i.taken_at_source, i.correlation_id, p.slug AS park_slug,
                      c.name AS camera_name, COALESCE(c.timezone, p.timezone, 'UTC') AS tz
               FROM images i JOIN cameras c ON c.id = i.camera_id JOIN parks p ON p.id = c.park_id
               WHERE i.id = %s""",
            (image_id,),
        )

    def store_fetched(self, image_id: int, fields: dict[str, Any]) -> tuple[str, str | None]:
        """The fetched photo's facts (status 'stored', sha256, blob_name, size, dimensions, time...), once:
        (status, reason) as recorded. The same photo already stored for the camera (same sha256: a re-sent
        email, two links to one photo) is recorded 'rejected' with reason ``duplicate_photo``, not scored
        twice."""
        with self.db.transaction() as cur:
            cur.execute("SELECT status, reason, camera_id FROM images WHERE id = %s FOR UPDATE", (image_id,))
            row = cur.fetchone()
            if row is None:
                raise LookupError(f"image {image_id} does not exist")
            if row["status"] != "linked":
                return row["status"], row["reason"]
            status, reason = fields.get("status", "stored"), fields.get("reason")
            if status == "stored":
                cur.execute(
                    """SELECT id FROM images WHERE camera_id = %s AND sha256 = %s AND id <> %s
                              AND status IN ('stored', 'scored') ORDER BY id LIMIT 1""",
                    (row["camera_id"], fields["sha256"], image_id),
                )
                same = cur.fetchone()
                if same is not None:
                    status, reason = "rejected", f"duplicate_photo: same photo as image {same['id']}"
            values = {**fields, "status": status, "reason": reason}
            unknown = set(values) - _FETCHED_COLUMNS
            if unknown:
                raise ValueError(f"not columns of a fetched photo: {sorted(unknown)}")
            cols = sorted(values)
            cur.execute(
                "UPDATE images SET "
                + ", ".join(f"{c} = %({c})s" for c in cols)
                + ", fetched_at = now() WHERE id = %(image_id)s",
                {**values, "image_id": image_id},
            )
            return status, reason

    def mark_failed(self, image_id: int, reason: str) -> bool:
        """The link cannot be fetched, for good: 'failed' with ``reason``; True if recorded now."""
        return (
            self.db.execute(
                "UPDATE images SET status = 'failed', reason = %s, fetched_at = now() "
                "WHERE id = %s AND status = 'linked'",
                (reason[:2000], image_id),
            )
            > 0
        )
