"""What the sweeper (functions/handlers/sweeper.py) looks for: work that should have moved on and is not
waiting for anything. Each query skips what waits for a retry: a message about the same thing (the outbox
``subject``) that is still pending, or was sent less than its delay plus ``stale_s`` ago."""

from __future__ import annotations

from typing import Any

from .. import names
from ..db import Database
from ..messages import BulkImage, ProcessImage, SendAlert
from .outbox import Outbox, OutboxMessage

SWEEP_SCOPE = "sweep"

_NOT_WAITING = """NOT EXISTS (
    SELECT 1 FROM outbox o WHERE o.subject = %(subject_prefix)s || {id}
      AND (o.sent_at IS NULL OR o.sent_at + make_interval(secs => o.delay_s + %(stale)s) > now()))"""


class SweeperRepository:
    def __init__(self, db: Database):
        self.db = db

    def stale_images(self, stale_s: float, window_s: float, limit: int = 500) -> list[dict[str, Any]]:
        """Photos stored, linked (given by a link, not fetched yet) or scored but not decided for ``stale_s``,
        younger than ``window_s`` (the retry horizon: older ones are the poison queue's), with no message
        about them in flight."""
        return self.db.fetchall(
            f"""SELECT i.id, COALESCE(i.blob_name, '') AS blob_name,
                       CASE WHEN e.mode = 'upload' THEN 'bulk' ELSE 'live' END AS lane,
                       i.park_id, i.camera_id, i.correlation_id FROM images i
                LEFT JOIN inbound_emails e ON e.id = i.email_id
                WHERE (i.status IN ('stored', 'linked') OR (i.status = 'scored' AND i.decided_at IS NULL))
                  AND i.created_at < now() - make_interval(secs => %(stale)s)
                  AND i.created_at > now() - make_interval(secs => %(window)s)
                  AND (i.blob_name IS NOT NULL OR i.status = 'linked') AND i.camera_id IS NOT NULL
                  AND {_NOT_WAITING.format(id="i.id")}
                ORDER BY i.id LIMIT %(limit)s""",
            {"stale": stale_s, "window": window_s, "limit": limit, "subject_prefix": "image:"},
        )

    def stale_alerts(self, stale_s: float, window_s: float, limit: int = 500) -> list[dict[str, Any]]:
        """Alerts updated more than ``stale_s`` ago (and within ``window_s``) that some enabled channel of
        their park and zone has not received at their current version, not failed permanently and not being
        sent right now, with no message about them in flight."""
        return self.db.fetchall(
            f"""SELECT a.id, a.version, a.kind, a.correlation_id FROM alerts a
                JOIN cameras c ON c.id = a.camera_id
                WHERE a.updated_at < now() - make_interval(secs => %(stale)s)
                  AND a.updated_at > now() - make_interval(secs => %(window)s)
                  AND EXISTS (
                      SELECT 1 FROM channels ch
                      LEFT JOIN deliveries d ON d.channel_id = ch.id AND d.alert_id = a.id
                      WHERE ch.park_id = a.park_id AND ch.enabled AND ch.purpose = 'alerts'
                        AND (ch.zone IS NULL OR ch.zone = c.zone)
                        AND (d.id IS NULL OR (d.delivered_version < a.version AND NOT d.permanent
                                              AND (d.claimed_until IS NULL OR d.claimed_until < now()))))
                  AND {_NOT_WAITING.format(id="a.id")}
                ORDER BY a.id LIMIT %(limit)s""",
            {"stale": stale_s, "window": window_s, "limit": limit, "subject_prefix": "alert:"},
        )

    def redrive(self, images: list[dict[str, Any]], alerts: list[dict[str, Any]], run: str) -> int:
        """Write a process-image message per image and a send-alert message per alert into the outbox (scope
        ``sweep``; the caller flushes it), once per sweep run ``run``. Returns how many were written."""
        written = 0
        with self.db.transaction() as cur:
            for i in images:
                fields = {
                    "image_id": i["id"],
                    "blob_name": i["blob_name"],
                    "park_id": i["park_id"],
                    "camera_id": i["camera_id"],
                    "correlation_id": i["correlation_id"],
                }
                if i.get("lane") == "bulk":  # an uploaded photo goes back to the bulk lane, not the live one
                    message, queue = BulkImage(**fields, purpose="upload"), names.BULK_IMAGE_QUEUE
                else:
                    message, queue = ProcessImage(**fields), names.PROCESS_IMAGE_QUEUE
                item = OutboxMessage(queue, message, f"sweep:image:{i['id']}:{run}", SWEEP_SCOPE)
                written += Outbox.add(cur, item)
            for a in alerts:
                message = SendAlert(
                    alert_id=a["id"],
                    version=a["version"],
                    reason="update",
                    correlation_id=a["correlation_id"],
                )
                item = OutboxMessage(
                    names.SEND_ALERT_QUEUE, message, f"sweep:alert:{a['id']}:{run}", SWEEP_SCOPE
                )
                written += Outbox.add(cur, item)
        return written
