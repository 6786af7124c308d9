"""A clip uploaded from a camera's SD card (functions/inbound/upload.py) takes the bulk lane through the same
video path as an emailed clip: one alert whose photo is the right frame."""

from __future__ import annotations

import json

from functions import names
from functions.handlers import batch
from functions.inbound.upload import receive_upload
from functions.messages import BulkImage
from tests.video.controlled import clip_frames, write_clip

PERSON = [("2", 0.9, (0.2, 0.3, 0.3, 0.4))]
FPS = 5.0


def test_an_uploaded_clip_alerts_once_with_its_best_frame(svc, camera, tmp_path):
    clip = write_clip(tmp_path / "c.avi", "MJPG", clip_frames(3, FPS, {5: PERSON, 6: PERSON}), FPS)
    got = receive_upload(
        svc,
        park_slug="park-v",
        camera_name="CAM-V1",
        files=[("PICT0007.AVI", clip)],
        tz="UTC",
        uploader="ranger",
    )
    assert [r["status"] for r in got] == ["stored"]
    row = svc.db.fetchone("SELECT body FROM outbox WHERE queue = %s", (names.BULK_IMAGE_QUEUE,))
    message = BulkImage.model_validate(
        row["body"] if isinstance(row["body"], dict) else json.loads(row["body"])
    )
    assert message.purpose == "upload" and message.image_id == got[0]["image_id"]

    batch.handle_bulk(message, svc)  # what the process-image-bulk queue runs

    clip_row = svc.db.fetchone("SELECT * FROM images WHERE id = %s", (message.image_id,))
    assert clip_row["status"] == "scored" and clip_row["video"]["frames_with_detections"] == [5]
    frames = svc.db.fetchall(
        "SELECT id, frame_number FROM images WHERE clip_image_id = %s ORDER BY frame_number",
        (clip_row["id"],),
    )
    assert [f["frame_number"] for f in frames] == [0, 5]
    alerts = svc.db.fetchall("SELECT * FROM alerts WHERE kind = 'detection'")
    assert len(alerts) == 1 and alerts[0]["best_image_id"] == frames[1]["id"]
