"""The demo's default detector (HOG fallback) says what an empty answer means and how to get MegaDetector."""

from __future__ import annotations

import logging

import cv2
import numpy as np
from fastapi.testclient import TestClient

from scoring.app import create_app
from tests.scoring.helpers import make_settings, wait_ready


def jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_empty_fallback_answers_carry_a_note_and_the_log_says_it_once(caplog):
    rng = np.random.default_rng(1)
    night = np.repeat(rng.integers(0, 60, (720, 1280, 1), dtype=np.uint8), 3, axis=2)  # infrared: grey
    day = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    with TestClient(create_app(make_settings())) as client:  # no model: the HOG fallback
        wait_ready(client)
        assert client.get("/v1/model").json()["fallback"] is True
        with caplog.at_level(logging.WARNING, logger="scoring.app"):
            files = [("files", ("night.jpg", jpeg(night), "image/jpeg")),
                     ("files", ("day.jpg", jpeg(day), "image/jpeg"))]
            body = client.post("/v1/detect/batch", files=files).json()
    night_out, day_out = body["images"]
    assert night_out["night"] is True and night_out["detections"] == []
    assert "found nothing in a night (infrared or dark) photo" in night_out["note"]
    assert "only upright, full-body people in daylight" in night_out["note"]
    assert "trapalert model download mdv1000-cedar" in night_out["note"]
    assert "found nothing in this photo" in day_out["note"]
    notes = [r for r in caplog.records if "HOG people detector, not MegaDetector" in r.getMessage()]
    assert len(notes) == 1, "logged once, not once per photo"


def test_no_note_with_a_configured_model_or_when_the_fallback_finds_someone():
    with TestClient(create_app(make_settings(backend="null", null_result="empty"))) as client:
        wait_ready(client)
        r = client.post("/v1/detect", content=jpeg(np.zeros((64, 64, 3), np.uint8)),
                        headers={"Content-Type": "image/jpeg"})
        assert "note" not in r.json()["images"][0]
    from scoring.backends.hog import HogBackend
    from scoring.schemas import Detection

    hog = HogBackend(make_settings(), fallback=True)
    assert hog.note_for([Detection("2", 0.9, (0.1, 0.1, 0.2, 0.5))], night=False) is None
    assert HogBackend(make_settings(), fallback=False).note_for([], night=True) is None
