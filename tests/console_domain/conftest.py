"""Fixtures of the console-domain tests: a park with a camera, and alerts seeded as process-image leaves them
(an email, an event, an alert, its photos with their assessment and detections)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from functions.adapters.parks import CameraIn, ParkIn, ParkRepository

T0 = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
POST = (0.4, 0.5, 0.1, 0.3)


@dataclass
class Seeded:
    park_id: int
    camera_id: int


@pytest.fixture
def seeded(clean_db) -> Seeded:
    repo = ParkRepository(clean_db)
    repo.add_park(ParkIn(slug="mara", name="Mara", timezone="Africa/Nairobi"))
    cam = repo.add_camera("mara", CameraIn(name="gate-1"))
    park_id = clean_db.fetchone("SELECT id FROM parks WHERE slug = 'mara'")["id"]
    return Seeded(park_id, cam["id"])


def seed_alert(db, s: Seeded, hours: float, dets_per_photo: list[list[tuple]], night: bool = False) -> dict:
    """One event with an alert and its photos (each a list of (category, conf, bbox)); their ids."""
    at = T0 + timedelta(hours=hours)
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO alerts (park_id, camera_id, categories, max_conf, image_count, started_at, "
            "last_image_at, correlation_id) VALUES (%s, %s, %s, 0.9, %s, %s, %s, %s) RETURNING id",
            (s.park_id, s.camera_id, ["person"], len(dets_per_photo), at, at, str(uuid.uuid4())),
        )
        alert_id = cur.fetchone()["id"]
        cur.execute(
            "INSERT INTO events (park_id, camera_id, started_at, last_image_at, image_count, alert_id) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (s.park_id, s.camera_id, at, at, len(dets_per_photo), alert_id),
        )
        event_id = cur.fetchone()["id"]
        images = []
        for i, dets in enumerate(dets_per_photo):
            cid = str(uuid.uuid4())
            cur.execute(
                "INSERT INTO inbound_emails (dedupe_key, mode, status, park_id, camera_id, correlation_id) "
                "VALUES (%s, 'parsed', 'accepted', %s, %s, %s) RETURNING id",
                (f"seed-{cid}", s.park_id, s.camera_id, cid),
            )
            email_id = cur.fetchone()["id"]
            seen: dict[str, float] = {}
            for c, conf, _ in dets:
                name = {"1": "animal", "2": "person", "3": "vehicle"}[c]
                seen[name] = max(seen.get(name, 0.0), conf)
            cur.execute(
                "INSERT INTO images (email_id, attachment_index, park_id, camera_id, status, taken_at, "
                "night, event_id, alert_id, assessment, correlation_id) VALUES (%s, 0, %s, %s, 'scored', %s, "
                "%s, %s, %s, %s::jsonb, %s) RETURNING id",
                (
                    email_id,
                    s.park_id,
                    s.camera_id,
                    at + timedelta(seconds=2 * i),
                    night,
                    event_id,
                    alert_id,
                    json.dumps({"night": night, "seen": seen, "passes": True}),
                    cid,
                ),
            )
            image_id = cur.fetchone()["id"]
            images.append(image_id)
            for c, conf, box in dets:
                cur.execute(
                    "INSERT INTO detections (image_id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (image_id, c, conf, *box),
                )
    return {"alert_id": alert_id, "event_id": event_id, "images": images}
