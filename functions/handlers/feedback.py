"""Rangers' feedback and what it changes: the service the park console and `trapalert feedback` call.

* :func:`give_feedback` records a verdict on an alert (or one of its photos), with its audit row, and feeds
  it to the camera's static boxes in the same transaction: false positives at the same place make it a
  suppression candidate (proposed for people and vehicles, automatic for animals; the rule is in
  functions/domain/suppression.py), a confirmation marks the place as real;
* :func:`camera_report` gives per camera the precision from feedback and the suggested threshold changes
  (functions/domain/feedback.py). A suggestion is never applied here: an operator applies it with an
  explicit, audited rules edit.

Orchestration only: SQL is in functions/adapters/feedback_repo.py, decisions in functions/domain/.
"""

from __future__ import annotations

import logging
from typing import Any

from ..adapters.feedback_repo import FeedbackNotFound, FeedbackRepository
from ..domain.feedback import (
    FeedbackError,
    alert_verdict,
    camera_precision,
    check_feedback,
    samples_of,
    suggest_thresholds,
)
from ..domain.rules import effective_rules, to_flat
from ..domain.suppression import apply_feedback
from ..statuses import AuditVia

log = logging.getLogger(__name__)

__all__ = ["FeedbackError", "FeedbackNotFound", "camera_report", "give_feedback"]


def give_feedback(
    db,
    *,
    alert_id: int,
    verdict: str,
    user: str,
    role: str,
    via: AuditVia,
    image_id: int | None = None,
    what: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Record one verdict and apply it to the camera's boxes. Returns ``{"feedback": row, "boxes":
    [{"id", "status", "fp_count", "confirmed_count"}], "proposed": [ids], "suppressed": [ids]}``.
    Raises FeedbackError (bad input) or FeedbackNotFound (no such alert / photo)."""
    verdict, what, note = check_feedback(verdict, what, note)
    if not user:
        raise FeedbackError("feedback needs the name of the person who gives it")
    with FeedbackRepository(db).unit(alert_id) as unit:
        if unit.alert.get("kind") not in (None, "detection"):
            raise FeedbackError(f"alert {alert_id} is a health alert: feedback is given on detections")
        row = unit.record(
            image_id=image_id, verdict=verdict, what=what, note=note, user=user, role=role, via=via
        )
        rules = effective_rules(*unit.rule_layers())
        obs = apply_feedback(unit.boxes(), unit.judged_detections(image_id), verdict=verdict, rules=rules)
        ids = unit.save_boxes(obs.changed)
    boxes = [
        {
            "id": ids.get(id(b), b.id),
            "status": b.status,
            "fp_count": b.fp_count,
            "confirmed_count": b.confirmed_count,
        }
        for b in obs.changed
    ]
    out = {
        "feedback": row,
        "boxes": boxes,
        "proposed": [ids.get(id(b), b.id) for b in obs.newly_proposed or []],
        "suppressed": [ids.get(id(b), b.id) for b in obs.newly_suppressed],
    }
    log.info(
        "feedback on alert %s: %s by %s (%s); boxes %s",
        alert_id,
        verdict,
        user,
        role,
        boxes,
        extra={"alert_id": alert_id, "feedback_id": row["id"]},
    )
    return out


def camera_report(db, park_id: int, camera_id: int | None = None) -> list[dict[str, Any]]:
    """Per camera with feedback: ``{"camera_id", "camera", "precision": {confirmed, false_positive, unsure,
    precision}, "suggestions": [{key, current, suggested, false_positives, confirmed, removed_false_positives,
    reason}]}``. ``suggested`` None: no change suggested (the reason says why)."""
    out = []
    for cam_id, cam in sorted(FeedbackRepository(db).judged(park_id, camera_id).items()):
        rows_by_alert = cam["rows"]
        precision = camera_precision(rows_by_alert)
        samples = []
        for alert_id, rows in rows_by_alert.items():
            samples += samples_of(cam["photos"].get(alert_id, []), alert_verdict(rows))
        current = to_flat(effective_rules(*cam["layers"]))
        suggestions = suggest_thresholds(samples, current)
        out.append(
            {
                "camera_id": cam_id,
                "camera": cam["camera"],
                "precision": precision.to_json(),
                "suggestions": [s.to_json() for s in suggestions],
            }
        )
    return out
