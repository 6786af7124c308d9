"""Rows and blobs process-email would have written, for the process-image tests."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

from functions import names
from functions.adapters.storage import Storage
from functions.db import Database
from functions.messages import ProcessImage


def make_park(db: Database, slug: str = "kruger", tz: str = "Africa/Johannesburg") -> int:
    return db.fetchone(
        "INSERT INTO parks (slug, name, timezone) VALUES (%s, %s, %s) RETURNING id", (slug, slug.title(), tz)
    )["id"]


def make_camera(db: Database, park_id: int, name: str, tz: str | None = None) -> int:
    return db.fetchone(
        "INSERT INTO cameras (park_id, name, timezone) VALUES (%s, %s, %s) RETURNING id", (park_id, name, tz)
    )["id"]


def set_rules(db: Database, park_id: int, rules: dict, camera_id: int | None = None) -> None:
    db.execute(
        """INSERT INTO alert_rules (park_id, camera_id, rules) VALUES (%s, %s, %s::jsonb)
                  ON CONFLICT (park_id, COALESCE(camera_id, 0)) DO UPDATE SET rules = EXCLUDED.rules""",
        (park_id, camera_id, json.dumps(rules)),
    )


def add_image(
    db: Database, storage: Storage, park_id: int, camera_id: int, jpeg: bytes, taken_at: datetime
) -> ProcessImage:
    """An accepted email with one stored image (blob + rows), and the message process-email would send."""
    cid = uuid.uuid4()
    sha = hashlib.sha256(jpeg + cid.bytes).hexdigest()
    email_id = db.fetchone(
        """INSERT INTO inbound_emails (dedupe_key, mode, status, park_id, camera_id, correlation_id)
           VALUES (%s, 'parsed', 'accepted', %s, %s, %s) RETURNING id""",
        (f"test-{cid}", park_id, camera_id, str(cid)),
    )["id"]
    blob = f"{park_id}/{camera_id}/{taken_at:%Y-%m-%d}/{sha}.jpg"
    storage.put_blob(names.IMAGES_CONTAINER, blob, jpeg, content_type="image/jpeg")
    image_id = db.fetchone(
        """INSERT INTO images (email_id, attachment_index, park_id, camera_id, filename, content_type, sha256,
               blob_name, size_bytes, taken_at, taken_at_source, status, correlation_id)
           VALUES (%s, 0, %s, %s, %s, 'image/jpeg', %s, %s, %s, %s, 'exif', 'stored', %s) RETURNING id""",
        (email_id, park_id, camera_id, f"IMG_{sha[:6]}.JPG", sha, blob, len(jpeg), taken_at, str(cid)),
    )["id"]
    return ProcessImage(
        image_id=image_id, blob_name=blob, park_id=park_id, camera_id=camera_id, correlation_id=cid
    )


def send_alert_messages(storage: Storage) -> list[dict]:
    """The SendAlert messages on the send-alert queue (peeked, left in place)."""
    return [
        json.loads(m.content) for m in storage.queue(names.SEND_ALERT_QUEUE).peek_messages(max_messages=32)
    ]


def alerts(db: Database) -> list[dict]:
    return db.fetchall("SELECT * FROM alerts ORDER BY id")


def model_images(scoring_url: str) -> int:
    """How many images the scoring service's model has seen (its /v1/model stats)."""
    import httpx

    return int(httpx.get(f"{scoring_url}/v1/model", timeout=5).json()["stats"]["images"])
