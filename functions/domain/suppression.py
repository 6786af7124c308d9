"""Static false positives: a box that comes back at the same place at one camera (a stump, a rock, a post)
over many *events* is suppressed, with the reason recorded, until an operator lifts it.

Each candidate detection of a photo (one that could alert, see ``Rules.is_candidate``) is matched to the
camera's boxes by overlap (IoU >= ``suppress_iou``). A match in a new event counts one more event for that
box; no match starts a new box. When a box reaches ``suppress_after`` distinct events it becomes
``suppressed``: detections inside it no longer alert. Counting events rather than photos matters: a burst
of ten photos of one person standing still is one event, not ten repeats. A ``lifted`` box (an operator
said the place is real, e.g. a gate people use) is never suppressed again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from .rules import CATEGORY_NAMES, Det, Rules

Status = Literal["watching", "suppressed", "lifted"]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class StaticBox:
    id: int | None
    category: str
    bbox: tuple[float, float, float, float]
    event_count: int
    last_event_id: int | None
    status: Status
    max_conf: float
    first_seen_at: datetime
    last_seen_at: datetime
    reason: str | None = None


@dataclass
class Observation:
    """What one photo did to the camera's boxes: ``changed`` boxes (new ones have id None) and, per
    candidate index, the box it matched (index into ``changed`` or the unchanged input)."""

    changed: list[StaticBox]
    matched: dict[int, StaticBox]
    newly_suppressed: list[StaticBox]


def observe(
    boxes: list[StaticBox], candidates: list[Det], *, event_id: int, at: datetime, rules: Rules
) -> Observation:
    current: list[StaticBox] = list(boxes)
    changed: dict[int, StaticBox] = {}  # position in `current` -> updated box
    matched: dict[int, StaticBox] = {}
    newly: list[StaticBox] = []
    for i, det in enumerate(candidates):
        best_pos, best_iou = None, 0.0
        for pos, box in enumerate(current):
            o = iou(det.bbox, box.bbox)
            if o >= rules.suppress_iou and o > best_iou:
                best_pos, best_iou = pos, o
        if best_pos is None:
            box = StaticBox(None, det.category, det.bbox, 1, event_id, "watching", det.conf, at, at)
            box = _maybe_suppress(box, rules, newly)
            current.append(box)
            changed[len(current) - 1] = box
            matched[i] = box
            continue
        box = current[best_pos]
        count = box.event_count + (1 if box.last_event_id != event_id else 0)
        box = replace(
            box,
            event_count=count,
            last_event_id=event_id,
            max_conf=max(box.max_conf, det.conf),
            last_seen_at=max(box.last_seen_at, at),
            first_seen_at=min(box.first_seen_at, at),
        )
        box = _maybe_suppress(box, rules, newly)
        current[best_pos] = box
        changed[best_pos] = box
        matched[i] = box
    return Observation([changed[p] for p in sorted(changed)], matched, newly)


def _maybe_suppress(box: StaticBox, rules: Rules, newly: list[StaticBox]) -> StaticBox:
    if box.status != "watching" or rules.suppress_after <= 0 or box.event_count < rules.suppress_after:
        return box
    x, y, w, h = box.bbox
    reason = (
        f"{CATEGORY_NAMES.get(box.category, box.category)} box at x={x:.2f} y={y:.2f} w={w:.2f} "
        f"h={h:.2f} seen at the same place (IoU >= {rules.suppress_iou:g}) in {box.event_count} "
        f"distinct events since {box.first_seen_at:%Y-%m-%d %H:%M} UTC (max conf {box.max_conf:.2f})"
    )
    box = replace(box, status="suppressed", reason=reason)
    newly.append(box)
    return box


def is_suppressed(det: Det, boxes: list[StaticBox], rules: Rules) -> StaticBox | None:
    """The suppressed box that ``det`` lies in (IoU >= suppress_iou), if any."""
    for box in boxes:
        if box.status == "suppressed" and iou(det.bbox, box.bbox) >= rules.suppress_iou:
            return box
    return None
