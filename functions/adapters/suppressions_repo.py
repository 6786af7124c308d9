"""Static false positives as operators see them (table suppressions): list them, lift one. The boxes a
decision reads and writes are loaded and saved with the camera's state (functions/adapters/alerts_repo.py);
what a box is and when it is suppressed is decided in functions/domain/suppression.py."""

from __future__ import annotations

from typing import Any

from ..db import Database


class SuppressionsRepository:
    def __init__(self, db: Database):
        self.db = db

    def suppressions(self, park_slug: str | None = None, include_all: bool = False) -> list[dict[str, Any]]:
        where, params = [], []
        if not include_all:
            where.append("s.status IN ('suppressed', 'lifted')")
        if park_slug:
            where.append("p.slug = %s")
            params.append(park_slug)
        sql = (
            "SELECT s.id, p.slug AS park, c.name AS camera, s.status, s.category, "
            "s.bbox_x, s.bbox_y, s.bbox_w, s.bbox_h, s.event_count, s.max_conf, "
            "s.first_seen_at, s.last_seen_at, s.suppressed_at, s.reason, "
            "s.lifted_at, s.lifted_by, s.lift_note FROM suppressions s JOIN cameras c ON c.id = s.camera_id "
            "JOIN parks p ON p.id = s.park_id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self.db.fetchall(sql + " ORDER BY s.id", tuple(params))

    def lift(self, suppression_id: int, by: str | None, note: str | None) -> dict[str, Any] | None:
        return self.db.fetchone(
            "UPDATE suppressions SET status = 'lifted', lifted_at = now(), lifted_by = %s, lift_note = %s "
            "WHERE id = %s AND status = 'suppressed' RETURNING id, status, camera_id",
            (by, note, suppression_id),
        )
