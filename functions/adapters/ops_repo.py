"""What ops reads and writes in PostgreSQL, apart from poison records (functions/adapters/poison_repo.py):
the rate-limit state of ops notifications (``ops_notify_state``), the ops channels, and the reads of the
status view (cameras with their health, quarantined emails, an image's blob for its thumbnail).

The claim "I send an ops notification now" is a row lock on the channel's ``ops_notify_state`` row, so it
holds across processes and instances (functions/ops/notify.py decides what to send).
"""

from __future__ import annotations

from typing import Any

from ..db import Database


class OpsRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- which ops channels -------------------------------------------------------------------------
    def park_of(self, *, alert_id: int | None = None, image_id: int | None = None) -> int | None:
        """The park of an alert or an image (None when unknown)."""
        if alert_id is not None:
            row = self.db.fetchone("SELECT park_id FROM alerts WHERE id = %s", (alert_id,))
        elif image_id is not None:
            row = self.db.fetchone("SELECT park_id FROM images WHERE id = %s", (image_id,))
        else:
            return None
        return row["park_id"] if row else None

    def ops_channels(self, park_ids: list[int] | None) -> list[dict[str, Any]]:
        """Enabled ops channels (purpose 'ops') of ``park_ids``, of every park when None."""
        return self.db.fetchall(
            "SELECT c.id, c.park_id, c.kind, c.name, c.config, c.zone, c.enabled, p.slug AS park_slug, "
            "p.name AS park_name, p.settings AS park_settings "
            "FROM channels c JOIN parks p ON p.id = c.park_id "
            "WHERE c.purpose = 'ops' AND c.enabled "
            "AND (%(parks)s::bigint[] IS NULL OR c.park_id = ANY(%(parks)s)) "
            "ORDER BY c.id",
            {"parks": park_ids},
        )

    # -- the rate limit -----------------------------------------------------------------------------
    def claim(self, channel_id: int, interval_s: int, queue: str | None) -> dict[str, Any] | None:
        """In one transaction: either claim the right to send now (return the state before: what was
        suppressed) or count this event as suppressed (return None). ``queue`` None: a digest run, which
        claims only when something waits."""
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO ops_notify_state (channel_id) VALUES (%s) ON CONFLICT DO NOTHING", (channel_id,)
            )
            cur.execute(
                "SELECT *, (last_sent_at IS NULL OR last_sent_at <= now() - make_interval(secs => %s)) "
                "AS due FROM ops_notify_state WHERE channel_id = %s FOR UPDATE",
                (interval_s, channel_id),
            )
            state = dict(cur.fetchone())
            if queue is None and (state["suppressed"] == 0 or not state["due"]):
                return None
            if state["due"]:
                cur.execute(
                    "UPDATE ops_notify_state SET last_sent_at = now(), suppressed = 0, "
                    "suppressed_since = NULL, suppressed_queues = '{}' WHERE channel_id = %s",
                    (channel_id,),
                )
                return state
            cur.execute(
                "UPDATE ops_notify_state SET suppressed = suppressed + 1, "
                "suppressed_since = coalesce(suppressed_since, now()), "
                "suppressed_queues = CASE WHEN %(q)s = ANY(suppressed_queues) THEN suppressed_queues "
                "ELSE array_append(suppressed_queues, %(q)s) END WHERE channel_id = %(c)s",
                {"q": queue, "c": channel_id},
            )
            return None

    def unclaim(
        self, channel_id: int, previous: dict[str, Any], count: int, queues: list[str], error: str
    ) -> None:
        """The send failed: restore the previous send time and count what was not told, so it is retried."""
        self.db.execute(
            "UPDATE ops_notify_state SET last_sent_at = %(prev)s, suppressed = suppressed + %(n)s, "
            "suppressed_since = coalesce(suppressed_since, %(since)s, now()), "
            "suppressed_queues = ARRAY(SELECT DISTINCT unnest(suppressed_queues || %(qs)s::text[])), "
            "last_error = %(err)s WHERE channel_id = %(c)s",
            {
                "prev": previous.get("last_sent_at"),
                "n": count,
                "since": previous.get("suppressed_since"),
                "qs": queues,
                "err": error[:1000],
                "c": channel_id,
            },
        )

    def channels_with_suppressed(self) -> list[int]:
        """Ids of the channels with suppressed notifications waiting for a summary."""
        return [
            r["channel_id"]
            for r in self.db.fetchall(
                "SELECT channel_id FROM ops_notify_state WHERE suppressed > 0 ORDER BY channel_id"
            )
        ]

    # -- the status view ----------------------------------------------------------------------------
    def cameras(self) -> list[dict[str, Any]]:
        """Active cameras with last-seen time and their raised health conditions."""
        return self.db.fetchall(
            "SELECT c.id, c.name, p.slug AS park, c.brand, c.last_seen_at, c.expected_interval_s, "
            "coalesce(array_agg(h.condition ORDER BY h.condition) FILTER (WHERE h.status = 'raised'), '{}') "
            "AS health FROM cameras c JOIN parks p ON p.id = c.park_id "
            "LEFT JOIN camera_health h ON h.camera_id = c.id WHERE c.active "
            "GROUP BY c.id, p.slug ORDER BY p.slug, c.name"
        )

    def quarantined_emails(self) -> int:
        return int(
            self.db.fetchone("SELECT count(*) AS n FROM inbound_emails WHERE status = 'quarantined'")["n"]
        )

    def recent_alerts(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest alerts with camera, park and each channel's delivery (the ops page)."""
        return self.db.fetchall(
            "SELECT a.id, a.kind, a.title, a.categories, a.max_conf, a.image_count, a.best_image_id, "
            "a.version, a.created_at, a.correlation_id, c.name AS camera, p.slug AS park, "
            "coalesce((SELECT json_agg(json_build_object('channel', ch.name, 'kind', ch.kind, "
            "  'status', d.status, "
            "  'version', d.delivered_version, 'error', d.last_error) ORDER BY ch.name) "
            "  FROM deliveries d JOIN channels ch ON ch.id = d.channel_id WHERE d.alert_id = a.id), '[]') "
            "AS deliveries "
            "FROM alerts a JOIN cameras c ON c.id = a.camera_id JOIN parks p ON p.id = a.park_id "
            "ORDER BY a.created_at DESC, a.id DESC LIMIT %s",
            (limit,),
        )

    def recent_quarantined(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest quarantined emails (the ops page)."""
        return self.db.fetchall(
            "SELECT id, received_at, sender, to_address, subject, reason, attachment_count "
            "FROM inbound_emails WHERE status = 'quarantined' ORDER BY received_at DESC LIMIT %s",
            (limit,),
        )

    def image_blob(self, image_id: int) -> str | None:
        """The blob name of a stored image (None when unknown or not stored)."""
        row = self.db.fetchone("SELECT blob_name FROM images WHERE id = %s", (image_id,))
        return row["blob_name"] if row else None
