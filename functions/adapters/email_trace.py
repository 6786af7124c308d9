"""Read-only views that follow one inbound email through the pipeline (`trapalert simulate camera`): the email
by its Message-ID, and the alerts its images opened or joined with the channels each should reach. Images,
detections and deliveries come from their own repositories (InboundRepository, DeliveryRepository)."""

from __future__ import annotations

from typing import Any

from ..db import Database


class EmailTrace:
    def __init__(self, db: Database):
        self.db = db

    def email_by_message_id(self, message_id: str) -> dict[str, Any] | None:
        """The newest recorded email with this Message-ID (as given, or without its <>)."""
        return self.db.fetchone(
            "SELECT id, status, reason, camera_id, received_at FROM inbound_emails "
            "WHERE message_id = ANY(%s) ORDER BY id DESC LIMIT 1",
            ([message_id, message_id.strip("<>")],),
        )

    def alerts_of_images(self, image_ids: list[int]) -> list[dict[str, Any]]:
        """The alerts these images belong to (or are the best image of), each with ``channel_ids``: the park's
        enabled alert channels for the camera's zone."""
        return self.db.fetchall(
            """SELECT a.id, a.version, a.categories, a.max_conf, a.image_count, a.title,
                      COALESCE((SELECT array_agg(ch.id) FROM channels ch
                                WHERE ch.park_id = a.park_id AND ch.enabled AND ch.purpose = 'alerts'
                                  AND (ch.zone IS NULL OR ch.zone = c.zone)), '{}') AS channel_ids
               FROM alerts a JOIN cameras c ON c.id = a.camera_id
               WHERE a.id IN (SELECT alert_id FROM images WHERE id = ANY(%s) AND alert_id IS NOT NULL)
                  OR a.best_image_id = ANY(%s) ORDER BY a.id""",
            (image_ids, image_ids),
        )
