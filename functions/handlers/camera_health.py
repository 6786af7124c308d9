"""The camera-health timer: find cameras that went silent, report low battery / bad temperature / a clock far
off, raise one health alert per camera and condition, and clear it when the camera is fine again.

Decisions are in functions/domain/health.py; this module reads the facts and records the transitions.
Per (camera, condition) the state is one row of camera_health: a transition is claimed atomically
(INSERT .. ON CONFLICT .. WHERE status = 'cleared'), so two timer runs at once (scale-out) raise it once.

How a health alert reaches the park's channels (the send-alert function does the delivery):
- raise: an ``alerts`` row with kind='health' (title and details say what), then SendAlert(reason='health');
- clear: the same alert row gets version + 1 and details.cleared_at, then SendAlert(reason='health_cleared').
The SendAlert to enqueue is kept in camera_health.pending_send until the enqueue succeeded (an outbox):
a run that died in between is finished by the next run; send-alert is idempotent per alert version.

Facts read from the latest accepted email of each camera (inbound_emails.meta, filled by process-email):
``battery_pct`` (number 0-100), ``battery_low`` (boolean, the camera's own flag), ``temperature_c``
(number, °C); and from the latest image with an EXIF time: ``received_at - taken_at`` (clock skew).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from ..domain.health import CameraReport, Finding, Thresholds, clock_skew_s, evaluate, transitions
from ..messages import SendAlert
from ..names import SEND_ALERT_QUEUE
from ..ops import metrics
from ..telemetry import span

log = logging.getLogger(__name__)

META_BATTERY_PCT = "battery_pct"
META_BATTERY_LOW = "battery_low"
META_TEMPERATURE_C = "temperature_c"

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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "low"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "0", "ok"):
        return False
    return None


def report_of(row: dict[str, Any]) -> CameraReport:
    meta = row.get("meta") or {}
    park_health = (row.get("park_settings") or {}).get("health")
    cam_health = (row.get("overrides") or {}).get("health")
    return CameraReport(
        camera_id=row["id"],
        name=row["name"],
        expected_interval_s=row["expected_interval_s"],
        last_seen_at=row.get("last_seen_at"),
        registered_at=row.get("created_at"),
        battery_pct=_number(meta.get(META_BATTERY_PCT)),
        battery_low=_flag(meta.get(META_BATTERY_LOW)),
        temperature_c=_number(meta.get(META_TEMPERATURE_C)),
        clock_skew_s=clock_skew_s(row.get("email_received_at"), row.get("taken_at")),
        thresholds=Thresholds.merged(park_health, cam_health),
    )


def handle(timer, svc, now: datetime | None = None) -> dict[str, Any]:
    """One run of the camera-health timer; returns what it did (for logs, the CLI and tests)."""
    now = now or datetime.now(UTC)
    done: dict[str, Any] = {"raised": [], "cleared": [], "resent": 0, "cameras": 0}
    with span("trapalert.camera_health"):
        done["resent"] = resend_pending(svc)
        for row in svc.db.fetchall(_FACTS_SQL):
            done["cameras"] += 1
            findings = evaluate(report_of(row), now)
            todo = transitions(findings, set(row["raised"] or []))
            for finding in todo.raise_:
                if _raise(svc, row, finding):
                    done["raised"].append({"camera_id": row["id"], "condition": finding.condition})
            for finding in todo.clear:
                if _clear(svc, row, finding):
                    done["cleared"].append({"camera_id": row["id"], "condition": finding.condition})
    if done["raised"] or done["cleared"]:
        log.info(
            "camera health: %d raised, %d cleared",
            len(done["raised"]),
            len(done["cleared"]),
            extra={"raised": done["raised"], "cleared": done["cleared"]},
        )
    return done


def _raise(svc, row: dict[str, Any], finding: Finding) -> bool:
    cid = uuid.uuid4()
    with svc.db.transaction() as cur:
        cur.execute(
            "INSERT INTO camera_health (camera_id, condition, status, raised_at, details) "
            "VALUES (%(cam)s, %(cond)s, 'raised', now(), %(details)s) "
            "ON CONFLICT (camera_id, condition) DO UPDATE SET status = 'raised', raised_at = now(), "
            "cleared_at = NULL, details = EXCLUDED.details, updated_at = now() "
            "WHERE camera_health.status = 'cleared' RETURNING camera_id",
            {"cam": row["id"], "cond": finding.condition, "details": json.dumps(finding.details)},
        )
        if cur.fetchone() is None:
            return False  # raised already (another run got there first)
        cur.execute(
            "INSERT INTO alerts (park_id, camera_id, kind, started_at, last_image_at, title, details, "
            "correlation_id) VALUES (%s, %s, 'health', now(), coalesce(%s, now()), %s, %s, %s) RETURNING id",
            (
                row["park_id"],
                row["id"],
                row.get("last_seen_at"),
                finding.title,
                json.dumps(
                    {
                        "condition": finding.condition,
                        "status": "raised",
                        "summary": finding.title,
                        **finding.details,
                    }
                ),
                str(cid),
            ),
        )
        alert_id = cur.fetchone()["id"]
        cur.execute(
            "UPDATE camera_health SET alert_id = %s, pending_send = 'health' "
            "WHERE camera_id = %s AND condition = %s",
            (alert_id, row["id"], finding.condition),
        )
    metrics.health_transition(finding.condition, "raised")
    metrics.alert_raised(kind="health", reason="health")
    log.warning(
        "health alert %s raised: %s",
        alert_id,
        finding.title,
        extra={"camera_id": row["id"], "condition": finding.condition, "correlation_id": str(cid)},
    )
    _send(svc, row["id"], finding.condition)
    return True


def _clear(svc, row: dict[str, Any], finding: Finding) -> bool:
    with svc.db.transaction() as cur:
        cur.execute(
            "UPDATE camera_health SET status = 'cleared', cleared_at = now(), updated_at = now(), "
            "pending_send = CASE WHEN alert_id IS NULL THEN NULL ELSE 'health_cleared' END "
            "WHERE camera_id = %s AND condition = %s AND status = 'raised' RETURNING alert_id",
            (row["id"], finding.condition),
        )
        claimed = cur.fetchone()
        if claimed is None:
            return False
        if claimed["alert_id"] is not None:
            title = f"Camera {row['name']}: back to normal ({finding.condition.replace('_', ' ')} cleared)."
            cur.execute(
                "UPDATE alerts SET version = version + 1, updated_at = now(), title = %s, "
                "details = details || %s::jsonb WHERE id = %s",
                (
                    title,
                    json.dumps(
                        {
                            "status": "cleared",
                            "summary": title,
                            "cleared_at": datetime.now(UTC).isoformat(),
                            "now": finding.details,
                        }
                    ),
                    claimed["alert_id"],
                ),
            )
    metrics.health_transition(finding.condition, "cleared")
    metrics.alert_raised(kind="health", reason="health_cleared")
    log.info("health condition %s of camera %s cleared", finding.condition, row["id"])
    _send(svc, row["id"], finding.condition)
    return True


def _send(svc, camera_id: int, condition: str) -> bool:
    """Enqueue the pending SendAlert of one (camera, condition); clear the outbox mark on success."""
    row = svc.db.fetchone(
        "SELECT h.pending_send, h.alert_id, a.version, a.correlation_id FROM camera_health h "
        "JOIN alerts a ON a.id = h.alert_id WHERE h.camera_id = %s AND h.condition = %s "
        "AND h.pending_send IS NOT NULL",
        (camera_id, condition),
    )
    if row is None:
        return False
    msg = SendAlert(
        alert_id=row["alert_id"],
        version=row["version"],
        reason=row["pending_send"],
        correlation_id=row["correlation_id"],
    )
    try:
        svc.storage.enqueue(SEND_ALERT_QUEUE, msg)
    except Exception as exc:  # noqa: BLE001 - the next run sends it (outbox)
        log.warning(
            "could not enqueue %s for alert %s (next run retries): %s",
            row["pending_send"],
            row["alert_id"],
            exc,
        )
        return False
    svc.db.execute(
        "UPDATE camera_health SET pending_send = NULL WHERE camera_id = %s AND condition = %s "
        "AND pending_send = %s",
        (camera_id, condition, row["pending_send"]),
    )
    return True


def resend_pending(svc) -> int:
    """Finish transitions whose SendAlert was not enqueued (a previous run died or storage was down)."""
    rows = svc.db.fetchall("SELECT camera_id, condition FROM camera_health WHERE pending_send IS NOT NULL")
    return sum(1 for r in rows if _send(svc, r["camera_id"], r["condition"]))


def current(db, park: str | None = None) -> list[dict[str, Any]]:
    """Raised conditions (for the ops page, status and `trapalert health list`)."""
    return db.fetchall(
        "SELECT h.camera_id, c.name AS camera, p.slug AS park, h.condition, h.raised_at, h.alert_id, "
        "h.details "
        "FROM camera_health h JOIN cameras c ON c.id = h.camera_id JOIN parks p ON p.id = c.park_id "
        "WHERE h.status = 'raised' AND (%(park)s::text IS NULL OR p.slug = %(park)s) "
        "ORDER BY h.raised_at DESC",
        {"park": park},
    )
