"""process-image for a video clip (an ``images`` row whose content type is ``video/*``; functions/inbound/
video.py): its sampled frames are scored by the scoring service and decided as one burst.

Steps, each safe to repeat:

1. the clip is sent to ``/v1/detect-video`` (scoring/video.py samples the first frame, one every
   VIDEO_EVERY_S seconds, the last, at most VIDEO_MAX_FRAMES, and scores them in model batches). A clip the
   service cannot use (``unreadable_video``, ``video_too_long``, ``too_many_pixels``, ``too_large``) is
   recorded ``failed`` with that reason, permanently, and its blob is kept; a service that stays down raises
   (the message is retried, as for photos). The other attachments of the email have messages of their own:
   a bad clip never holds them up;
2. the JPEG of each frame that matters (the first frame, every frame with a detection) is stored next to
   the clip: ``<clip blob without extension>.frame000123.jpg`` (deterministic: a retry overwrites it);
3. one unit of work (functions/adapters/video_repo.py, migration 0016_video.sql): a row per kept frame
   (``clip_image_id``, ``frame_number``, ``frame_time_s``, time = clip time + frame time), then the frames
   in time order go through the same decision as photos (process_image.decide_photo): the rules
   see every frame with a detection, the frames join one event (burst), the alert's photo is its best
   frame, annotated by send-alert like any photo. Each detection row keeps its frame number and time. Only
   the final alert version is enqueued (the outbox sends the latest version once). The clip row is scored
   (no detections of its own) and marked decided with its frames' event and alert;
4. after the commit the camera's outbox is flushed, and the frames go through the theft and tamper watch.
A redelivered message finds the clip scored: it only flushes what an earlier attempt left.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from .. import names
from ..adapters.alerts_repo import ImagesRepository, PostgresUnitOfWork, camera_scope
from ..adapters.scoring_client import ImageScore, VideoScore
from ..adapters.video_repo import FrameRow, VideoRepository
from ..domain.decision import Decision
from ..messages import ProcessImage
from ..ops import metrics
from . import camera_health

log = logging.getLogger(__name__)


def frame_blob_name(clip_blob: str, frame_number: int) -> str:
    stem = clip_blob.rsplit(".", 1)[0] if "." in clip_blob.rsplit("/", 1)[-1] else clip_blob
    return f"{stem}.frame{frame_number:06d}.jpg"


class _Joined:
    """The unit of work of the clip, lent to decide_photo for each frame (the clip's block commits)."""

    def __init__(self, alerts):
        self.alerts = alerts

    def __enter__(self) -> _Joined:
        return self

    def __exit__(self, *exc) -> None:
        return None


def handle_clip(msg: ProcessImage, svc, image: dict, lane: str = "live") -> Decision | None:
    camera_id = image["camera_id"] or msg.camera_id
    if image["status"] != "stored":  # scored (a redelivered message): send what an earlier attempt left
        svc.outbox.flush(camera_scope(camera_id))
        return None
    blob = image["blob_name"] or msg.blob_name
    data = svc.storage.get_blob(names.IMAGES_CONTAINER, blob)
    score = svc.scoring.detect_video(
        data,
        filename=image["filename"] or blob.rsplit("/", 1)[-1],
        content_type=image["content_type"] or "video/mp4",
        every_s=svc.settings.video_every_s,
        max_frames=svc.settings.video_max_frames,
        lane=lane,
    )
    if score.permanent_failure:
        if ImagesRepository(svc.db).mark_failed(msg.image_id, score):
            log.warning(
                "clip %s cannot be scored: %s", msg.image_id, score.failure, extra={"image_id": msg.image_id}
            )
        return None
    kept = [f for f in score.frames if f.jpeg is not None]
    rows = []
    for position, f in enumerate(kept):
        name = frame_blob_name(blob, f.frame_number)
        svc.storage.put_blob(
            names.IMAGES_CONTAINER,
            name,
            f.jpeg,
            content_type="image/jpeg",
            metadata={
                "clip": blob,
                "clip_image_id": str(msg.image_id),
                "frame_number": str(f.frame_number),
                "frame_time_s": f"{f.time_s:g}",
                "correlation_id": str(msg.correlation_id),
            },
        )
        rows.append((position, f, name))
    decision, frame_ids = decide_clip(PostgresUnitOfWork(svc.db), msg.image_id, camera_id, score, rows)
    if decision.notify is not None and not decision.already_decided:
        metrics.alert_raised(kind="detection", reason=decision.notify)
    svc.outbox.flush(camera_scope(camera_id))
    for frame_id, (_p, f, _n) in zip(frame_ids, rows, strict=True):
        camera_health.watch_photo(svc, frame_id, camera_id, f.jpeg)
    log.info(
        "clip %s: %d frames scored, %d kept, alert %s",
        msg.image_id,
        len(score.frames),
        len(rows),
        decision.alert_id,
        extra={"image_id": msg.image_id, "alert_id": decision.alert_id},
    )
    return decision


def decide_clip(
    uow, clip_id: int, camera_id: int, score: VideoScore, rows: list
) -> tuple[Decision, list[int]]:
    """In one unit of work: the frame rows, the clip's score, each frame decided in time order, the clip
    marked decided. Returns the decision that matters (the last one that notified, else the last frame's)
    and the frames' image ids."""
    from .process_image import decide_photo  # process_image imports this module

    with uow:
        repo = uow.alerts
        clip = repo.lock(camera_id, clip_id).image
        if clip["status"] != "stored":
            return Decision(clip_id, reason=f"clip status {clip['status']}", already_decided=True), []
        videos = VideoRepository(repo.cur)
        frame_rows = [
            FrameRow(
                position=position,
                frame_number=f.frame_number,
                time_s=f.time_s,
                taken_at=(clip["taken_at"] or clip["created_at"]) + timedelta(seconds=f.time_s),
                blob_name=name,
                sha256=hashlib.sha256(f.jpeg).hexdigest(),
                size_bytes=len(f.jpeg),
                # MegaDetector's frame file name (video_utils.py), so exports roll frames up to their clip
                filename=f"{clip['filename'] or 'clip'}/frame{f.frame_number:06d}.jpg",
                width=score.video.get("width"),
                height=score.video.get("height"),
            )
            for position, f, name in rows
        ]
        frame_ids = videos.add_frames(clip, frame_rows)
        joined = _Joined(repo)
        # the clip itself is scored (no detections of its own: its frames carry them) and not decided as a
        # photo: its frames are the burst's photos; it takes their event and alert below
        repo.record_score(clip_id, ImageScore(score.detector, score.detector_version, [], score.night))
        decisions = []
        video = dict(score.video) | {
            "frame_rate": score.frame_rate,
            "frames_processed": [f.frame_number for f in score.frames],
            "frames_with_detections": [f.frame_number for f in score.frames if f.detections],
            "frame_image_ids": frame_ids,
        }
        note = "; ".join(score.video.get("notes") or []) or None
        if score.video.get("truncated"):
            note = f"truncated_video: {note}"
        videos.record_clip(clip_id, video, note)
        for frame_id, (_position, f, _name) in zip(frame_ids, rows, strict=True):
            decisions.append(decide_photo(joined, frame_id, camera_id, f.as_image_score(score)))
            videos.tag_detections(frame_id, f.frame_number, f.time_s)
        notified = [d for d in decisions if d.notify is not None]
        last = decisions[-1] if decisions else Decision(clip_id, reason="no frame")
        alert_id = next((d.alert_id for d in reversed(decisions) if d.alert_id is not None), None)
        videos.mark_clip_decided(clip_id, last.event_id, alert_id)
        return (notified[-1] if notified else last), frame_ids
