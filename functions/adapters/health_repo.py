"""Camera health in PostgreSQL: the facts the timer reads, and the raise/clear transitions it records.

Per (camera, condition) the state is one row of ``camera_health``. A transition is claimed atomically
(``INSERT .. ON CONFLICT .. WHERE status = 'cleared'`` to raise, ``UPDATE .. WHERE status = 'raised'`` to
clear), so two timer runs at once (scale-out) record it once.

A transition and the SendAlert that announces it commit together: the message is written to the outbox
(scope ``camera-health``) in the transition's transaction, and the handler flushes that scope after the
commit (functions/adapters/outbox.py).
- raise: a new ``alerts`` row with kind='health' (version 1), then SendAlert(reason='health', version=1);
- clear: the same alert row gets version + 1 and details.cleared_at, then SendAlert(reason='health_cleared').
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..db import Database
from ..messages import SendAlert
from ..names import SEND_ALERT_QUEUE
from .outbox import Outbox, OutboxMessage

OUTBOX_SCOPE = "camera-health"

_FACTS_SQL = """
SELECT c.id, c.park_id, c.name, c.expected_interval_s, c.created_at, c.overrides,
       greatest(c.last_seen_at, e.received_at) AS last_seen_at,
       p.settings AS park_settings, e.meta,
       i.taken_at, i.email_received_at,
       coalesce((SELECT array_agg(h.condition) FROM camera_health h
                 WHERE h.camera_id = c.id AND h.status = 'raised'), '{}') AS raised
FROM cameras c
JOIN parks p ON p.id = c.park_id
LEFT JOIN LATERAL (
    SELECT ie.meta, ie.received_at FROM inbound_emails ie
    WHERE ie.camera_id = c.id AND ie.status IN ('accepted', 'released')
    ORDER BY ie.received_at DESC LIMIT 1) e ON true
LEFT JOIN LATERAL (
    SELECT im.taken_at, ie.received_at AS email_received_at FROM images im
    JOIN inbound_emails ie ON ie.id = im.email_id
    WHERE im.camera_id = c.id AND im.taken_at_source = 'exif' AND im.taken_at IS NOT NULL
    ORDER BY ie.received_at DESC, im.attachment_index LIMIT 1) i ON true
WHERE c.active
ORDER BY c.id
"""


@dataclass(frozen=True)
class Recorded:
    """A transition this call claimed. ``alert_id`` is None when a cleared condition's alert row is gone
    (deleted): the condition is cleared and there is nothing to announce."""

    alert_id: int | None
    version: int | None = None
    correlation_id: uuid.UUID | None = None


class HealthRepository:
    def __init__(self, db: Database):
        self.db = db

    def facts(self) -> list[dict[str, Any]]:
        """One row per active camera: what functions.domain.health.report_of reads, plus ``park_id`` and
        ``raised`` (the conditions raised now)."""
        return self.db.fetchall(_FACTS_SQL)

    def raise_condition(
        self,
        *,
        camera_id: int,
        park_id: int,
        condition: str,
        details: dict[str, Any],
        title: str,
        alert_details: dict[str, Any],
        last_seen_at: datetime | None,
    ) -> Recorded | None:
        """Raise ``condition`` of a camera: open its health alert and write SendAlert(reason='health') to the
        outbox, in one transaction. None when it is raised already (another run got there first)."""
        correlation_id = uuid.uuid4()
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO camera_health (camera_id, condition, status, raised_at, details) "
                "VALUES (%(cam)s, %(cond)s, 'raised', now(), %(details)s) "
                "ON CONFLICT (camera_id, condition) DO UPDATE SET status = 'raised', raised_at = now(), "
                "cleared_at = NULL, details = EXCLUDED.details, updated_at = now() "
                "WHERE camera_health.status = 'cleared' RETURNING camera_id",
                {"cam": camera_id, "cond": condition, "details": json.dumps(details)},
            )
            if cur.fetchone() is None:
                return None
            cur.execute(
                "INSERT INTO alerts (park_id, camera_id, kind, started_at, last_image_at, title, details, "
                "correlation_id) VALUES (%s, %s, 'health', now(), coalesce(%s, now()), %s, %s, %s) "
                "RETURNING id, version",
                (park_id, camera_id, last_seen_at, title, json.dumps(alert_details), str(correlation_id)),
            )
            alert = cur.fetchone()
            cur.execute(
                "UPDATE camera_health SET alert_id = %s WHERE camera_id = %s AND condition = %s",
                (alert["id"], camera_id, condition),
            )
            recorded = Recorded(alert["id"], alert["version"], correlation_id)
            _announce(cur, recorded, "health")
        return recorded

    def clear_condition(
        self, *, camera_id: int, condition: str, title: str, alert_details: dict[str, Any]
    ) -> Recorded | None:
        """Clear ``condition`` of a camera: bump its alert's version (title, details merged) and write
        SendAlert(reason='health_cleared') to the outbox, in one transaction. None when it is not raised
        (cleared already by another run)."""
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE camera_health SET status = 'cleared', cleared_at = now(), updated_at = now() "
                "WHERE camera_id = %s AND condition = %s AND status = 'raised' RETURNING alert_id",
                (camera_id, condition),
            )
            claimed = cur.fetchone()
            if claimed is None:
                return None
            if claimed["alert_id"] is None:
                return Recorded(None)
            cur.execute(
                "UPDATE alerts SET version = version + 1, updated_at = now(), title = %s, "
                "details = details || %s::jsonb WHERE id = %s RETURNING id, version, correlation_id",
                (title, json.dumps(alert_details), claimed["alert_id"]),
            )
            alert = cur.fetchone()
            if alert is None:  # the alert row went between the two statements
                return Recorded(None)
            cid = alert["correlation_id"]  # old alert rows may have none
            recorded = Recorded(alert["id"], alert["version"], uuid.UUID(str(cid)) if cid else uuid.uuid4())
            _announce(cur, recorded, "health_cleared")
        return recorded

    def current(self, park: str | None = None) -> list[dict[str, Any]]:
        """Raised conditions, newest first (for the ops page, status and `trapalert health list`)."""
        return self.db.fetchall(
            "SELECT h.camera_id, c.name AS camera, p.slug AS park, h.condition, h.raised_at, h.alert_id, "
            "h.details "
            "FROM camera_health h JOIN cameras c ON c.id = h.camera_id JOIN parks p ON p.id = c.park_id "
            "WHERE h.status = 'raised' AND (%(park)s::text IS NULL OR p.slug = %(park)s) "
            "ORDER BY h.raised_at DESC",
            {"park": park},
        )


def _announce(cur, recorded: Recorded, reason: Literal["health", "health_cleared"]) -> None:
    """Write the SendAlert of a transition to the outbox, in the transition's transaction."""
    assert recorded.alert_id is not None and recorded.version is not None
    assert recorded.correlation_id is not None
    message = SendAlert(
        alert_id=recorded.alert_id,
        version=recorded.version,
        reason=reason,
        correlation_id=recorded.correlation_id,
    )
    Outbox.add(
        cur,
        OutboxMessage(
            queue=SEND_ALERT_QUEUE,
            message=message,
            key=f"send-alert:{recorded.alert_id}:v{recorded.version}",
            scope=OUTBOX_SCOPE,
        ),
    )
