"""Theft and tamper watch against the real PostgreSQL and Azurite: process-image raises ``someone_at_camera``
and ``view_changed`` with the photo that shows it (one health alert per condition, announced through the
outbox, cleared once), the camera-health timer clears the quiet ones and raises ``neighbours_silent`` once
per group of neighbouring cameras.

Photos are stored as process-image finds them after scoring (image rows ``scored`` with their detections,
the JPEG in Blob Storage), so no detector runs here; the scenes are drawn with Pillow
(tests/ops/test_watch_domain.py)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from functions import names
from functions.adapters.health_repo import OUTBOX_SCOPE
from functions.handlers import camera_health, process_image
from functions.messages import ProcessImage, SendAlert
from tests.ops.test_watch_domain import black, jpeg, scene, variant

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CLOSE = ("2", 0.92, (0.2, 0.1, 0.55, 0.85))
FAR = ("2", 0.95, (0.4, 0.3, 0.2, 0.5))


@pytest.fixture
def svc(app_settings, clean_db, clean_queues):
    from functions.bootstrap import services

    return services()


@pytest.fixture
def park(clean_db):
    return clean_db.fetchone("INSERT INTO parks (slug, name) VALUES ('park-w', 'Park W') RETURNING id")["id"]


def camera(db, park_id, name="cam-7", **cols) -> int:
    keys = ["park_id", "name", *cols]
    return db.fetchone(
        f"INSERT INTO cameras ({', '.join(keys)}) VALUES ({', '.join(['%s'] * len(keys))}) RETURNING id",
        (park_id, name, *cols.values()),
    )["id"]


def photo(svc, park_id, camera_id, data: bytes, k: int, dets=()) -> ProcessImage:
    """An accepted email with one photo, scored (its detections stored), as process-image finds it."""
    cid = uuid.uuid4()
    sha = hashlib.sha256(data + cid.bytes).hexdigest()
    db = svc.db
    email_id = db.fetchone(
        "INSERT INTO inbound_emails (dedupe_key, mode, status, park_id, camera_id, correlation_id) "
        "VALUES (%s, 'parsed', 'accepted', %s, %s, %s) RETURNING id",
        (f"watch-{cid}", park_id, camera_id, str(cid)),
    )["id"]
    blob = f"{park_id}/{camera_id}/{sha}.jpg"
    svc.storage.put_blob(names.IMAGES_CONTAINER, blob, data, content_type="image/jpeg")
    image_id = db.fetchone(
        "INSERT INTO images (email_id, attachment_index, park_id, camera_id, filename, content_type, sha256, "
        "blob_name, size_bytes, taken_at, taken_at_source, status, night, scored_at, correlation_id) "
        "VALUES (%s, 0, %s, %s, 'IMG.JPG', 'image/jpeg', %s, %s, %s, %s, 'exif', 'scored', false, now(), %s) "
        "RETURNING id",
        (email_id, park_id, camera_id, sha, blob, len(data), T0 + timedelta(hours=k), str(cid)),
    )["id"]
    for category, conf, (x, y, w, h) in dets:
        db.execute(
            "INSERT INTO detections (image_id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (image_id, category, conf, x, y, w, h),
        )
    return ProcessImage(
        image_id=image_id, blob_name=blob, park_id=park_id, camera_id=camera_id, correlation_id=cid
    )


def health(db, condition=None):
    rows = db.fetchall("SELECT * FROM alerts WHERE kind = 'health' ORDER BY id")
    return [r for r in rows if condition is None or r["details"]["condition"] == condition]


def queued(storage) -> list[tuple[int, str, int]]:
    msgs = storage.queue(names.SEND_ALERT_QUEUE).peek_messages(max_messages=32)
    return [
        (m.alert_id, m.reason, m.version) for m in (SendAlert.model_validate_json(x.content) for x in msgs)
    ]


def test_someone_at_the_camera_is_raised_by_the_photo_once_and_cleared_by_later_photos(svc, park):
    cam = camera(svc.db, park)
    view = jpeg(scene(1))
    process_image.handle(photo(svc, park, cam, view, 0, [FAR]), svc)
    assert health(svc.db) == []

    close = photo(svc, park, cam, view, 1, [CLOSE])
    process_image.handle(close, svc)
    [alert] = health(svc.db, "someone_at_camera")
    assert alert["best_image_id"] == close.image_id and alert["camera_id"] == cam
    assert "someone is at the camera" in alert["title"] and alert["details"]["conf"] == pytest.approx(0.92)
    # sent at once (not at the next timer run), through the outbox
    assert (alert["id"], "health", 1) in queued(svc.storage)
    assert svc.outbox.pending(OUTBOX_SCOPE) == []
    # a redelivered message and another close photo change nothing
    process_image.handle(close, svc)
    process_image.handle(photo(svc, park, cam, view, 2, [CLOSE]), svc)
    assert len(health(svc.db)) == 1
    assert [q for q in queued(svc.storage) if q[0] == alert["id"]] == [(alert["id"], "health", 1)]

    for k in range(3, 6):  # three photos with no one at the camera
        process_image.handle(photo(svc, park, cam, view, k, [FAR] if k == 4 else []), svc)
    [alert] = health(svc.db)
    assert alert["version"] == 2 and alert["details"]["status"] == "cleared"
    assert "no one at the camera in the last 3 photos" in alert["title"]
    assert [q for q in queued(svc.storage) if q[0] == alert["id"]] == [
        (alert["id"], "health", 1),
        (alert["id"], "health_cleared", 2),
    ]
    assert camera_health.current(svc.db) == []
    row = svc.db.fetchone("SELECT watch, view_sig FROM images WHERE id = %s", (close.image_id,))
    assert row["watch"]["close_person"] is True and row["view_sig"].startswith("v1:c:")


def test_the_timer_clears_someone_at_the_camera_after_the_park_quiet_period(svc, park):
    svc.db.execute("UPDATE parks SET settings = %s", (json.dumps({"health": {"close_person_quiet_s": 60}}),))
    cam = camera(svc.db, park, last_seen_at=datetime.now(UTC))
    process_image.handle(photo(svc, park, cam, jpeg(scene(1)), 0, [CLOSE]), svc)
    assert len(health(svc.db, "someone_at_camera")) == 1
    assert camera_health.handle(None, svc)["cleared"] == []
    done = camera_health.handle(None, svc, now=datetime.now(UTC) + timedelta(minutes=2))
    assert done["cleared"] == [{"camera_id": cam, "condition": "someone_at_camera"}]
    assert health(svc.db)[0]["details"]["status"] == "cleared"


def test_a_moved_camera_raises_view_changed_with_its_photo_and_clears_when_put_back(svc, park):
    cam = camera(svc.db, park)
    k = 0

    def send(img, dets=()):
        nonlocal k
        k += 1
        msg = photo(svc, park, cam, jpeg(img, f"CAM-7 {k:02d}:00 {k}C"), k, dets)
        process_image.handle(msg, svc)
        return msg

    for i in range(5):
        send(variant(scene(1), i))
    assert health(svc.db) == []
    moved = [send(variant(scene(2), i)) for i in range(3)]
    [alert] = health(svc.db, "view_changed")
    assert alert["best_image_id"] == moved[-1].image_id and "the view changed" in alert["title"]
    assert alert["details"]["distance"] > 0.4
    send(black())  # covered meanwhile: still one alert
    send(variant(scene(1), 1))
    send(variant(scene(1), 2))
    [alert] = health(svc.db)
    assert alert["version"] == 2 and "usual view again" in alert["title"]
    views = [r["watch"]["view"] for r in svc.db.fetchall("SELECT watch FROM images ORDER BY id")]
    assert views == ["baseline"] * 3 + ["match"] * 2 + ["off"] * 4 + ["match"] * 2
    assert [q[1] for q in queued(svc.storage)] == ["health", "health_cleared"]


def test_a_photo_whose_health_alert_could_not_be_sent_is_sent_by_the_retry_once(svc, park, monkeypatch):
    """The queue refuses the camera-health messages after the photo was watched: the message fails (the
    host retries it); the retry sends the recorded health alert, once, and watches nothing twice."""
    cam = camera(svc.db, park)
    msg = photo(svc, park, cam, jpeg(scene(1)), 0, [CLOSE])
    flush = svc.outbox.flush

    def health_unreachable(scope=None):
        if scope == OUTBOX_SCOPE:
            raise ConnectionError("queue service unreachable")
        return flush(scope)

    with monkeypatch.context() as m:
        m.setattr(svc.outbox, "flush", health_unreachable)
        with pytest.raises(ConnectionError):
            process_image.handle(msg, svc)
    [alert] = health(svc.db)
    assert [p["key"] for p in svc.outbox.pending(OUTBOX_SCOPE)] == [f"send-alert:{alert['id']}:v1"]
    assert [q for q in queued(svc.storage) if q[1].startswith("health")] == []
    process_image.handle(msg, svc)  # the retry
    process_image.handle(msg, svc)
    assert [q for q in queued(svc.storage) if q[1].startswith("health")] == [(alert["id"], "health", 1)]
    assert len(health(svc.db)) == 1 and svc.outbox.pending(OUTBOX_SCOPE) == []


def test_neighbours_going_silent_together_raise_one_group_alert(svc, park):
    db = svc.db
    long_ago = datetime.now(UTC) - timedelta(hours=30)
    cams = [
        camera(db, park, f"north-{i}", zone="north", expected_interval_s=86400, last_seen_at=long_ago)
        for i in range(1, 4)
    ]
    camera(db, park, "south-1", zone="south", expected_interval_s=86400, last_seen_at=long_ago)
    camera(db, park, "north-4", zone="north", last_seen_at=datetime.now(UTC))

    done = camera_health.handle(None, svc)
    groups = [r for r in done["raised"] if r["condition"] == "neighbours_silent"]
    assert groups == [{"camera_id": cams[0], "condition": "neighbours_silent"}]
    assert sum(r["condition"] == "silent" for r in done["raised"]) == 4
    [alert] = health(db, "neighbours_silent")
    assert alert["camera_id"] == cams[0]
    assert "3 neighbouring cameras went silent together: north-1, north-2, north-3" in alert["title"]
    assert alert["details"]["camera_ids"] == cams
    assert camera_health.handle(None, svc)["raised"] == []

    db.execute("UPDATE cameras SET last_seen_at = now() WHERE id = %s", (cams[1],))
    done = camera_health.handle(None, svc)
    assert {"camera_id": cams[0], "condition": "neighbours_silent"} in done["cleared"]
    [alert] = health(db, "neighbours_silent")
    assert alert["version"] == 2 and "report again (north-2)" in alert["title"]
    assert camera_health.handle(None, svc)["raised"] == []


def test_the_someone_at_camera_alert_reaches_the_channel_with_its_photo_policy(svc, park, monkeypatch):
    """The contract with send-alert: a health alert with the photo (best_image_id) is delivered as a health
    notice with the person's detection, under the channel's people_photos policy (webhook: blurred)."""
    from functions.handlers import send_alert
    from tests.fakes.webhook import FakeWebhookReceiver

    monkeypatch.setenv("CHANNEL_SECRET_WATCH_HOOK_TEST", "s3cret-value")
    cam = camera(svc.db, park)
    with FakeWebhookReceiver(secret="s3cret-value") as hook:
        config = {
            "url": hook.url,
            "secret_setting": "CHANNEL_SECRET_WATCH_HOOK_TEST",
            "allow_http": True,  # the local stand-in
            "allow_private_network": True,
        }
        svc.db.execute(
            "INSERT INTO channels (park_id, name, kind, config) VALUES (%s, 'hook', 'webhook', %s)",
            (park, json.dumps(config)),
        )
        process_image.handle(photo(svc, park, cam, jpeg(scene(1)), 0, [CLOSE]), svc)
        [alert] = health(svc.db)
        msgs = [
            SendAlert.model_validate_json(m.content)
            for m in svc.storage.queue(names.SEND_ALERT_QUEUE).peek_messages(max_messages=32)
        ]
        for msg in msgs:
            if msg.alert_id == alert["id"]:
                send_alert.handle(msg, svc)
        [delivery] = [d for d in hook.deliveries if d["event"] == "alert.health"]
    notice = delivery["notice"]
    assert notice["kind"] == "health" and "someone is at the camera" in notice["title"]
    assert notice["categories"] == ["camera health: someone at camera"]
    assert [d["category"] for d in notice["detections"]] == ["person"]
    assert notice.get("photo_url") is None  # blurred policy: never the link to the original


def test_camera_overrides_and_the_rules_person_threshold_apply_to_the_photo_watch(svc, park):
    strict = json.dumps({"health": {"close_person_area": 0.6, "close_person_height": 0.9}})
    cam = camera(svc.db, park, overrides=strict)
    process_image.handle(photo(svc, park, cam, jpeg(scene(1)), 0, [CLOSE]), svc)
    assert health(svc.db) == []
    other = camera(svc.db, park, "cam-8")
    svc.db.execute(
        "INSERT INTO alert_rules (park_id, camera_id, rules) VALUES (%s, NULL, %s::jsonb)",
        (park, json.dumps({"threshold.person.day": 0.95})),
    )
    process_image.handle(photo(svc, park, other, jpeg(scene(1)), 1, [CLOSE]), svc)  # 0.92 < 0.95
    assert health(svc.db) == []
    process_image.handle(photo(svc, park, other, jpeg(scene(1)), 2, [("2", 0.97, CLOSE[2])]), svc)
    assert [a["camera_id"] for a in health(svc.db, "someone_at_camera")] == [other]
