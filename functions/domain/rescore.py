"""What a re-scoring changed (``trapalert rescore``): pure, no I/O.

Each re-scored photo is judged twice by the same rules (functions/domain/rules.py ``assess_photo``, the one
rules engine; the camera's rules as they are now): once with its original detections, once with the new
model's. Photos are grouped by the event (burst) they belonged to; a photo that joined no event is its own.

* **would have fired and did not** (``new_alerts``): an event without an alert in which some photo now
  passes the rules;
* **would not have fired** (``lost_alerts``): an event with an alert in which no photo passes any more;
* ``changed_photos``: photos whose verdict (passes or not) differs between the two models.

A new detection inside a box that was suppressed as a static false positive in the original scoring
(IoU >= ``SUPPRESSED_IOU`` with a suppressed original detection) stays suppressed, as the live decision would
have suppressed it.

With ``trapalert rescore --alert``, each event that would have fired and did not becomes one
:class:`PastAlert` (:func:`past_alerts`): an alert of kind ``rescore`` about the past, summarized like a
live alert (functions/domain/events.py ``summarize``) over the event's photos as the new model sees them, its
best photo carrying the new model's detections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .decision import local_time_at
from .events import PhotoRecord, Summary, summarize
from .rules import Det, Rules, assess_photo
from .suppression import iou

SUPPRESSED_IOU = 0.5


@dataclass(frozen=True)
class RescoredPhoto:
    image_id: int
    camera_id: int
    camera: str
    taken_at: datetime
    timezone: str
    night: bool
    event_id: int | None
    alert_id: int | None
    old: tuple[Det, ...]
    new: tuple[Det, ...]


@dataclass(frozen=True)
class MissedEvent:
    """An event without an alert in which a photo now passes, as the new model sees it."""

    camera_id: int
    camera: str
    timezone: str
    event: str  # "event:<id>" | "image:<id>" (a photo that joined no event)
    image_ids: tuple[int, ...]
    summary: Summary  # over the event's photos, judged with the new detections
    best_detections: tuple[Det, ...]  # the new model's detections of the summary's best photo


@dataclass
class CameraChanges:
    camera: str
    photos: int = 0
    changed_photos: int = 0
    new_alerts: list[dict[str, Any]] = field(default_factory=list)
    lost_alerts: list[dict[str, Any]] = field(default_factory=list)
    missed: list[MissedEvent] = field(default_factory=list)  # one per new_alerts entry

    def to_json(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "photos": self.photos,
            "changed_photos": self.changed_photos,
            "would_have_fired": len(self.new_alerts),
            "would_not_have_fired": len(self.lost_alerts),
            "new_alerts": self.new_alerts,
            "lost_alerts": self.lost_alerts,
        }


def dets_from_json(items: list[dict[str, Any]] | None) -> tuple[Det, ...]:
    return tuple(
        Det(
            str(d["category"]),
            float(d["conf"]),
            tuple(float(v) for v in d["bbox"]),
            bool(d.get("suppressed")),
        )
        for d in items or []
    )


def carry_suppression(old: tuple[Det, ...], new: tuple[Det, ...]) -> tuple[Det, ...]:
    boxes = [d.bbox for d in old if d.suppressed]
    if not boxes:
        return new
    return tuple(
        Det(d.category, d.conf, d.bbox, True) if any(iou(d.bbox, b) >= SUPPRESSED_IOU for b in boxes) else d
        for d in new
    )


def compare(photos: list[RescoredPhoto], rules_of: dict[int, Rules]) -> dict[int, CameraChanges]:
    """Per camera id: what the new model's detections would have changed (see the module docstring)."""
    out: dict[int, CameraChanges] = {}
    events: dict[tuple[int, str], dict[str, Any]] = {}
    for p in photos:
        rules = rules_of[p.camera_id]
        when = local_time_at(p.taken_at, p.timezone)
        old_pass = assess_photo(list(p.old), rules, night=p.night, local_time=when).passes
        new = carry_suppression(p.old, p.new)
        assessed = assess_photo(list(new), rules, night=p.night, local_time=when)
        new_pass = assessed.passes
        cam = out.setdefault(p.camera_id, CameraChanges(p.camera))
        cam.photos += 1
        cam.changed_photos += old_pass != new_pass
        key = (p.camera_id, f"event:{p.event_id}" if p.event_id is not None else f"image:{p.image_id}")
        ev = events.setdefault(
            key,
            {"alert_id": None, "passes": False, "first": p.taken_at, "images": [], "records": [], "new": {}},
        )
        ev["alert_id"] = ev["alert_id"] or p.alert_id
        ev["passes"] = ev["passes"] or new_pass
        ev["first"] = min(ev["first"], p.taken_at)
        ev["images"].append(p.image_id)
        ev["records"].append(PhotoRecord(p.image_id, p.taken_at, assessed))
        ev["new"][p.image_id] = new
        ev["timezone"] = p.timezone
        if new_pass:
            ev.setdefault("first_pass", p.image_id)
    for (camera_id, ref), ev in events.items():
        entry = {"event": ref, "at": ev["first"].isoformat(), "images": ev["images"]}
        if ev["alert_id"] is None and ev["passes"]:
            s = summarize(ev["records"], rules_of[camera_id])
            if s.best_image_id is None:
                s.best_image_id = ev["first_pass"]
            best = {"best_image": s.best_image_id, "categories": s.categories}
            out[camera_id].new_alerts.append(entry | best)
            out[camera_id].missed.append(
                MissedEvent(
                    camera_id,
                    out[camera_id].camera,
                    ev["timezone"],
                    ref,
                    tuple(ev["images"]),
                    s,
                    ev["new"][s.best_image_id],
                )
            )
        elif ev["alert_id"] is not None and not ev["passes"]:
            out[camera_id].lost_alerts.append(entry | {"alert_id": ev["alert_id"]})
    return out


@dataclass(frozen=True)
class PastAlert:
    """The alert ``trapalert rescore --alert`` opens for one missed event (alerts.kind ``rescore``)."""

    camera_id: int
    event: str
    image_ids: tuple[int, ...]
    categories: list[str]
    max_conf: float
    mean_conf: float
    image_count: int
    best_image_id: int
    started_at: datetime
    last_image_at: datetime
    title: str
    details: dict[str, Any]


def past_alert_title(categories: list[str], camera: str, started_at: datetime, timezone: str) -> str:
    """'Re-scoring (past): Person at north, 2026-03-01 14:00 CAT': says at once that it is not live."""
    what = " and ".join(categories) if categories else "activity"
    try:
        local = started_at.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        local = started_at
    return f"Re-scoring (past): {what.capitalize()} at {camera}, {local:%Y-%m-%d %H:%M %Z}".rstrip()


def past_alerts(
    changes: dict[int, CameraChanges], *, run: str, old_models: list[str], new_models: list[str]
) -> list[PastAlert]:
    """One alert per event that would have fired and did not (``CameraChanges.missed``), for run ``run``."""
    out: list[PastAlert] = []
    for cam in changes.values():
        for m in cam.missed:
            s = m.summary
            assert s.started_at is not None and s.last_image_at is not None and s.best_image_id is not None
            detections = [
                {"category": d.category, "conf": round(d.conf, 4), "bbox": list(d.bbox)}
                for d in m.best_detections
                if not d.suppressed
            ]
            out.append(
                PastAlert(
                    camera_id=m.camera_id,
                    event=m.event,
                    image_ids=m.image_ids,
                    categories=list(s.categories),
                    max_conf=s.max_conf,
                    mean_conf=s.mean_conf,
                    image_count=s.image_count,
                    best_image_id=s.best_image_id,
                    started_at=s.started_at,
                    last_image_at=s.last_image_at,
                    title=past_alert_title(s.categories, m.camera, s.started_at, m.timezone),
                    details={
                        "opened_because": "re-scoring: the current model would have alerted",
                        "how": s.how,
                        "rescore": {
                            "run": run,
                            "event": m.event,
                            "images": list(m.image_ids),
                            "old_models": old_models,
                            "new_models": new_models,
                            "detections": detections,  # the best photo's, by the new model
                        },
                    },
                )
            )
    return out
