"""A park as the pipeline leaves it, for the export tests: cameras (with a location, with GPS photos only,
with neither), photos (scored with and without boxes, a person, a failure, a suppressed stump), events, an
alert and the rangers' feedback on it. Rows are written as process-email / process-image would write them."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from functions import names
from functions.cli import cli

T0 = datetime(2026, 3, 1, 22, 0, 0, tzinfo=UTC)
MODEL = ("md_v5a.0.0.pt", "v5a.0.0")


def run_cli(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@dataclass
class Seeded:
    park_id: int
    cameras: dict[str, int] = field(default_factory=dict)
    photos: dict[str, dict] = field(default_factory=dict)  # label -> {id, blob}
    events: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)


class Seeder:
    def __init__(self, db, storage):
        self.db, self.storage = db, storage

    def park(self, slug: str, tz: str = "Africa/Dar_es_Salaam") -> Seeded:
        pid = self.db.fetchone(
            "INSERT INTO parks (slug, name, timezone) VALUES (%s, %s, %s) RETURNING id",
            (slug, slug.title() + " National Park", tz),
        )["id"]
        return Seeded(pid)

    def camera(self, s: Seeded, name: str, lat=None, lon=None, created=T0 - timedelta(days=10), **kw) -> int:
        cid = self.db.fetchone(
            "INSERT INTO cameras (park_id, name, latitude, longitude, brand, serials, created_at, active) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                s.park_id,
                name,
                lat,
                lon,
                kw.get("brand"),
                kw.get("serials", []),
                created,
                kw.get("active", True),
            ),
        )["id"]
        s.cameras[name] = cid
        return cid

    def photo(
        self,
        s: Seeded,
        label: str,
        camera: str,
        at: datetime,
        *,
        status: str = "scored",
        dets: list[tuple] = (),
        reason: str | None = None,
        gps=None,
        event: str | None = None,
        source: str = "exif",
        put_blob: bool = True,
        video: dict | None = None,
        clip: str | None = None,
        frame: int | None = None,
        same_as: str | None = None,
    ) -> dict:
        cid = uuid.uuid4()
        data = b"\xff\xd8photo-" + label.encode() + b"\xff\xd9"
        sha = hashlib.sha256(data + cid.bytes).hexdigest()
        email_id = self.db.fetchone(
            "INSERT INTO inbound_emails (dedupe_key, mode, status, park_id, camera_id, correlation_id) "
            "VALUES (%s, 'parsed', 'accepted', %s, %s, %s) RETURNING id",
            (f"test-{cid}", s.park_id, s.cameras[camera], str(cid)),
        )["id"]
        blob = f"{s.park_id}/{camera}/{at:%Y-%m-%d}/{sha}." + ("mp4" if video else "jpg")
        if same_as is not None:  # the same photo delivered again: its blob is the first one's
            blob, data = s.photos[same_as]["blob"], s.photos[same_as]["data"]
        elif put_blob:
            self.storage.put_blob(names.IMAGES_CONTAINER, blob, data, content_type="image/jpeg")
        scored = status in ("scored", "failed")
        image_id = self.db.fetchone(
            "INSERT INTO images (email_id, attachment_index, park_id, camera_id, filename, content_type, "
            "sha256, blob_name, size_bytes, taken_at, taken_at_source, status, reason, gps_latitude, "
            "gps_longitude, model_name, model_version, scored_at, event_id, correlation_id) VALUES "
            "(%s, 0, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id",
            (
                email_id,
                s.park_id,
                s.cameras[camera],
                f"IMG_{label}.JPG",
                "video/mp4" if video else "image/jpeg",
                sha,
                blob,
                len(data),
                at,
                source,
                status,
                reason,
                *(gps or (None, None)),
                *(MODEL if scored else (None, None)),
                at + timedelta(seconds=3) if scored else None,
                s.events.get(event) if event else None,
                str(cid),
            ),
        )["id"]
        if video is not None or clip is not None:
            self.db.execute(
                "UPDATE images SET video = %s::jsonb, clip_image_id = %s, frame_number = %s WHERE id = %s",
                (
                    json.dumps(video) if video else None,
                    s.photos[clip]["id"] if clip else None,
                    frame,
                    image_id,
                ),
            )
        for det in dets:
            category, conf, box, *rest = det
            sup = self._stump(s, camera, at) if rest and rest[0] == "suppressed" else None
            self.db.execute(
                "INSERT INTO detections (image_id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h, "
                "suppression_id, frame_number) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (image_id, category, conf, *box, sup, frame),
            )
        s.photos[label] = {"id": image_id, "blob": blob, "data": data}
        return s.photos[label]

    def _stump(self, s: Seeded, camera: str, at: datetime) -> int:
        return self.db.fetchone(
            "INSERT INTO suppressions (park_id, camera_id, category, bbox_x, bbox_y, bbox_w, bbox_h, "
            "event_count, first_seen_at, last_seen_at, status) VALUES (%s, %s, '1', 0.1, 0.1, 0.1, 0.1, 5, "
            "%s, %s, 'suppressed') RETURNING id",
            (s.park_id, s.cameras[camera], at, at),
        )["id"]

    def event(
        self,
        s: Seeded,
        label: str,
        camera: str,
        start: datetime,
        end: datetime,
        n: int,
        categories: list[str] = (),
        alert: str | None = None,
    ) -> int:
        alert_id = None
        if alert is not None:
            alert_id = self.db.fetchone(
                "INSERT INTO alerts (park_id, camera_id, categories, max_conf, image_count, started_at, "
                "last_image_at, correlation_id) VALUES (%s, %s, %s, 0.9, %s, %s, %s, %s) RETURNING id",
                (s.park_id, s.cameras[camera], list(categories), n, start, end, str(uuid.uuid4())),
            )["id"]
            s.alerts[alert] = alert_id
        eid = self.db.fetchone(
            "INSERT INTO events (park_id, camera_id, started_at, last_image_at, image_count, alert_id, "
            "summary) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) RETURNING id",
            (
                s.park_id,
                s.cameras[camera],
                start,
                end,
                n,
                alert_id,
                json.dumps({"categories": list(categories), "passes": bool(categories)}),
            ),
        )["id"]
        s.events[label] = eid
        return eid

    def feedback(
        self,
        s: Seeded,
        alert: str,
        camera: str,
        verdict: str,
        what: str | None,
        user: str,
        at: datetime,
        image: str | None = None,
    ) -> None:
        self.db.execute(
            "INSERT INTO feedback (park_id, camera_id, alert_id, image_id, verdict, what, user_name, "
            "user_role, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 'ranger', %s)",
            (
                s.park_id,
                s.cameras[camera],
                s.alerts[alert],
                s.photos[image]["id"] if image else None,
                verdict,
                what,
                user,
                at,
            ),
        )
