"""Rows of a video clip's frames (migration 0016_video.sql), inside process-image's unit of work.

A frame row copies its clip's email, park, camera, correlation id and proofs; its ``attachment_index`` is
negative and far from the link photos' (-1, -2, ...): ``-(1_000_000 + 1000 * clip index + position)``, so
that ``UNIQUE (email_id, attachment_index)`` holds; ``(clip_image_id, frame_number)`` is unique too, so a
retried transaction inserts nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extras import Json

FRAME_INDEX_BASE = 1_000_000


@dataclass(frozen=True)
class FrameRow:
    position: int  # 0.. in the clip's sampled frames
    frame_number: int
    time_s: float
    taken_at: datetime
    blob_name: str
    sha256: str
    size_bytes: int
    filename: str
    width: int | None = None
    height: int | None = None


class VideoRepository:
    """Inserts and tags inside the caller's transaction (``cur``: a dict cursor)."""

    def __init__(self, cur):
        self.cur = cur

    def add_frames(self, clip: dict[str, Any], frames: list[FrameRow]) -> list[int]:
        """Insert the frames of ``clip`` (status stored) and return their ids in the order given."""
        if abs(int(clip["attachment_index"])) >= 2000:
            raise ValueError(f"clip {clip['id']}: attachment index {clip['attachment_index']} out of range")
        ids = []
        for f in frames:
            if not 0 <= f.position < 1000:
                raise ValueError(f"clip {clip['id']}: frame position {f.position} out of range")
            index = -(FRAME_INDEX_BASE + 1000 * abs(int(clip["attachment_index"])) + f.position)
            self.cur.execute(
                """INSERT INTO images (email_id, attachment_index, park_id, camera_id, filename, content_type,
                       sha256, blob_name, size_bytes, width, height, taken_at, taken_at_source, gps_latitude,
                       gps_longitude, status, correlation_id, proofs, clip_image_id, frame_number,
                       frame_time_s)
                   SELECT email_id, %s, park_id, camera_id, %s, 'image/jpeg', %s, %s, %s, %s, %s, %s,
                       taken_at_source, gps_latitude, gps_longitude, 'stored', correlation_id, proofs, id,
                       %s, %s
                   FROM images WHERE id = %s
                   ON CONFLICT (clip_image_id, frame_number) WHERE clip_image_id IS NOT NULL DO NOTHING
                   RETURNING id""",
                (
                    index,
                    f.filename,
                    f.sha256,
                    f.blob_name,
                    f.size_bytes,
                    f.width,
                    f.height,
                    f.taken_at,
                    f.frame_number,
                    f.time_s,
                    clip["id"],
                ),
            )
            row = self.cur.fetchone()
            if row is None:
                self.cur.execute(
                    "SELECT id FROM images WHERE clip_image_id = %s AND frame_number = %s",
                    (clip["id"], f.frame_number),
                )
                row = self.cur.fetchone()
            ids.append(row["id"])
        return ids

    def tag_detections(self, frame_image_id: int, frame_number: int, time_s: float) -> None:
        """Each detection of a frame carries the frame's number and time (MegaDetector's video fields)."""
        self.cur.execute(
            "UPDATE detections SET frame_number = %s, frame_time_s = %s WHERE image_id = %s",
            (frame_number, time_s, frame_image_id),
        )

    def record_clip(self, clip_id: int, video: dict[str, Any], reason: str | None) -> None:
        """What the service said about the whole clip, and a note (e.g. cut off) in ``reason``."""
        self.cur.execute(
            "UPDATE images SET video = %s, reason = COALESCE(%s, reason) WHERE id = %s",
            (Json(video), reason, clip_id),
        )

    def mark_clip_decided(self, clip_id: int, event_id: int | None, alert_id: int | None) -> None:
        """The clip is decided with its frames. Their event and alert are noted in ``video`` only: the
        clip's own ``event_id``/``alert_id`` stay NULL, so that the clip never counts as a photo of the
        burst (the decision loads an event's photos by those columns)."""
        self.cur.execute(
            "UPDATE images SET decided_at = now(), video = COALESCE(video, '{}'::jsonb) || %s WHERE id = %s",
            (Json({"event_id": event_id, "alert_id": alert_id}), clip_id),
        )

    def frames_of(self, clip_id: int) -> list[dict[str, Any]]:
        self.cur.execute(
            "SELECT id, frame_number, frame_time_s, blob_name, status, event_id, alert_id FROM images "
            "WHERE clip_image_id = %s ORDER BY frame_number",
            (clip_id,),
        )
        return [dict(r) for r in self.cur.fetchall()]
