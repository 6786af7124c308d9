"""Video clips in a batch: a clip is scored through the scoring service's ``/v1/detect-video`` on the bulk
lane and its results entry is a video as MegaDetector's ``process_video`` writes one (``frame_rate``,
``frames_processed``, a ``frame_number`` on each detection); a clip that cannot be used ends with the same
reason the email path records. The real scoring app runs in this process with the controlled detector read
by OpenCV (tests/video/controlled.py), which sees which frame carries a detection."""

from __future__ import annotations

import json

import azure.functions as func
import cv2
import pytest
from fastapi.testclient import TestClient

from functions import names
from functions.adapters.batch_repo import BatchRepository
from functions.handlers import batch
from tests.batch.conftest import drain
from tests.process_image.helpers import make_camera, make_park
from tests.support.tiny_models import encode_detections
from tests.video.controlled import ControlledBackend, clip_frames, write_clip

PERSON = [("2", 0.9, (0.2, 0.3, 0.3, 0.4))]
ANIMAL = [("1", 0.8, (0.5, 0.4, 0.2, 0.2))]
FPS = 5.0


@pytest.fixture(scope="module")
def scoring_app():
    from scoring.app import create_app
    from scoring.settings import load_settings

    settings = load_settings(
        backend="null", video_max_duration_s=60, video_max_frames=12, video_every_s=1.0, max_wait_ms=0
    )
    app = create_app(settings, ControlledBackend(settings))
    with TestClient(app, base_url="http://scoring.test") as client:
        yield client


class LaneRecorder:
    """The real scoring client, recording which call went on which lane."""

    def __init__(self, real):
        self.real = real
        self.calls: list[tuple[str, str]] = []

    def detect(self, data, filename="image.jpg", content_type="image/jpeg", *, lane="live"):
        self.calls.append(("detect", lane))
        return self.real.detect(data, filename=filename, content_type=content_type, lane=lane)

    def detect_video(self, clip, filename="clip.mp4", content_type="video/mp4", **kwargs):
        self.calls.append(("detect_video", kwargs.get("lane", "live")))
        return self.real.detect_video(clip, filename=filename, content_type=content_type, **kwargs)

    def close(self) -> None:
        self.real.close()


@pytest.fixture
def svc(app_settings, scoring_app, clean_db, clean_queues):
    from functions.adapters.scoring_client import ScoringClient
    from functions.bootstrap import services

    services = services()
    client = ScoringClient("http://scoring.test", retry_budget_s=1)
    client._client = scoring_app  # the in-process app (ScoringClient.client returns it)
    services.__dict__["scoring"] = LaneRecorder(client)
    return services


def put(svc, name: str, data: bytes, content_type: str) -> str:
    svc.storage.put_blob(names.IMAGES_CONTAINER, name, data, content_type=content_type)
    return name


def run_batch(svc, blobs: list[str]) -> tuple[dict, dict]:
    """Submit a batch of ``blobs`` (park "serengeti"), drain the bulk queue, return (status, results)."""
    body = json.dumps({"park": "serengeti", "blobs": blobs}).encode()
    response = batch.http(func.HttpRequest("POST", "http://localhost/api/batch", body=body), svc)
    assert response.status_code == 202, response.get_body()
    request_id = json.loads(response.get_body())["request_id"]
    drain(svc)
    repo = BatchRepository(svc.db)
    status = batch.status(svc, repo.get(request_id))
    results = json.loads(svc.storage.get_blob(names.IMAGES_CONTAINER, status["results_blob"]))
    return status, results


def test_a_clip_in_a_batch_is_scored_on_the_bulk_lane_with_its_video_fields(svc, tmp_path):
    park = make_park(svc.db, "serengeti", "UTC")
    make_camera(svc.db, park, "cam-1")
    # 4 s at 5 fps: frames 0..19; sampled: 0, one a second (5, 10, 15) and the last (19)
    coded = {10: PERSON, 11: PERSON, 15: ANIMAL}
    clip = write_clip(tmp_path / "c.avi", "MJPG", clip_frames(4, FPS, coded), FPS)
    ok, photo = cv2.imencode(".jpg", encode_detections(PERSON, (320, 240)), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    blobs = [
        put(svc, "batch/serengeti/CLIP0001.AVI", clip, "video/x-msvideo"),
        put(svc, "batch/serengeti/IMG_0001.JPG", photo.tobytes(), "image/jpeg"),
    ]
    status, doc = run_batch(svc, blobs)

    assert status["state"] == "done" and status["progress"]["scored"] == 2
    assert sorted(svc.scoring.calls) == [("detect", "bulk"), ("detect_video", "bulk")]
    by_file = {i["file"]: i for i in doc["images"]}
    assert len(doc["images"]) == 2
    video = by_file["batch/serengeti/CLIP0001.AVI"]
    assert video["frame_rate"] == pytest.approx(FPS)
    assert video["frames_processed"] == [0, 5, 10, 15, 19]
    assert [(d["frame_number"], d["category"]) for d in video["detections"]] == [(10, "2"), (15, "1")]
    assert video["detections"][0]["conf"] == pytest.approx(0.9, abs=0.02)
    assert "failure" not in video
    image = by_file["batch/serengeti/IMG_0001.JPG"]
    assert "frame_rate" not in image and "frames_processed" not in image
    assert [d["category"] for d in image["detections"]] == ["2"]
    assert "frame_number" not in image["detections"][0]
    assert doc["info"]["detector"] == "controlled"


def test_clips_that_cannot_be_scored_end_with_their_reason(svc, tmp_path, monkeypatch):
    make_park(svc.db, "serengeti", "UTC")
    mp4 = write_clip(tmp_path / "a.mp4", "mp4v", clip_frames(2, FPS, {}), FPS)
    corrupt = b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(range(256)) * 64  # an AVI header, then noise
    cut = mp4[: len(mp4) // 2]  # cut off in transfer: no moov box
    limit = max(len(corrupt), len(cut)) + 1
    monkeypatch.setattr(svc.settings, "video_max_bytes", limit)
    big = b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(limit)  # over VIDEO_MAX_BYTES
    blobs = [
        put(svc, "batch/serengeti/CORRUPT.AVI", corrupt, "video/x-msvideo"),
        put(svc, "batch/serengeti/CUT.MP4", cut, "video/mp4"),
        put(svc, "batch/serengeti/BIG.AVI", big, "video/x-msvideo"),
        put(svc, "batch/serengeti/NOTES.MP4", b"this is not a video at all", "video/mp4"),
        put(svc, "batch/serengeti/notes.txt", b"field notes, not a photo", "text/plain"),
    ]
    status, doc = run_batch(svc, blobs)

    assert status["state"] == "done" and status["progress"]["failed"] == 5
    failures = {i["file"].rsplit("/", 1)[-1]: i["failure"] for i in doc["images"]}
    assert all(i["detections"] is None for i in doc["images"])
    assert failures["CORRUPT.AVI"].startswith("unreadable_video: ")
    assert failures["CUT.MP4"].startswith("unreadable_video: ")
    assert failures["BIG.AVI"].startswith(f"video_too_large: {len(big)} bytes, limit {limit}")
    assert failures["NOTES.MP4"].startswith("unsupported_video: ")
    assert failures["notes.txt"].startswith("not_an_image: ")
    # the detector saw the two clips it could be given (bulk lane), not the one over the limit, nor the
    # files that are no clip
    assert svc.scoring.calls == [("detect_video", "bulk")] * 2
