"""Video recognition (functions/inbound/video.py), frame planning and the /v1/detect-video answer
(scoring/video.py, scoring/app.py) in the MegaDetector video output format."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from functions.inbound.video import inspect_attachment, sniff_video
from scoring.video import plan
from tests.inbound.conftest import make_jpeg
from tests.video.controlled import clip_frames, write_clip

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PERSON = [("2", 0.9, (0.2, 0.3, 0.3, 0.4))]


def _check(data: bytes, declared: str | None = None, filename: str | None = None, max_bytes: int = 10**8):
    return inspect_attachment(
        data,
        declared_type=declared,
        filename=filename,
        max_pixels=50_000_000,
        video_max_bytes=max_bytes,
        tz="UTC",
        email_date=None,
        received_at=NOW,
    )


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00", "mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00", "mov"),
        (b"\x00\x00\x00\x14ftyp3gp5\x00\x00\x02\x00", "3gp"),
        (b"RIFF\x10\x00\x00\x00AVI LIST", "avi"),
        (b"\x00\x00\x08\x00mdat\x00\x00\x00\x00", "mov"),  # QuickTime without ftyp
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", None),  # an image (images.py)
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", None),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", None),
    ],
)
def test_sniff_video_by_bytes(head, fmt):
    assert sniff_video(head + b"\x00" * 64) == fmt


def test_attachments_are_photos_or_clips_by_content_then_by_name(tmp_path):
    avi = write_clip(tmp_path / "a.avi", "MJPG", clip_frames(1, 5, {}), 5)
    clip = _check(avi, "application/octet-stream", "x.bin")  # by content, whatever the name says
    assert (clip.status, clip.content_type, clip.ext, clip.taken_at) == (
        "stored",
        "video/x-msvideo",
        "avi",
        NOW,
    )
    # a photo named .mp4 is still a photo
    assert _check(make_jpeg(), "video/mp4", "IMG.MP4").content_type == "image/jpeg"
    bad = _check(b"just text" * 10, "application/octet-stream", "CLIP.MOV")
    assert bad.status == "unsupported" and bad.reason.startswith("unsupported_video: ")
    big = _check(avi, "video/avi", "a.avi", max_bytes=1000)
    assert big.status == "rejected" and big.reason.startswith("video_too_large: ")
    assert _check(b"", "video/mp4", "a.mp4").reason == "empty_attachment"


def test_plan_keeps_first_last_and_thins_evenly():
    assert plan(20, 5.0, 1.0, 12) == [0, 5, 10, 15, 19]
    assert plan(900, 30.0, 1.0, 20)[:2] == [0, 30] and plan(900, 30.0, 1.0, 20)[-1] == 899
    assert len(plan(900, 30.0, 1.0, 20)) == 20
    assert plan(1, 30.0, 1.0, 5) == [0]
    assert plan(0, 30.0, 1.0, 5) == []


def test_detect_video_answers_in_megadetector_video_format(scoring_app, tmp_path):
    clip = write_clip(tmp_path / "c.mp4", "mp4v", clip_frames(3, 10.0, {10: PERSON}), 10.0)
    r = scoring_app.post(
        "/v1/detect-video?file=CLIP.MP4&every_s=0.5",
        content=clip,
        headers={"Content-Type": "video/mp4"},
    )
    assert r.status_code == 200, r.text
    (entry,) = r.json()["images"]
    # MegaDetector's video fields (megadetector/detection/process_video.py)
    assert entry["file"] == "CLIP.MP4" and entry["frame_rate"] == 10.0 and entry["failure"] is None
    assert entry["frames_processed"] == [0, 5, 10, 15, 20, 25, 29]
    (det,) = entry["detections"]
    assert det["frame_number"] == 10 and det["frame_time_s"] == 1.0 and det["category"] == "2"
    assert det["conf"] == pytest.approx(0.9, abs=0.02)
    jpegs = {f["frame_number"]: f["jpeg"] for f in entry["frames"] if f["jpeg"]}
    assert sorted(jpegs) == [0, 10]  # the first frame and the frame with a detection
    assert base64.b64decode(jpegs[10])[:3] == b"\xff\xd8\xff"
    assert entry["video"]["codec"] and entry["video"]["truncated"] is False
    assert entry["video"]["duration_s"] == 3.0

    bad = scoring_app.post(
        "/v1/detect-video", content=b"garbage" * 100, headers={"Content-Type": "video/mp4"}
    )
    assert bad.status_code == 200 and bad.json()["images"][0]["failure"].startswith("unreadable_video: ")
    empty = scoring_app.post("/v1/detect-video", content=b"", headers={"Content-Type": "video/mp4"})
    assert empty.json()["images"][0]["failure"].startswith("empty_video: ")
    text = scoring_app.post("/v1/detect-video", content=b"x", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
