"""What the park console (functions/console/) reads and writes in PostgreSQL: one-time sign-in links and
sessions (migration 0017_console.sql: only SHA-256 hashes of tokens are stored), and the reads behind its
pages (map, alerts feed, alert page, proposals, precision, configuration, audit log).

Every query is parameterized; every list is bounded (``LIMIT``) and uses an index, so a page stays fast with
500 cameras and 10,000 alerts (bench/console_load.py).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from ..db import Database
from .audit_repo import AuditRepository

PAGE_SIZE = 50


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- sign-in links and sessions -----------------------------------------------------------------------
    def add_link(
        self, token: str, user: str, role: str, ttl_s: int, created_by: str | None
    ) -> dict[str, Any]:
        return self.db.fetchone(
            "INSERT INTO console_login_links (token_hash, user_name, role, created_by, expires_at) "
            "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) "
            "RETURNING id, user_name, role, expires_at",
            (token_hash(token), user, role, created_by, ttl_s),
        )

    def use_link(self, token: str, session_token: str, session_ttl_s: int) -> dict[str, Any] | None:
        """Mark the link used and open a session, in one transaction; None when the link is unknown, used or
        expired (the row lock makes two simultaneous uses open one session)."""
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE console_login_links SET used_at = now() WHERE token_hash = %s AND used_at IS NULL "
                "AND expires_at > now() RETURNING id, user_name, role",
                (token_hash(token),),
            )
            link = cur.fetchone()
            if link is None:
                return None
            cur.execute(
                "INSERT INTO console_sessions (token_hash, user_name, role, link_id, expires_at) "
                "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))",
                (token_hash(session_token), link["user_name"], link["role"], link["id"], session_ttl_s),
            )
            return dict(link)

    def link_state(self, token: str) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT id, user_name, role, used_at, expires_at, expires_at <= now() AS expired "
            "FROM console_login_links WHERE token_hash = %s",
            (token_hash(token),),
        )

    def session(self, session_token: str) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT user_name, role, expires_at FROM console_sessions "
            "WHERE token_hash = %s AND expires_at > now()",
            (token_hash(session_token),),
        )

    def end_session(self, session_token: str) -> None:
        self.db.execute("DELETE FROM console_sessions WHERE token_hash = %s", (token_hash(session_token),))

    def parks(self) -> list[dict[str, Any]]:
        return self.db.fetchall("SELECT id, slug, name, timezone, settings FROM parks ORDER BY slug")

    def map_cameras(self, park_id: int | None) -> list[dict[str, Any]]:
        """Cameras with position, raised health conditions, last photo and alert counts (24 h, 7 days)."""
        return self.db.fetchall(
            """SELECT c.id, c.name, c.park_id, p.slug AS park, c.latitude, c.longitude, c.last_seen_at,
                      c.serials, c.brand, c.zone, c.active, c.token_rotated_at,
                      COALESCE((SELECT array_agg(h.condition ORDER BY h.condition) FROM camera_health h
                                WHERE h.camera_id = c.id AND h.status = 'raised'), '{}') AS conditions,
                      (SELECT i.id FROM images i WHERE i.camera_id = c.id AND i.blob_name IS NOT NULL
                       ORDER BY i.taken_at DESC NULLS LAST LIMIT 1) AS last_image_id,
                      (SELECT count(*) FROM alerts a WHERE a.camera_id = c.id AND a.kind = 'detection'
                       AND a.last_image_at > now() - interval '24 hours') AS alerts_24h,
                      (SELECT count(*) FROM alerts a WHERE a.camera_id = c.id AND a.kind = 'detection'
                       AND a.last_image_at > now() - interval '7 days') AS alerts_7d
               FROM cameras c JOIN parks p ON p.id = c.park_id
               WHERE (%(park)s::bigint IS NULL OR c.park_id = %(park)s)
               ORDER BY p.slug, c.name""",
            {"park": park_id},
        )

    def alerts(
        self,
        *,
        park_id: int | None = None,
        camera_id: int | None = None,
        category: str | None = None,
        state: str | None = None,
        before_id: int | None = None,
        after_id: int | None = None,
        limit: int = PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """Detection alerts, newest first (keyset pagination on id). ``state``: the latest feedback verdict
        ('open' when nobody gave one)."""
        return self.db.fetchall(
            """SELECT a.id, a.park_id, p.slug AS park, a.camera_id, c.name AS camera, a.categories,
                      a.max_conf,
                      a.image_count, a.best_image_id, a.started_at, a.last_image_at, a.created_at, a.title,
                      a.version, COALESCE(f.verdict, 'open') AS state
               FROM alerts a JOIN parks p ON p.id = a.park_id JOIN cameras c ON c.id = a.camera_id
               LEFT JOIN LATERAL (SELECT verdict FROM feedback fb WHERE fb.alert_id = a.id
                                  AND fb.image_id IS NULL
                                  ORDER BY fb.created_at DESC LIMIT 1) f ON true
               WHERE a.kind = 'detection'
                 AND (%(park)s::bigint IS NULL OR a.park_id = %(park)s)
                 AND (%(camera)s::bigint IS NULL OR a.camera_id = %(camera)s)
                 AND (%(category)s::text IS NULL OR %(category)s = ANY(a.categories))
                 AND (%(state)s::text IS NULL OR COALESCE(f.verdict, 'open') = %(state)s)
                 AND (%(before)s::bigint IS NULL OR a.id < %(before)s)
                 AND (%(after)s::bigint IS NULL OR a.id > %(after)s)
               ORDER BY a.id DESC LIMIT %(limit)s""",
            {
                "park": park_id,
                "camera": camera_id,
                "category": category,
                "state": state,
                "before": before_id,
                "after": after_id,
                "limit": limit,
            },
        )

    def latest_alert_id(self) -> int:
        row = self.db.fetchone("SELECT COALESCE(max(id), 0) AS id FROM alerts WHERE kind = 'detection'")
        return int(row["id"])

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        return self.db.fetchone(
            """SELECT a.*, p.slug AS park, p.name AS park_name, c.name AS camera, c.latitude, c.longitude
               FROM alerts a JOIN parks p ON p.id = a.park_id JOIN cameras c ON c.id = a.camera_id
               WHERE a.id = %s""",
            (alert_id,),
        )

    def alert_images(self, alert_id: int) -> list[dict[str, Any]]:
        return self.db.fetchall(
            """SELECT i.id, i.filename, i.width, i.height, i.taken_at, i.created_at AS received_at,
                      i.scored_at,
                      i.status, i.night, i.assessment,
                      COALESCE((SELECT json_agg(json_build_object('category', d.category, 'conf', d.conf,
                                  'x', d.bbox_x, 'y', d.bbox_y, 'w', d.bbox_w, 'h', d.bbox_h,
                                  'suppressed', d.suppression_id IS NOT NULL) ORDER BY d.conf DESC)
                                FROM detections d WHERE d.image_id = i.id), '[]') AS detections
               FROM images i WHERE i.alert_id = %s ORDER BY i.taken_at NULLS LAST, i.id LIMIT 100""",
            (alert_id,),
        )

    def alert_deliveries(self, alert_id: int) -> list[dict[str, Any]]:
        return self.db.fetchall(
            """SELECT ch.name AS channel, ch.kind, d.status, d.attempts, d.last_error, d.delivered_version,
                      d.delivered_at, d.updated_at, d.permanent, d.fix
               FROM deliveries d JOIN channels ch ON ch.id = d.channel_id WHERE d.alert_id = %s
               ORDER BY ch.name""",
            (alert_id,),
        )

    def alert_feedback(self, alert_id: int) -> list[dict[str, Any]]:
        return self.db.fetchall(
            "SELECT id, image_id, verdict, what, note, user_name, user_role, created_at FROM feedback "
            "WHERE alert_id = %s ORDER BY created_at DESC LIMIT 100",
            (alert_id,),
        )

    def image(self, image_id: int) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT id, park_id, blob_name, content_type FROM images WHERE id = %s", (image_id,)
        )

    def camera(self, camera_id: int) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT c.*, p.slug AS park FROM cameras c JOIN parks p ON p.id = c.park_id WHERE c.id = %s",
            (camera_id,),
        )

    def place_camera(
        self, camera_id: int, latitude: float, longitude: float, serials: list[str] | None
    ) -> dict[str, Any] | None:
        return self.db.fetchone(
            "UPDATE cameras SET latitude = %s, longitude = %s, serials = COALESCE(%s, serials) WHERE id = %s "
            "RETURNING id, park_id, name, latitude, longitude, serials",
            (latitude, longitude, serials, camera_id),
        )

    def rules(self, park_id: int | None) -> list[dict[str, Any]]:
        return self.db.fetchall(
            """SELECT r.id, r.park_id, p.slug AS park, r.camera_id, c.name AS camera, r.rules, r.updated_at,
                      r.updated_by
               FROM alert_rules r JOIN parks p ON p.id = r.park_id LEFT JOIN cameras c ON c.id = r.camera_id
               WHERE (%(park)s::bigint IS NULL OR r.park_id = %(park)s)
               ORDER BY p.slug, c.name NULLS FIRST""",
            {"park": park_id},
        )

    def channels(self, park_id: int | None) -> list[dict[str, Any]]:
        return self.db.fetchall(
            """SELECT ch.id, ch.park_id, p.slug AS park, ch.name, ch.kind, ch.purpose, ch.zone, ch.enabled
               FROM channels ch JOIN parks p ON p.id = ch.park_id
               WHERE (%(park)s::bigint IS NULL OR ch.park_id = %(park)s) ORDER BY p.slug, ch.name""",
            {"park": park_id},
        )

    def audit_log(self, limit: int = 200, before_id: int | None = None) -> list[dict[str, Any]]:
        """The audit log page (AuditRepository.list of every park), without the park ids."""
        rows = AuditRepository(self.db).list(None, limit, before_id)
        return [{k: v for k, v in r.items() if k != "park_id"} for r in rows]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
