"""The camera-health timer: find cameras that went silent, report low battery / bad temperature / a clock far
off, raise one health alert per camera and condition, and clear it when the camera is fine again.

Decisions are in functions/domain/health.py; the facts and the transitions are in
functions/adapters/health_repo.py; this module orchestrates: read facts, decide, record, send.

How a health alert reaches the park's channels (the send-alert function does the delivery):
- raise: an ``alerts`` row with kind='health' (title and details say what), then SendAlert(reason='health');
- clear: the same alert row gets version + 1 and details.cleared_at, then SendAlert(reason='health_cleared').
Each SendAlert is written to the outbox in the transition's transaction and flushed after the commit; a
flush that fails (storage unreachable) is left for the next run, which flushes the scope first.
send-alert is idempotent per alert version.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from ..adapters.health_repo import OUTBOX_SCOPE, HealthRepository
from ..domain.health import (
    alert_details,
    cleared_details,
    cleared_title,
    evaluate,
    report_of,
    transitions,
)
from ..ops import metrics
from ..telemetry import span

log = logging.getLogger(__name__)


def handle(timer, svc, now: datetime | None = None) -> dict[str, Any]:
    """One run of the camera-health timer; returns what it did (for logs, the CLI and tests)."""
    now = now or datetime.now(UTC)
    repo = HealthRepository(svc.db)
    done: dict[str, Any] = {"raised": [], "cleared": [], "resent": 0, "cameras": 0}
    with span("trapalert.camera_health"):
        resent = _flush(svc)  # what an earlier run recorded but could not send
        done["resent"] = resent or 0
        sending = resent is not None  # after a failed flush, leave the rest of this run to the next one
        for facts in repo.facts():
            done["cameras"] += 1
            todo = transitions(evaluate(report_of(facts), now), set(facts["raised"] or []))
            for finding in todo.raise_:
                raised = repo.raise_condition(
                    camera_id=facts["id"],
                    park_id=facts["park_id"],
                    condition=finding.condition,
                    details=finding.details,
                    title=finding.title,
                    alert_details=alert_details(finding),
                    last_seen_at=facts.get("last_seen_at"),
                )
                if raised is None:
                    continue  # raised already (another run got there first)
                metrics.health_transition(finding.condition, "raised")
                metrics.alert_raised(kind="health", reason="health")
                log.warning(
                    "health alert %s raised: %s",
                    raised.alert_id,
                    finding.title,
                    extra={
                        "camera_id": facts["id"],
                        "condition": finding.condition,
                        "correlation_id": str(raised.correlation_id),
                    },
                )
                done["raised"].append({"camera_id": facts["id"], "condition": finding.condition})
                sending = sending and _flush(svc) is not None
            for finding in todo.clear:
                title = cleared_title(facts["name"], finding.condition)
                cleared = repo.clear_condition(
                    camera_id=facts["id"],
                    condition=finding.condition,
                    title=title,
                    alert_details=cleared_details(title, finding, now),
                )
                if cleared is None:
                    continue  # cleared already (another run got there first)
                metrics.health_transition(finding.condition, "cleared")
                metrics.alert_raised(kind="health", reason="health_cleared")
                log.info("health condition %s of camera %s cleared", finding.condition, facts["id"])
                done["cleared"].append({"camera_id": facts["id"], "condition": finding.condition})
                sending = sending and _flush(svc) is not None
    if done["raised"] or done["cleared"]:
        log.info(
            "camera health: %d raised, %d cleared",
            len(done["raised"]),
            len(done["cleared"]),
            extra={"raised": done["raised"], "cleared": done["cleared"]},
        )
    return done


def _flush(svc) -> int | None:
    """Send the pending camera-health messages; how many were sent, or None when the queue is unreachable
    (they stay in the outbox: the next run sends them)."""
    outbox = svc.outbox  # outside the try: a Services without an outbox is a bug, not an outage
    try:
        return outbox.flush(OUTBOX_SCOPE)
    except Exception as exc:  # noqa: BLE001 - the next run resends them (outbox)
        log.warning("could not send the camera-health alerts (the next run resends them): %s", exc)
        return None


def current(db, park: str | None = None) -> list[dict[str, Any]]:
    """Raised conditions (for the ops page, status and `trapalert health list`)."""
    return HealthRepository(db).current(park)
