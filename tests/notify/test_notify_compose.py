"""The one notice composer (functions/notify/compose.py): send-alert, ops notices and `channels test`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions.domain.rules import CATEGORY_NAMES
from functions.notify import annotate as annotate_module
from functions.notify.base import CameraRef, ParkRef
from functions.notify.compose import (
    AlertView,
    alert_notice,
    category_name,
    channel_test_notice,
    detection_refs,
    ops_notice,
    with_photo,
)

T0 = datetime(2026, 11, 20, 2, 14, 5)  # naive, as a timestamp column without zone may come back


def row(**over) -> dict:
    base = {
        "id": 42,
        "kind": "detection",
        "park_id": 1,
        "park_slug": "kruger-south",
        "park_name": "Kruger South",
        "camera_id": 7,
        "camera_name": "CT-07",
        "latitude": -25.5,
        "longitude": 31.25,
        "camera_timezone": None,
        "camera_zone": "north",
        "categories": ["2", "1", "2"],
        "max_conf": 0.934,
        "mean_conf": 1.7,  # out of range in the row: clamped
        "image_count": 3,
        "started_at": T0,
        "last_image_at": T0 + timedelta(seconds=4),
        "alert_updated_at": T0 + timedelta(minutes=9),
        "title": None,
        "details": None,
        "best_image_id": 900,
        "image_sha256": "ab" * 32,
    }
    return {**base, **over}


def test_a_detection_alert_becomes_one_notice():
    view = AlertView.from_row(row())
    dets = detection_refs(
        [{"category": "2", "conf": 0.93, "bbox_x": 0.1, "bbox_y": 0.2, "bbox_w": 0.3, "bbox_h": 0.4}]
    )
    notice = alert_notice(view, dets, correlation_id="corr-1")
    assert notice.categories == ["person", "animal"]  # codes named once, in order, no repeats
    assert notice.title == "Person, animal detected at CT-07"
    assert notice.summary == "Person, animal seen by camera CT-07 with up to 93% confidence (3 photos)."
    assert (notice.max_conf, notice.mean_conf, notice.kind) == (0.934, 1.0, "new")
    assert notice.started_at == T0.replace(tzinfo=UTC) and notice.updated_at == T0.replace(
        tzinfo=UTC
    ) + timedelta(seconds=4)
    assert notice.camera.timezone == "UTC" and notice.camera.zone == "north"
    assert (
        notice.map_url
        == "https://www.openstreetmap.org/?mlat=-25.500000&mlon=31.250000#map=16/-25.500000/31.250000"
    )
    assert [d.category for d in notice.detections] == ["person"] and notice.correlation_id == "corr-1"

    photo = with_photo(notice, view, b"\xff\xd8jpeg", "https://blob/x?sig=1")
    assert (photo.photo_jpeg, photo.photo_url) == (b"\xff\xd8jpeg", "https://blob/x?sig=1")
    assert photo.photo_filename == f"{'ab' * 12}-900.jpg"


def test_a_health_alert_names_its_condition():
    view = AlertView.from_row(
        row(
            kind="health", categories=[], details={"condition": "silent_camera"}, best_image_id=None, title=""
        )
    )
    notice = alert_notice(view, [], correlation_id="c")
    assert notice.kind == "health" and notice.categories == ["camera health: silent camera"]
    assert notice.updated_at == T0.replace(tzinfo=UTC) + timedelta(minutes=9)  # the alert's own update
    assert notice.summary == "Camera CT-07 needs attention (a silent camera may have been stolen)."
    assert with_photo(notice, view, b"x", None) is notice  # no best image: no photo


def test_ops_and_test_notices():
    park = ParkRef(id=1, slug="k", name="Kruger")
    ops = ops_notice(park, title="T", summary="S", ref_id=5, correlation_id="c", ops_url="https://x/api/console/ops")
    assert (ops.kind, ops.camera.name, ops.image_count, ops.photo_jpeg) == (
        "ops",
        "TrapAlert pipeline",
        0,
        None,
    )
    cam = CameraRef(id=3, name="CT-1", latitude=1.0, longitude=2.0)
    test = channel_test_notice(park, cam, channel_id=9, channel_name="er", photo=b"jpg")
    assert test.title == "TEST - TrapAlert channel test (er)" and test.correlation_id == "channel-test-9"
    assert test.categories == ["person"] and test.photo_jpeg == b"jpg" and test.map_url


def test_the_category_map_lives_once():
    assert category_name("3") == "vehicle" and category_name("person") == "person"
    assert not hasattr(annotate_module, "CATEGORY_NAMES") or annotate_module.CATEGORY_NAMES is CATEGORY_NAMES
