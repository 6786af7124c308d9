"""Clips sent by email go through process-email and process-image (in this process) and the real scoring
app: one alert whose photo is the right frame, frame numbers and times kept; bad clips end with their
reason and never hold up the photos of the same email."""

from __future__ import annotations

import json

import pytest

from functions import names
from functions.handlers import process_image
from functions.inbound.ingest import receive
from functions.inbound.sendgrid_payload import ImageFile, build_payload
from functions.messages import ProcessImage
from tests.inbound.conftest import make_jpeg
from tests.video.conftest import PARK, SENDER
from tests.video.controlled import clip_frames, write_clip

PERSON = [("2", 0.9, (0.2, 0.3, 0.3, 0.4))]
FPS = 5.0


def send(svc, attachments: list[ImageFile]):
    p = build_payload(sender=SENDER, to=PARK, subject="CAM-V1 motion", images=attachments)
    return receive(p.body, {"content-type": p.content_type}, svc)


def process_all(svc) -> None:
    """What the process-image queue would run: one message per stored row (clips and photos)."""
    rows = svc.db.fetchall(
        "SELECT id, blob_name, park_id, camera_id FROM images WHERE status = 'stored' ORDER BY id"
    )
    for r in rows:
        process_image.handle(
            ProcessImage(
                image_id=r["id"], blob_name=r["blob_name"], park_id=r["park_id"], camera_id=r["camera_id"]
            ),
            svc,
        )


def send_alert_messages(svc) -> list[dict]:
    import base64

    raw = svc.storage.queue(names.SEND_ALERT_QUEUE, encoded=False).peek_messages(max_messages=32)
    return [json.loads(base64.b64decode(m.content)) for m in raw]


@pytest.mark.parametrize(
    ("fourcc", "filename", "declared", "content_type"),
    [
        ("MJPG", "CLIP0001.AVI", "video/avi", "video/x-msvideo"),
        ("mp4v", "CLIP0002.MP4", "application/octet-stream", "video/mp4"),  # known by its bytes only
    ],
)
def test_clip_by_email_alerts_once_with_its_best_frame(
    svc, camera, tmp_path, fourcc, filename, declared, content_type
):
    # 4 s at 5 fps: frames 0..19; a person in frames 10 and 11 (2.0 s), a weaker one in frame 15 (3.0 s)
    coded = {10: PERSON, 11: PERSON, 15: [("2", 0.7, (0.5, 0.3, 0.2, 0.4))]}
    clip = write_clip(tmp_path / f"c.{filename[-3:].lower()}", fourcc, clip_frames(4, FPS, coded), FPS)
    out = send(svc, [ImageFile(filename, clip, declared), ImageFile("IMG_0001.JPG", make_jpeg())])
    assert out.status == "accepted" and out.images_stored == 2 and out.queued == 2

    clip_row = svc.db.fetchone("SELECT * FROM images WHERE filename = %s", (filename,))
    assert clip_row["content_type"] == content_type and clip_row["blob_name"].endswith(
        "." + filename[-3:].lower()
    )
    assert svc.storage.get_blob(names.IMAGES_CONTAINER, clip_row["blob_name"]) == clip  # the original kept

    process_all(svc)

    clip_row = svc.db.fetchone("SELECT * FROM images WHERE id = %s", (clip_row["id"],))
    assert clip_row["status"] == "scored" and clip_row["decided_at"] is not None
    video = clip_row["video"]
    # every second (5 frames) from the first, plus the last; frame 11 is not sampled
    assert video["frames_processed"] == [0, 5, 10, 15, 19]
    assert video["frames_with_detections"] == [10, 15] and video["frame_rate"] == FPS
    assert video["truncated"] is False

    frames = svc.db.fetchall(
        "SELECT * FROM images WHERE clip_image_id = %s ORDER BY frame_number", (clip_row["id"],)
    )
    # the first frame (view watch) and the frames with a detection have rows and JPEGs
    assert [(f["frame_number"], f["frame_time_s"]) for f in frames] == [(0, 0.0), (10, 2.0), (15, 3.0)]
    assert all(f["status"] == "scored" and f["content_type"] == "image/jpeg" for f in frames)
    jpeg = svc.storage.get_blob(names.IMAGES_CONTAINER, frames[1]["blob_name"])
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert (frames[1]["taken_at"] - clip_row["taken_at"]).total_seconds() == pytest.approx(2.0)

    dets = svc.db.fetchall(
        "SELECT d.* FROM detections d JOIN images i ON i.id = d.image_id WHERE i.clip_image_id = %s "
        "ORDER BY d.frame_number",
        (clip_row["id"],),
    )
    assert [(d["frame_number"], d["frame_time_s"], d["category"]) for d in dets] == [
        (10, 2.0, "2"),
        (15, 3.0, "2"),
    ]
    assert dets[0]["conf"] == pytest.approx(0.9, abs=0.02)

    alerts = svc.db.fetchall("SELECT * FROM alerts WHERE kind = 'detection'")
    assert len(alerts) == 1
    assert alerts[0]["best_image_id"] == frames[1]["id"]  # the best frame, which send-alert annotates
    # the kept frames and the email's photo are the burst's photos; the clip itself is not one
    assert alerts[0]["image_count"] == 4 and clip_row["event_id"] is None
    assert video["alert_id"] == alerts[0]["id"] == frames[1]["alert_id"]
    sent = [m for m in send_alert_messages(svc) if m["alert_id"] == alerts[0]["id"]]
    assert len(sent) == 1 and sent[0]["reason"] == "new"
    # clip and frames are one burst: one event
    events = {
        r["event_id"]
        for r in svc.db.fetchall("SELECT event_id FROM images WHERE clip_image_id = %s", (clip_row["id"],))
    }
    assert events == {video["event_id"]}

    # the alert shows the best frame, annotated, and links to the clip itself
    from functions.adapters.deliveries import DeliveryRepository
    from functions.handlers import send_alert

    context = DeliveryRepository(svc.db).alert_context(alerts[0]["id"])
    assert context["clip_blob"] == clip_row["blob_name"] and context["image_blob"] == frames[1]["blob_name"]
    photo, url = send_alert._photo(svc, context, [], lambda task: task())
    assert photo[:3] == b"\xff\xd8\xff"
    assert url is not None and clip_row["blob_name"].rsplit("/", 1)[1] in url

    # a redelivered message changes nothing and sends nothing twice
    before = svc.db.fetchone("SELECT count(*) AS n FROM images")["n"]
    process_image.handle(
        ProcessImage(
            image_id=clip_row["id"],
            blob_name=clip_row["blob_name"],
            park_id=clip_row["park_id"],
            camera_id=clip_row["camera_id"],
        ),
        svc,
    )
    assert svc.db.fetchone("SELECT count(*) AS n FROM images")["n"] == before
    assert len([m for m in send_alert_messages(svc) if m["alert_id"] == alerts[0]["id"]]) == 1


def test_corrupt_and_truncated_clips_end_with_their_reason_and_the_photo_goes_on(svc, camera, tmp_path):
    mp4 = write_clip(tmp_path / "a.mp4", "mp4v", clip_frames(3, FPS, {}), FPS)
    avi = write_clip(tmp_path / "b.avi", "MJPG", clip_frames(4, FPS, {5: PERSON}), FPS)
    corrupt = b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(range(256)) * 64  # an AVI header, then noise
    out = send(
        svc,
        [
            ImageFile("CORRUPT.AVI", corrupt, "video/x-msvideo"),
            ImageFile("CUT.MP4", mp4[: len(mp4) // 2], "video/mp4"),  # cut off: no moov box at the end
            ImageFile("CUT.AVI", avi[: int(len(avi) * 0.6)], "video/x-msvideo"),  # cut off after frame ~11
            ImageFile("IMG_0001.JPG", make_jpeg()),
            ImageFile("NOTES.MP4", b"this is not a video at all", "video/mp4"),
        ],
    )
    assert out.status == "accepted" and out.images_stored == 4
    process_all(svc)
    rows = {r["filename"]: r for r in svc.db.fetchall("SELECT * FROM images WHERE clip_image_id IS NULL")}
    assert rows["CORRUPT.AVI"]["status"] == "failed"
    assert rows["CORRUPT.AVI"]["reason"].startswith("scoring: unreadable_video")
    assert rows["CUT.MP4"]["status"] == "failed"
    assert rows["CUT.MP4"]["reason"].startswith("scoring: unreadable_video")
    # an AVI cut off is scored on the frames that were read (the person at 1.0 s alerts) and says so
    assert rows["CUT.AVI"]["status"] == "scored"
    assert rows["CUT.AVI"]["reason"].startswith("truncated_video: read ")
    assert rows["CUT.AVI"]["video"]["truncated"] is True
    assert rows["NOTES.MP4"]["status"] == "unsupported" and rows["NOTES.MP4"]["reason"].startswith(
        "unsupported_video"
    )
    # the clips are kept; the photo of the same email was scored
    for name in ("CORRUPT.AVI", "CUT.MP4"):
        assert svc.storage.get_blob(names.IMAGES_CONTAINER, rows[name]["blob_name"])
    assert rows["IMG_0001.JPG"]["status"] == "scored"
    alerts = svc.db.fetchall(
        "SELECT a.*, i.frame_number FROM alerts a JOIN images i ON i.id = a.best_image_id"
    )
    assert [a["frame_number"] for a in alerts] == [5]


def test_too_long_clip_fails_with_its_reason(svc, camera, tmp_path):
    from tests.video.controlled import blank_frame

    clip = write_clip(tmp_path / "long.avi", "MJPG", [blank_frame((96, 96))] * 62, 1.0)  # 62 s, limit 60 s
    out = send(svc, [ImageFile("LONG.AVI", clip, "video/x-msvideo")])
    assert out.status == "accepted"
    process_all(svc)
    row = svc.db.fetchone("SELECT * FROM images")
    assert row["status"] == "failed" and row["reason"].startswith(
        "scoring: video_too_long: 62.0 s, limit 60 s"
    )


def test_simulate_camera_sends_a_clip_and_shows_the_frames_scored(svc, camera, tmp_path, monkeypatch):
    """`trapalert simulate camera --image CLIP.avi --json`: the clip goes out as a video attachment (here the
    webhook is this process: receive + process-image), and the output shows the frames and the alert."""
    import httpx
    from click.testing import CliRunner

    from functions.cli import cli

    clip = tmp_path / "CLIP0009.AVI"
    write_clip(clip, "MJPG", clip_frames(3, FPS, {5: PERSON}), FPS)
    posted = []

    def webhook(url, *, content, headers, timeout):
        posted.append(headers["Content-Type"])
        assert b"Content-Type: video/x-msvideo" in content  # the clip's own type, not image/jpeg
        receive(content, {"content-type": headers["Content-Type"]}, svc)
        process_all(svc)
        return httpx.Response(200, json={"status": "accepted"})

    monkeypatch.setattr(httpx, "post", webhook)
    result = CliRunner().invoke(
        cli,
        ["simulate", "camera", "--camera", "CAM-V1", "--image", str(clip), "--url", "http://hook", "--json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{") :])
    assert out["state"] == "done" and len(posted) == 1
    (shown,) = [i for i in out["images"] if i["filename"] == "CLIP0009.AVI"]
    assert shown["status"] == "scored" and shown["video"]["frames_scored"] == 4  # 0, 5, 10, 14
    assert shown["video"]["frames_with_detections"] == [5]
    frames = {i["frame_number"]: i for i in out["images"] if i.get("frame_number") is not None}
    assert sorted(frames) == [0, 5] and frames[5]["frame_time_s"] == 1.0
    assert [d["category"] for d in frames[5]["detections"]] == ["2"]
    (alert,) = out["alerts"]
    assert alert["categories"] == ["person"] and frames[5]["alert_id"] == alert["id"]
