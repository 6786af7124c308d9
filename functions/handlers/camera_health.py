"""The camera-health timer: find cameras that went silent, report low battery / bad temperature / a clock far
off, raise one health alert per camera and condition, and clear it when the camera is fine again. The timer
also raises ``neighbours_silent`` (neighbouring cameras silent together, one alert per group) and clears
``someone_at_camera`` after its quiet period; :func:`watch_photo`, called by process-image for each scored
photo, raises and clears ``someone_at_camera`` and ``view_changed`` with the photo (theft and tamper watch,
functions/domain/watch.py). Both use the same transitions and the same outbox scope.

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

from .. import names
from ..adapters.health_repo import OUTBOX_SCOPE, HealthRepository
from ..domain import watch
from ..domain.health import (
    Condition,
    Finding,
    Thresholds,
    alert_details,
    clear_title,
    cleared_details,
    evaluate,
    report_of,
    transitions,
)
from ..domain.rules import effective_rules
from ..domain.watch import Neighbour, PhotoFacts, neighbours_silent
from ..inbound.view_signature import view_signature
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
        rows = repo.facts()
        findings = {f["id"]: evaluate(report_of(f), now) for f in rows}
        for camera_id, finding in neighbours_silent(
            _neighbours(rows, findings), _park_thresholds(rows)
        ).items():
            findings[camera_id]["neighbours_silent"] = finding
        for facts in rows:
            done["cameras"] += 1
            todo = transitions(findings[facts["id"]], set(facts["raised"] or []))
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
                title = clear_title(facts["name"], finding)
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


def _park_thresholds(rows: list[dict[str, Any]]) -> dict[int, Thresholds]:
    """The thresholds of each park's neighbours check: the park's health settings (not a camera's)."""
    return {r["park_id"]: Thresholds.merged((r.get("park_settings") or {}).get("health")) for r in rows}


def _neighbours(rows: list[dict[str, Any]], findings: dict[int, dict[Condition, Finding]]) -> list[Neighbour]:
    out = []
    for r in rows:
        group = ((r.get("raised_details") or {}).get("neighbours_silent") or {}).get("camera_ids") or []
        silent = findings[r["id"]].get("silent")
        out.append(
            Neighbour(
                camera_id=r["id"],
                park_id=r["park_id"],
                name=r["name"],
                silent=bool(silent and silent.active),
                since=r.get("last_seen_at") or r.get("created_at"),
                zone=r.get("zone"),
                latitude=r.get("latitude"),
                longitude=r.get("longitude"),
                group=tuple(int(i) for i in group),
            )
        )
    return out


def watch_photo(svc, image_id: int, camera_id: int, data: bytes | None = None) -> dict[str, Any] | None:
    """The theft and tamper watch of one scored photo, called by process-image right after the photo's
    decision (functions/domain/watch.py decides ``someone_at_camera`` and ``view_changed``): store the
    photo's view signature and watch record, raise or clear the conditions, and send what changed.

    ``data``: the photo's bytes when process-image has them (else they are read again from Blob Storage).
    Safe to repeat: a photo is watched once (its record and the transitions commit together, with their
    SendAlert in the outbox); a redelivered message only flushes what an earlier attempt left. A flush that
    fails raises, so the message is retried (as for detection alerts). Returns what it did, or None when
    the photo was watched already or is not scored."""
    repo = HealthRepository(svc.db)
    image = repo.photo(image_id)
    if image is None or image["status"] != "scored" or image["watch"] is not None:
        svc.outbox.flush(OUTBOX_SCOPE)
        return None
    if data is None and image["blob_name"]:
        data = svc.storage.get_blob(names.IMAGES_CONTAINER, image["blob_name"])
    sig = view_signature(data) if data else None
    now = datetime.now(UTC)
    done: dict[str, Any] = {"raised": [], "cleared": [], "adopted": False}
    with repo.watching(camera_id, image_id) as w:
        if w.camera is None or w.image is None or w.image["watch"] is not None:
            return None
        t = Thresholds.merged(
            (w.camera["park_settings"] or {}).get("health"), (w.camera["overrides"] or {}).get("health")
        )
        rules = effective_rules(*w.rule_layers())
        raised = w.raised()
        regime = watch.regime_of(sig)
        result = watch.watch_photo(
            PhotoFacts(
                camera_name=w.camera["name"],
                image_id=image_id,
                sig=sig,
                detections=tuple(w.detections()),
                person_threshold=rules.threshold_for("person", bool(w.image["night"])),
                history=tuple(w.history(watch.history_size(t))),
                references=tuple(w.references(regime, int(t.view_refs))) if regime else (),
                raised=frozenset(raised),
                thresholds=t,
            )
        )
        w.record(sig, result.record)
        if result.adopt is not None:
            w.adopt(result.adopt.since_image_id, result.adopt.image_ids)
            done["adopted"] = True
        todo = transitions(result.findings, raised)
        for finding in todo.raise_:
            if w.raise_(finding.condition, finding.details, finding.title, alert_details(finding)):
                done["raised"].append(finding.condition)
        for finding in todo.clear:
            title = clear_title(w.camera["name"], finding)
            if w.clear(finding.condition, title, cleared_details(title, finding, now)):
                done["cleared"].append(finding.condition)
    done["record"] = result.record
    for condition in done["raised"]:
        metrics.health_transition(condition, "raised")
        metrics.alert_raised(kind="health", reason="health")
        log.warning(
            "health alert raised: %s",
            result.findings[condition].title,
            extra={"camera_id": camera_id, "image_id": image_id, "condition": condition},
        )
    for condition in done["cleared"]:
        metrics.health_transition(condition, "cleared")
        metrics.alert_raised(kind="health", reason="health_cleared")
        log.info("health condition %s of camera %s cleared", condition, camera_id)
    if done["raised"] or done["cleared"]:
        svc.outbox.flush(OUTBOX_SCOPE)
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
