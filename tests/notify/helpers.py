"""Builders shared by the notify tests (and usable by end-to-end tests): photos and notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from functions.notify import AlertNotice, CameraRef, DetectionRef, ParkRef

T0 = datetime(2026, 11, 20, 2, 14, 5, tzinfo=UTC)


def make_jpeg(width: int = 640, height: int = 480, grey: bool = False, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    base = np.linspace(30, 200, width, dtype=np.float32)[None, :].repeat(height, 0)
    noise = rng.normal(0, 8, (height, width)).astype(np.float32)
    img = np.clip(base + noise, 0, 255).astype(np.uint8)
    if not grey:
        img = cv2.merge([img, (img * 0.8).astype(np.uint8), (img * 0.6).astype(np.uint8)])
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def make_notice(photo: bytes | None = None, **overrides) -> AlertNotice:
    fields = dict(
        alert_id=42,
        kind="new",
        park=ParkRef(id=1, slug="kruger-south", name="Kruger South"),
        camera=CameraRef(
            id=7,
            name="CT-07 Sabie drift",
            latitude=-25.1234,
            longitude=31.9123,
            timezone="Africa/Johannesburg",
            zone="north",
        ),
        categories=["person"],
        max_conf=0.93,
        mean_conf=0.88,
        image_count=1,
        started_at=T0,
        updated_at=T0,
        title="Person at CT-07 Sabie drift",
        summary="1 person detected at 04:14 (93%).",
        photo_jpeg=photo,
        photo_filename="a1b2c3-0.jpg",
        photo_url="https://example.blob.core.windows.net/images/a1b2c3.jpg?sv=2026&se=2026-11-20T06%3A14Z&sig=x",
        map_url="https://www.openstreetmap.org/?mlat=-25.1234&mlon=31.9123#map=15/-25.1234/31.9123",
        ops_url="https://ops.trapalert.example/alerts/42",
        correlation_id="corr-42",
        detections=[DetectionRef(category="person", conf=0.93, bbox=(0.4, 0.3, 0.2, 0.5))],
    )
    fields.update(overrides)
    return AlertNotice(**fields)


def make_update(photo: bytes | None, n: int = 2, **overrides) -> AlertNotice:
    return make_notice(
        photo,
        kind="update",
        image_count=n,
        photo_filename=f"a1b2c3-{n - 1}.jpg",
        updated_at=T0 + timedelta(seconds=2 * (n - 1)),
        **overrides,
    )
