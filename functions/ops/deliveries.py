"""Deliveries that failed permanently (a channel refused for good: credentials, event type, config) and
wait for an operator: list them, and redeliver once the cause is fixed. The CLI (`trapalert deliveries`) and
the admin API (/api/ops/deliveries) use these functions."""

from __future__ import annotations

import logging
from typing import Any

from ..adapters.deliveries import DeliveryRepository

log = logging.getLogger(__name__)

REDELIVER_SCOPE = "redeliver"


def list_failures(db, park: str | None = None, channel: str | None = None, limit: int = 200) -> list[dict]:
    return DeliveryRepository(db).permanent_failures(park, channel, limit)


def redeliver(svc, park: str | None = None, channel: str | None = None, alert_id: int | None = None) -> dict:
    """Send again every permanently failed delivery that matches (by channel, park and/or alert); each
    channel's failure is cleared. What the channel already has is not sent twice (send-alert skips
    delivered versions). ``sent`` counts the messages put on the queue now; the rest wait in the outbox."""
    rows = DeliveryRepository(svc.db).redeliver(park, channel, alert_id)
    sent = svc.outbox.flush(REDELIVER_SCOPE) if rows else 0
    out: dict[str, Any] = {
        "redelivered": len(rows),
        "sent": sent,
        "deliveries": [{"id": r["id"], "alert_id": r["alert_id"], "channel": r["channel"]} for r in rows],
    }
    log.warning(
        "redelivery of %d deliveries (channel=%s park=%s alert=%s)", len(rows), channel, park, alert_id
    )
    return out
