"""The state of the pipeline at a glance (GET /api/ops/status, the ops page, `trapalert ops status`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from .. import names
from ..adapters.ops_repo import OpsRepository
from . import poison as ops_poison

log = logging.getLogger(__name__)


def queue_depths(storage) -> dict[str, int | None]:
    """Approximate message count of every queue the app declares (None: not readable now)."""
    out: dict[str, int | None] = {}
    for q in names.ALL_QUEUES:
        try:
            out[q] = storage.queue_depth(q)
        except Exception as exc:  # noqa: BLE001 - show the rest
            log.warning("depth of %s unavailable: %s", q, exc)
            out[q] = None
    return out


def cameras(db) -> list[dict[str, Any]]:
    """Active cameras with last-seen time and their raised health conditions."""
    return OpsRepository(db).cameras()


def status(svc) -> dict[str, Any]:
    cams = cameras(svc.db)
    conditions: dict[str, int] = {}
    for c in cams:
        for cond in c["health"]:
            conditions[cond] = conditions.get(cond, 0) + 1
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "queues": queue_depths(svc.storage),
        "poison": ops_poison.counts(svc.db),
        "cameras": {
            "total": len(cams),
            "unhealthy": sum(1 for c in cams if c["health"]),
            "conditions": conditions,
        },
        "quarantined_emails": OpsRepository(svc.db).quarantined_emails(),
    }
