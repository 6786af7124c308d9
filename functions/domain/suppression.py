"""Static false positives: a box that comes back at the same place at one camera (a stump, a rock, a post)
over many *events*, or that rangers marked as a false positive there, stops alerting: by itself for animal
boxes, after an operator's confirmation for people and vehicles.

Each candidate detection of a photo (one that could alert, see ``Rules.is_candidate``) is matched to the
camera's boxes by overlap (IoU >= ``suppress_iou``). A match in a new event counts one more event for that
box; no match starts a new box. Counting events rather than photos matters: a burst of ten photos of one
person standing still is one event, not ten repeats. Each box keeps its *evidence*: per event, the photo it
was seen in, and the rangers' verdicts at that place (``seen``, ``false_positive``, ``confirmed``; the
newest ``MAX_EVIDENCE``), so an operator sees the photos a proposal is based on.

Rangers' feedback (:func:`apply_feedback`): a verdict on an alert, or on one of its photos, is applied to the
boxes its detections lie in. Per event only the latest verdict counts (a changed mind replaces the earlier
one; ``unsure`` withdraws it). ``fp_count`` / ``confirmed_count`` are the distinct events rangers marked
false positive / confirmed at that place.

A ``watching`` box becomes a suppression candidate when it was seen in ``suppress_after`` distinct events,
or rangers marked it a false positive in ``FEEDBACK_EVENTS_TO_PROPOSE`` (2) distinct events. Then:

* a **person or vehicle** box is ``proposed``: detections inside it still alert until an operator confirms
  the proposal (``suppressed``) or rejects it (``rejected``: never proposed again at that place). At a gate or
  a footpath, a place where people pass every day is exactly where poachers pass too: no one is silenced
  without a person deciding it;
* an **animal** box is ``suppressed`` automatically (as before issue 14), unless a ranger confirmed a real
  sighting at that place (``confirmed_count`` > 0: then it is proposed too), or the park switched automatic
  suppression off (``suppress_after`` = 0: feedback then only ever proposes);
* a ``lifted`` box (an operator said the place is real, e.g. a gate people use) or a ``rejected`` one is
  never suppressed or proposed again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from .rules import CATEGORY_NAMES, Det, Rules

Status = Literal["watching", "proposed", "suppressed", "lifted", "rejected"]
EvidenceSource = Literal["seen", "false_positive", "confirmed"]

FEEDBACK_EVENTS_TO_PROPOSE = 2
"""Distinct events rangers marked a false positive at one place that make it a suppression candidate."""
MAX_EVIDENCE = 50
"""Evidence entries kept per box (the newest)."""
REVIEWED_CATEGORIES = frozenset({"2", "3"})
"""MegaDetector categories (person, vehicle) whose suppression an operator must confirm."""


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Evidence:
    """One event at a box's place: the photo it was seen in, and what it was (seen, or a ranger's verdict)."""

    event_id: int
    image_id: int | None
    at: datetime
    source: EvidenceSource = "seen"

    def to_json(self) -> dict:
        return {
            "event_id": self.event_id,
            "image_id": self.image_id,
            "at": self.at.isoformat(),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict) -> Evidence:
        at = data.get("at")
        return cls(
            int(data["event_id"]),
            None if data.get("image_id") is None else int(data["image_id"]),
            datetime.fromisoformat(at) if isinstance(at, str) else at,
            data.get("source") or "seen",
        )


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
    evidence: tuple[Evidence, ...] = ()
    fp_count: int = 0
    confirmed_count: int = 0

    @property
    def needs_review(self) -> bool:
        """Would this box be proposed (an operator decides) rather than suppressed by itself?"""
        return self.category in REVIEWED_CATEGORIES or self.confirmed_count > 0

    def image_ids(self) -> list[int]:
        """The photos this box is based on, oldest first, one per (event, source), without repeats."""
        return list(dict.fromkeys(e.image_id for e in self.evidence if e.image_id is not None))


@dataclass
class Observation:
    """What one photo (or one verdict) did to the camera's boxes: ``changed`` boxes (new ones have id None)
    and, per candidate index, the box it matched (index into ``changed`` or the unchanged input)."""

    changed: list[StaticBox]
    matched: dict[int, StaticBox]
    newly_suppressed: list[StaticBox]
    newly_proposed: list[StaticBox] | None = None

    def __post_init__(self) -> None:
        if self.newly_proposed is None:
            self.newly_proposed = []


def _best_match(det: Det, boxes: list[StaticBox], rules: Rules) -> int | None:
    best_pos, best_iou = None, 0.0
    for pos, box in enumerate(boxes):
        o = iou(det.bbox, box.bbox)
        if o >= rules.suppress_iou and o > best_iou:
            best_pos, best_iou = pos, o
    return best_pos


def _with_evidence(box: StaticBox, entries: list[Evidence]) -> StaticBox:
    entries = entries[-MAX_EVIDENCE:]
    fp = {e.event_id for e in entries if e.source == "false_positive"}
    ok = {e.event_id for e in entries if e.source == "confirmed"}
    return replace(box, evidence=tuple(entries), fp_count=len(fp), confirmed_count=len(ok))


def observe(
    boxes: list[StaticBox],
    candidates: list[Det],
    *,
    event_id: int,
    at: datetime,
    rules: Rules,
    image_id: int | None = None,
) -> Observation:
    """The camera's boxes after one photo (``image_id``, of event ``event_id``) with these candidates."""
    current: list[StaticBox] = list(boxes)
    changed: dict[int, StaticBox] = {}  # position in `current` -> updated box
    matched: dict[int, StaticBox] = {}
    out = Observation([], matched, [], [])
    for i, det in enumerate(candidates):
        best_pos = _best_match(det, current, rules)
        if best_pos is None:
            box = StaticBox(
                None,
                det.category,
                det.bbox,
                1,
                event_id,
                "watching",
                det.conf,
                at,
                at,
                evidence=(Evidence(event_id, image_id, at),),
            )
            box = _maybe_escalate(box, rules, out)
            current.append(box)
            changed[len(current) - 1] = box
            matched[i] = box
            continue
        box = current[best_pos]
        new_event = box.last_event_id != event_id
        count = box.event_count + (1 if new_event else 0)
        box = replace(
            box,
            event_count=count,
            last_event_id=event_id,
            max_conf=max(box.max_conf, det.conf),
            last_seen_at=max(box.last_seen_at, at),
            first_seen_at=min(box.first_seen_at, at),
        )
        if new_event and not any(e.event_id == event_id and e.source == "seen" for e in box.evidence):
            box = _with_evidence(box, [*box.evidence, Evidence(event_id, image_id, at)])
        box = _maybe_escalate(box, rules, out)
        current[best_pos] = box
        changed[best_pos] = box
        matched[i] = box
    out.changed = [changed[p] for p in sorted(changed)]
    return out


@dataclass(frozen=True)
class JudgedDetection:
    """A detection of a photo that rangers judged (the whole alert or that photo): its event, photo, time,
    night flag, and the detection."""

    event_id: int
    image_id: int
    at: datetime
    night: bool
    det: Det


def apply_feedback(
    boxes: list[StaticBox], judged: list[JudgedDetection], *, verdict: str, rules: Rules
) -> Observation:
    """The camera's boxes after a verdict (``confirmed``, ``false_positive`` or ``unsure``) on these
    detections. Only candidates count (``Rules.is_candidate``). Per box and event the verdict replaces any
    earlier one; ``unsure`` removes it. A false positive where no box is yet starts one."""
    current: list[StaticBox] = list(boxes)
    changed: dict[int, StaticBox] = {}
    out = Observation([], {}, [], [])
    source = verdict if verdict in ("false_positive", "confirmed") else None
    done: set[tuple[int, int]] = set()  # (box position, event): one entry per event, its first judged photo
    for i, j in enumerate(judged):
        d = j.det
        if not rules.is_candidate(d.category, d.conf, d.bbox, j.night):
            continue
        pos = _best_match(d, current, rules)
        if pos is None:
            if source != "false_positive":
                continue
            box = StaticBox(
                None,
                d.category,
                d.bbox,
                1,
                j.event_id,
                "watching",
                d.conf,
                j.at,
                j.at,
            )
            current.append(box)
            pos = len(current) - 1
        if (pos, j.event_id) in done:
            out.matched[i] = current[pos]
            continue
        done.add((pos, j.event_id))
        box = current[pos]
        kept = [
            e
            for e in box.evidence
            if not (e.event_id == j.event_id and e.source in ("false_positive", "confirmed"))
        ]
        if source is not None:
            kept.append(Evidence(j.event_id, j.image_id, j.at, source))  # type: ignore[arg-type]
        box = _maybe_escalate(_with_evidence(box, kept), rules, out)
        current[pos] = box
        changed[pos] = box
        out.matched[i] = box
    out.changed = [changed[p] for p in sorted(changed)]
    return out


def _maybe_escalate(box: StaticBox, rules: Rules, out: Observation) -> StaticBox:
    if box.status != "watching":
        return box
    by_events = rules.suppress_after > 0 and box.event_count >= rules.suppress_after
    by_feedback = box.fp_count >= FEEDBACK_EVENTS_TO_PROPOSE
    if not (by_events or by_feedback):
        return box
    x, y, w, h = box.bbox
    why = []
    if by_events:
        why.append(
            f"seen at the same place (IoU >= {rules.suppress_iou:g}) in {box.event_count} distinct events"
        )
    if by_feedback:
        why.append(f"marked a false positive by rangers in {box.fp_count} events")
    reason = (
        f"{CATEGORY_NAMES.get(box.category, box.category)} box at x={x:.2f} y={y:.2f} w={w:.2f} h={h:.2f} "
        f"{' and '.join(why)} since {box.first_seen_at:%Y-%m-%d %H:%M} UTC (max conf {box.max_conf:.2f})"
    )
    if box.needs_review or rules.suppress_after <= 0:
        reason += "; proposed: an operator confirms or rejects it"
        box = replace(box, status="proposed", reason=reason)
        out.newly_proposed.append(box)
    else:
        box = replace(box, status="suppressed", reason=reason)
        out.newly_suppressed.append(box)
    return box


def is_suppressed(det: Det, boxes: list[StaticBox], rules: Rules) -> StaticBox | None:
    """The suppressed box that ``det`` lies in (IoU >= suppress_iou), if any. A ``proposed`` box does not
    suppress anything until an operator confirms it."""
    for box in boxes:
        if box.status == "suppressed" and iou(det.bbox, box.bbox) >= rules.suppress_iou:
            return box
    return None
