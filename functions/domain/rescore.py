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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .decision import local_time_at
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


@dataclass
class CameraChanges:
    camera: str
    photos: int = 0
    changed_photos: int = 0
    new_alerts: list[dict[str, Any]] = field(default_factory=list)
    lost_alerts: list[dict[str, Any]] = field(default_factory=list)

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
        new_pass = assess_photo(list(new), rules, night=p.night, local_time=when).passes
        cam = out.setdefault(p.camera_id, CameraChanges(p.camera))
        cam.photos += 1
        cam.changed_photos += old_pass != new_pass
        key = (p.camera_id, f"event:{p.event_id}" if p.event_id is not None else f"image:{p.image_id}")
        ev = events.setdefault(
            key, {"alert_id": None, "passes": False, "first": p.taken_at, "images": [], "camera": p.camera_id}
        )
        ev["alert_id"] = ev["alert_id"] or p.alert_id
        ev["passes"] = ev["passes"] or new_pass
        ev["first"] = min(ev["first"], p.taken_at)
        ev["images"].append(p.image_id)
    for (camera_id, ref), ev in events.items():
        entry = {"event": ref, "at": ev["first"].isoformat(), "images": ev["images"]}
        if ev["alert_id"] is None and ev["passes"]:
            out[camera_id].new_alerts.append(entry)
        elif ev["alert_id"] is not None and not ev["passes"]:
            out[camera_id].lost_alerts.append(entry | {"alert_id": ev["alert_id"]})
    return out
