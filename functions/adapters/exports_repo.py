"""What the science exports read (functions/exports/): a park, its cameras, its photos with their detections,
its events and the rangers' feedback on their alerts. Read only; what each row becomes in the MegaDetector
JSON or the Camtrap DP package is decided in functions/exports/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..db import Database

PAGE = 2000  # photos per query: a park's whole history is read page by page, never in one result


class ExportsRepository:
    def __init__(self, db: Database):
        self.db = db

    def park(self, slug: str) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT id, slug, name, timezone, created_at FROM parks WHERE slug = %s",
            (slug,),
        )

    def cameras(self, park_id: int, camera: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT c.id, c.name, c.brand, c.latitude, c.longitude, "
            "COALESCE(c.timezone, p.timezone, 'UTC') AS tz, c.active, c.created_at, c.last_seen_at, "
            "c.serials FROM cameras c JOIN parks p ON p.id = c.park_id "
            "WHERE c.park_id = %s"
        )
        params: list[Any] = [park_id]
        if camera is not None:
            sql += " AND c.name = %s"
            params.append(camera)
        return self.db.fetchall(sql + " ORDER BY c.name", tuple(params))

    def photos(
        self,
        park_id: int,
        since: datetime | None = None,
        until: datetime | None = None,
        camera_id: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The park's photos (and video clips, and the clips' kept frames: ``clip_image_id`` set) that have a
        blob, in id order, each with ``detections`` (a list of dicts: category, conf, bbox_x/y/w/h,
        suppressed, frame_number). A photo's time is when it was taken, else when it came."""
        where = ["i.park_id = %s", "i.blob_name IS NOT NULL"]
        params: list[Any] = [park_id]
        if since is not None:
            where.append("COALESCE(i.taken_at, i.created_at) >= %s")
            params.append(since)
        if until is not None:
            where.append("COALESCE(i.taken_at, i.created_at) < %s")
            params.append(until)
        if camera_id is not None:
            where.append("i.camera_id = %s")
            params.append(camera_id)
        after = 0
        while True:
            rows = self.db.fetchall(
                "SELECT i.id, i.camera_id, i.blob_name, i.filename, i.content_type, i.status, i.reason, "
                "COALESCE(i.taken_at, i.created_at) AS taken_at, i.taken_at_source, i.width, i.height, "
                "i.night, "
                "i.gps_latitude, i.gps_longitude, i.model_name, i.model_version, i.scored_at, i.event_id, "
                "i.clip_image_id, i.frame_number, i.video, "
                "COALESCE((SELECT json_agg(json_build_object('category', d.category, 'conf', d.conf, "
                "'bbox_x', d.bbox_x, 'bbox_y', d.bbox_y, 'bbox_w', d.bbox_w, 'bbox_h', d.bbox_h, "
                "'suppressed', d.suppression_id IS NOT NULL, 'frame_number', d.frame_number) ORDER BY d.id) "
                "FROM detections d WHERE d.image_id = i.id), '[]'::json) AS detections "
                "FROM images i WHERE " + " AND ".join(where) + " AND i.id > %s ORDER BY i.id LIMIT %s",
                (*params, after, PAGE),
            )
            yield from rows
            if len(rows) < PAGE:
                return
            after = rows[-1]["id"]

    def events(self, event_ids: list[int]) -> list[dict[str, Any]]:
        if not event_ids:
            return []
        return self.db.fetchall(
            "SELECT e.id, e.camera_id, e.started_at, e.last_image_at, e.image_count, e.alert_id, e.summary "
            "FROM events e WHERE e.id = ANY(%s) ORDER BY e.id",
            (event_ids,),
        )

    def feedback(self, alert_ids: list[int]) -> list[dict[str, Any]]:
        """The rangers' verdicts on these alerts, oldest first (the latest of each person counts)."""
        if not alert_ids:
            return []
        return self.db.fetchall(
            "SELECT id, alert_id, image_id, verdict, what, user_name, user_role, created_at FROM feedback "
            "WHERE alert_id = ANY(%s) ORDER BY created_at, id",
            (alert_ids,),
        )
