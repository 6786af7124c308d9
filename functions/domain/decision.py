"""One photo's decision: which event (burst) it belongs to, what the camera's static boxes make of it, and
whether its event opens, joins or refreshes an alert. Pure: no I/O.

The process-image service (functions/handlers/process_image.py) loads a :class:`CameraState` under the
camera's row lock (functions/adapters/camera_state_repo.py), calls :func:`decide`, and hands the returned
:class:`Decision` to the repository, which saves every change it lists in the same transaction. Rows the
repository creates while saving (a new event, a new alert) are named :data:`NEW` here.

The rules of each step are in their own modules: bursts, merges, cooldown and "worth telling" in
``events.py``, static false positives in ``suppression.py``, one photo against the thresholds in
``rules.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import events as ev
from . import suppression as sup
from .rules import Det, PhotoAssessment, Rules, assess_photo

NEW = -1
"""The id of a row the repository creates when it saves the decision (the new event or the new alert)."""

Notify = Literal["new", "update"]


@dataclass(frozen=True)
class CameraRef:
    id: int
    park_id: int
    name: str


@dataclass
class EventRecord:
    """An event of the camera whose time span (widened by the burst gap) is near the photo, with its decided
    photos."""

    id: int
    started_at: datetime
    last_image_at: datetime
    alert_id: int | None
    photos: list[ev.PhotoRecord] = field(default_factory=list)

    @property
    def window(self) -> ev.EventWindow:
        return ev.EventWindow(self.id, self.started_at, self.last_image_at, self.alert_id)


@dataclass
class AlertRecord:
    """A detection alert as stored, with the ids of its events and the decided photos of those events."""

    state: ev.AlertState
    best_image_id: int | None
    event_ids: list[int]
    photos: list[ev.PhotoRecord] = field(default_factory=list)


@dataclass
class CameraState:
    """What one decision about a camera needs, loaded under the camera's row lock: the events near the
    photo, their alerts and the camera's most recent detection alert, and the camera's static boxes."""

    camera: CameraRef
    rules: Rules
    events: list[EventRecord]
    alerts: dict[int, AlertRecord]
    recent_alert_id: int | None
    boxes: list[sup.StaticBox]


@dataclass(frozen=True)
class NewPhoto:
    """The photo being decided: its time (EXIF, else receipt), night flag, local time of day at the camera,
    and its stored detections in the order of ``detection_ids``."""

    image_id: int
    taken_at: datetime
    night: bool
    local_time: time | None
    detections: tuple[Det, ...]
    detection_ids: tuple[int, ...] = ()
    correlation_id: str | None = None


@dataclass
class AlertChange:
    """An alert to open (``alert_id`` NEW, version 1) or to update. ``version_bump`` 1 when rangers should
    be told (``notify``), 0 for a silent refresh of the numbers."""

    alert_id: int
    summary: ev.Summary
    categories: list[str]
    started_at: datetime
    last_image_at: datetime
    best_image_id: int | None
    title: str
    details: dict
    event_ids: list[int]
    version: int
    version_bump: int
    notify: Notify | None


@dataclass
class Decision:
    """What one photo's decision does. ``alert_id`` and ``event_id`` are final once the repository saved it
    (NEW before). ``already_decided``: a redelivered message; nothing changes."""

    image_id: int
    event_id: int | None = None
    alert_id: int | None = None
    action: Literal["none", "open", "join", "refresh"] = "none"
    notify: Notify | None = None
    reason: str = ""
    already_decided: bool = False
    # the changes, for the repository
    event_kind: Literal["new", "attach", "merge"] = "new"
    merged_event_ids: tuple[int, ...] = ()
    assessment: PhotoAssessment | None = None
    suppressed: dict[int, sup.StaticBox] = field(default_factory=dict)
    boxes_changed: list[sup.StaticBox] = field(default_factory=list)
    newly_suppressed: list[sup.StaticBox] = field(default_factory=list)
    event_summary: ev.Summary | None = None
    alert: AlertChange | None = None


def decide(state: CameraState, photo: NewPhoto) -> Decision:
    """Decide one photo against the camera's state (see the module docstring)."""
    rules = state.rules
    out = Decision(photo.image_id)

    # 1. the event (burst)
    by_id = {e.id: e for e in state.events}
    choice = ev.assign_event(photo.taken_at, [e.window for e in state.events], rules.burst_gap_s)
    out.event_kind = choice.kind
    if choice.kind == "new":
        event_id, event_alert_id, earlier = NEW, None, []
    else:
        assert choice.event_id is not None
        keep = by_id[choice.event_id]
        event_id, event_alert_id = keep.id, keep.alert_id
        earlier = list(keep.photos)
        for merged in choice.merge_ids:
            earlier.extend(by_id[merged].photos)
        out.merged_event_ids = choice.merge_ids
    out.event_id = event_id

    # 2. static false positives among the photo's candidates
    dets = list(photo.detections)
    cand_idx = [i for i, d in enumerate(dets) if rules.is_candidate(d.category, d.conf, d.bbox, photo.night)]
    if cand_idx:
        obs = sup.observe(
            state.boxes,
            [dets[i] for i in cand_idx],
            event_id=event_id,
            at=photo.taken_at,
            rules=rules,
            image_id=photo.image_id,
        )
        out.boxes_changed, out.newly_suppressed = obs.changed, obs.newly_suppressed
        for j, box in obs.matched.items():
            if box.status == "suppressed":
                i = cand_idx[j]
                out.suppressed[i] = box
                dets[i] = Det(dets[i].category, dets[i].conf, dets[i].bbox, suppressed=True)

    # 3. the photo, then its event
    out.assessment = assess_photo(dets, rules, night=photo.night, local_time=photo.local_time)
    this = ev.PhotoRecord(photo.image_id, photo.taken_at, out.assessment)
    event_photos = _unique(earlier + [this])
    summary = ev.summarize(event_photos, rules)
    out.event_summary = summary
    event_alert = state.alerts[event_alert_id] if event_alert_id is not None else None
    recent = None
    if event_alert is None and summary.passes and state.recent_alert_id is not None:
        recent = state.alerts.get(state.recent_alert_id)
    decision = ev.decide_event(
        summary, event_alert.state if event_alert else None, recent.state if recent else None, rules
    )
    out.action, out.reason = decision.action, decision.reason

    # 4. the alert
    if decision.action == "open":
        out.alert = _open(state.camera, event_id, summary, decision.reason)
    elif decision.action in ("join", "refresh"):
        target = event_alert if decision.action == "refresh" else recent
        assert target is not None
        out.alert = _refresh(
            state.camera,
            target,
            event_id,
            choice.merge_ids,
            event_photos,
            rules,
            joined=decision.action == "join",
        )
    if out.alert is not None:
        out.alert_id, out.notify = out.alert.alert_id, out.alert.notify
    return out


def _unique(photos: list[ev.PhotoRecord]) -> list[ev.PhotoRecord]:
    seen: dict[int, ev.PhotoRecord] = {}
    for p in photos:
        seen[p.image_id] = p
    return list(seen.values())


def _open(camera: CameraRef, event_id: int, s: ev.Summary, reason: str) -> AlertChange:
    assert s.started_at is not None and s.last_image_at is not None
    return AlertChange(
        alert_id=NEW,
        summary=s,
        categories=s.categories,
        started_at=s.started_at,
        last_image_at=s.last_image_at,
        best_image_id=s.best_image_id,
        title=ev.alert_title(s.categories, camera.name),
        details={"opened_because": reason, "how": s.how, "events": [event_id], "updates": []},
        event_ids=[event_id],
        version=1,
        version_bump=1,
        notify="new",
    )


def _refresh(
    camera: CameraRef,
    alert: AlertRecord,
    event_id: int,
    merged: tuple[int, ...],
    event_photos: list[ev.PhotoRecord],
    rules: Rules,
    *,
    joined: bool,
) -> AlertChange:
    """Recompute the alert over all photos of its events; bump its version when worth telling."""
    old = alert.state
    s = ev.summarize(_unique(alert.photos + event_photos), rules)
    why = ev.worth_telling(old, s, rules, joined_event=joined)
    event_ids = sorted({e for e in alert.event_ids if e not in merged} | {event_id}, key=_id_order)
    categories = s.categories or list(old.categories)
    details: dict = {"events": event_ids}
    if why:
        details["last_update_reason"] = why
    return AlertChange(
        alert_id=old.id,
        summary=s,
        categories=categories,
        started_at=min(old.started_at, s.started_at or old.started_at),
        last_image_at=max(old.last_image_at, s.last_image_at or old.last_image_at),
        best_image_id=s.best_image_id if s.best_image_id is not None else alert.best_image_id,
        title=ev.alert_title(categories, camera.name),
        details=details,
        event_ids=event_ids,
        version=old.version + (1 if why else 0),
        version_bump=1 if why else 0,
        notify="update" if why else None,
    )


def _id_order(event_id: int) -> float:
    return float("inf") if event_id == NEW else float(event_id)


def local_time_at(taken_at: datetime, timezone: str) -> time:
    """The time of day at the camera (its time zone decides active hours); UTC when the zone is unknown."""
    try:
        return taken_at.astimezone(ZoneInfo(timezone)).time()
    except (ZoneInfoNotFoundError, ValueError):
        return taken_at.time()
