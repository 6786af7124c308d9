"""Small helpers that create what process-email and process-image would have stored: a park, a camera, an
email, an image (row + blob), its detections and an alert; and channels pointing at the local fakes."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from functions import names
from functions.adapters.storage import Storage
from functions.db import Database

T0 = datetime(2026, 11, 20, 2, 14, 5, tzinfo=UTC)
ER_TOKEN = "er-test-token"
CMORE_USER, CMORE_PASSWORD = "ranger", "cmore-pw"
SG_KEY = "SG.test-key"
SECRET_ENV = {
    "CHANNEL_SECRET_TEST_ER_TOKEN": ER_TOKEN,
    "CHANNEL_SECRET_TEST_CMORE_PASSWORD": CMORE_PASSWORD,
    "CHANNEL_SECRET_TEST_SG_KEY": SG_KEY,
}


def make_jpeg(width: int = 640, height: int = 480, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    base = np.linspace(30, 200, width, dtype=np.float32)[None, :].repeat(height, 0)
    img = np.clip(base + rng.normal(0, 8, (height, width)), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.merge([img, img, img]))
    assert ok
    return buf.tobytes()


def add_park(db: Database, slug: str = "kruger-south", name: str = "Kruger South") -> int:
    return db.fetchone(
        "INSERT INTO parks (slug, name, timezone) VALUES (%s, %s, 'Africa/Johannesburg') RETURNING id",
        (slug, name),
    )["id"]


def add_camera(
    db: Database,
    park_id: int,
    name: str = "CT-07 Sabie drift",
    zone: str | None = "north",
    latitude: float | None = -25.1234,
    longitude: float | None = 31.9123,
) -> int:
    return db.fetchone(
        "INSERT INTO cameras (park_id, name, zone, latitude, longitude, sender_addresses) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (park_id, name, zone, latitude, longitude, [f"cam{uuid.uuid4().hex[:6]}@example.org"]),
    )["id"]


def add_image(
    db: Database,
    storage: Storage,
    park_id: int,
    camera_id: int,
    *,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    detections: list[tuple[str, float, tuple[float, float, float, float]]] | None = None,
) -> int:
    """An accepted email with one scored image (blob stored) and its detections; returns the image id."""
    jpeg = make_jpeg(*size, seed=seed)
    sha = hashlib.sha256(jpeg + uuid.uuid4().bytes).hexdigest()
    blob = f"p{park_id}/c{camera_id}/2026-11-20/{sha}.jpg"
    storage.put_blob(names.IMAGES_CONTAINER, blob, jpeg, content_type="image/jpeg")
    cid = str(uuid.uuid4())
    email_id = db.fetchone(
        "INSERT INTO inbound_emails (dedupe_key, mode, park_id, camera_id, status, correlation_id) "
        "VALUES (%s, 'parsed', %s, %s, 'accepted', %s) RETURNING id",
        (sha, park_id, camera_id, cid),
    )["id"]
    image_id = db.fetchone(
        "INSERT INTO images (email_id, attachment_index, park_id, camera_id, filename, content_type, sha256, "
        "blob_name, status, correlation_id, taken_at) "
        "VALUES (%s, 1, %s, %s, 'IMG.JPG', 'image/jpeg', %s, %s, "
        "'scored', %s, %s) RETURNING id",
        (email_id, park_id, camera_id, sha, blob, cid, T0),
    )["id"]
    for category, conf, bbox in detections if detections is not None else [("2", 0.93, (0.4, 0.3, 0.2, 0.5))]:
        db.execute(
            "INSERT INTO detections (image_id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (image_id, category, conf, *bbox),
        )
    return image_id


def add_alert(
    db: Database,
    park_id: int,
    camera_id: int,
    image_id: int | None,
    *,
    categories=("person",),
    max_conf: float = 0.93,
    image_count: int = 1,
) -> int:
    return db.fetchone(
        "INSERT INTO alerts (park_id, camera_id, categories, max_conf, mean_conf, image_count, "
        "best_image_id, started_at, last_image_at, version, correlation_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s) "
        "RETURNING id",
        (
            park_id,
            camera_id,
            list(categories),
            max_conf,
            max_conf,
            image_count,
            image_id,
            T0,
            T0,
            str(uuid.uuid4()),
        ),
    )["id"]


def update_alert(
    db: Database,
    alert_id: int,
    image_id: int,
    *,
    image_count: int,
    categories=("person",),
    max_conf: float = 0.95,
) -> int:
    """What process-image does for a later photo of the same burst: a new best image, version + 1."""
    return db.fetchone(
        "UPDATE alerts SET best_image_id = %s, image_count = %s, categories = %s, max_conf = %s, "
        "last_image_at = last_image_at + %s, version = version + 1, updated_at = now() WHERE id = %s "
        "RETURNING version",
        (
            image_id,
            image_count,
            list(categories),
            max_conf,
            timedelta(seconds=2 * (image_count - 1)),
            alert_id,
        ),
    )["version"]


def add_channel(
    db: Database,
    park_id: int,
    name: str,
    kind: str,
    config: dict,
    *,
    zone: str | None = None,
    purpose: str = "alerts",
    enabled: bool = True,
) -> int:
    return db.fetchone(
        "INSERT INTO channels (park_id, name, kind, purpose, zone, config, enabled) "
        "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) RETURNING id",
        (park_id, name, kind, purpose, zone, json.dumps(config), enabled),
    )["id"]


# the local stand-ins answer plain http on loopback: configs that point at them say so
# (functions/notify/safety.py refuses both otherwise)
LOCAL = {"allow_http": True, "allow_private_network": True}


def er_config(er) -> dict:
    return {"service_root": er.url, "token_setting": "CHANNEL_SECRET_TEST_ER_TOKEN", **LOCAL}


def cmore_config(cm) -> dict:
    return {
        "base_url": cm.url,
        **LOCAL,
        "username": CMORE_USER,
        "password_setting": "CHANNEL_SECRET_TEST_CMORE_PASSWORD",
        "owner_group_id": 12,
        # tags and fields by id (tests/fakes/cmore.py: 501 "Camera Trap Alert", 9001 Camera, 9002 Detected)
        "tags": [{"tag": 501, "fields": {"9001": "{camera}", "9002": "{categories}"}}],
    }


def email_config(sg) -> dict:
    return {
        "mode": "sendgrid",
        "host": sg.url,
        **LOCAL,
        "people_photos": "as_is",  # the photo as drawn (privacy: tests/notify/test_notify_privacy.py)
        "api_key_setting": "CHANNEL_SECRET_TEST_SG_KEY",
        "to": ["rangers@kruger.example"],
        "from_address": "alerts@trapalert.example",
    }


def three_channels(db: Database, park_id: int, er, cm, sg) -> dict[str, int]:
    return {
        "er": add_channel(db, park_id, "er-main", "earthranger", er_config(er)),
        "cmore": add_channel(db, park_id, "cmore-ops-room", "cmore", cmore_config(cm)),
        "email": add_channel(db, park_id, "rangers-email", "email", email_config(sg)),
    }


def deliveries(db: Database, alert_id: int) -> dict[str, dict]:
    return {
        r["name"]: r
        for r in db.fetchall(
            "SELECT ch.name, d.* FROM deliveries d JOIN channels ch ON ch.id = d.channel_id "
            "WHERE d.alert_id = %s",
            (alert_id,),
        )
    }
