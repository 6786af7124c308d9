"""Events, not photos: how the photos of one camera become bursts, and bursts become alerts.

* **Event (burst)**: photos of one camera whose times are within ``burst_gap_s`` of each other. Photos may
  arrive out of order (several emails, parallel workers): a photo joins the event whose time span (widened
  by the gap) contains it; a photo that bridges two events merges them (unless both already have alerts).
* **Alert**: the first photo that makes its event pass opens one alert; every later photo of the event
  attaches to it. An event passes when one photo passes the rules, or when weak detections of one category
  appear in ``confirm_photos`` photos (a weak detection confirmed by its neighbours counts).
* **Cooldown**: an event of a camera that passes within ``cooldown_s`` of that camera's last alert joins
  that alert (an update) instead of opening a new one, so a stream of triggers is one alert, not fifty.
* **Updates worth telling rangers**: a new category (a vehicle joins the person), a best confidence that
  rose by ``update_conf_step``, or a further burst that joined the alert during the cooldown. Other
  attachments update the alert's numbers silently (channels read them with the next version).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from .rules import PhotoAssessment, Rules


@dataclass(frozen=True)
class EventWindow:
    id: int
    started_at: datetime
    last_image_at: datetime
    alert_id: int | None = None

    def distance(self, t: datetime) -> float:
        if self.started_at <= t <= self.last_image_at:
            return 0.0
        return min(abs((t - self.started_at).total_seconds()), abs((t - self.last_image_at).total_seconds()))


@dataclass(frozen=True)
class EventChoice:
    """``new``: open an event; ``attach``: join ``event_id``; ``merge``: join ``event_id`` after moving the
    photos of ``merge_ids`` into it (the photo bridges them)."""

    kind: Literal["new", "attach", "merge"]
    event_id: int | None = None
    merge_ids: tuple[int, ...] = ()


def assign_event(taken_at: datetime, events: list[EventWindow], gap_s: float) -> EventChoice:
    gap = timedelta(seconds=gap_s)
    near = [e for e in events if e.started_at - gap <= taken_at <= e.last_image_at + gap]
    if not near:
        return EventChoice("new")
    if len(near) == 1:
        return EventChoice("attach", near[0].id)
    alerted = [e for e in near if e.alert_id is not None]
    if len(alerted) > 1:  # two alerts already told: keep them apart, join the nearest
        nearest = min(near, key=lambda e: (e.distance(taken_at), e.started_at))
        return EventChoice("attach", nearest.id)
    keep = alerted[0] if alerted else min(near, key=lambda e: (e.started_at, e.id))
    return EventChoice("merge", keep.id, tuple(sorted(e.id for e in near if e.id != keep.id)))


@dataclass(frozen=True)
class PhotoRecord:
    image_id: int
    taken_at: datetime
    assessment: PhotoAssessment


@dataclass
class Summary:
    """The combined score of a sequence of photos (an event, or all photos of an alert)."""

    image_count: int = 0
    started_at: datetime | None = None
    last_image_at: datetime | None = None
    passes: bool = False
    how: Literal["single", "confirmed"] | None = None
    categories: list[str] = field(default_factory=list)
    max_conf: float = 0.0
    mean_conf: float = 0.0
    best_image_id: int | None = None
    best_ratio: float = 0.0
    weak_photos: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "image_count": self.image_count,
            "passes": self.passes,
            "how": self.how,
            "categories": self.categories,
            "max_conf": round(self.max_conf, 4),
            "mean_conf": round(self.mean_conf, 4),
            "best_image_id": self.best_image_id,
            "best_ratio": round(self.best_ratio, 4),
            "weak_photos": self.weak_photos,
        }


_ORDER = {"person": 0, "vehicle": 1, "animal": 2}


def summarize(photos: list[PhotoRecord], rules: Rules) -> Summary:
    s = Summary(image_count=len(photos))
    if not photos:
        return s
    s.started_at = min(p.taken_at for p in photos)
    s.last_image_at = max(p.taken_at for p in photos)
    confs: list[float] = []
    best_key = None
    for p in sorted(photos, key=lambda p: (p.taken_at, p.image_id)):
        a = p.assessment
        if not a.active:
            continue
        if a.passes:
            s.passes, s.how = True, "single"
        for name in a.seen:
            s.weak_photos[name] = s.weak_photos.get(name, 0) + 1
        if a.seen:
            top = max(a.seen.values())
            confs.append(top)
            s.max_conf = max(s.max_conf, top)
        key = (a.ratio, -p.taken_at.timestamp())
        if a.weak and (best_key is None or key > best_key):
            best_key, s.best_image_id, s.best_ratio = key, p.image_id, a.ratio
    if not s.passes and any(n >= rules.confirm_photos for n in s.weak_photos.values()):
        s.passes, s.how = True, "confirmed"
    s.categories = sorted(s.weak_photos, key=lambda c: _ORDER.get(c, 9))
    s.mean_conf = sum(confs) / len(confs) if confs else 0.0
    return s


@dataclass(frozen=True)
class AlertState:
    """An alert as stored (what rangers were last told is ``version``)."""

    id: int
    version: int
    categories: tuple[str, ...]
    max_conf: float
    started_at: datetime
    last_image_at: datetime


def in_cooldown(
    alert: AlertState | None, started_at: datetime, last_image_at: datetime, cooldown_s: float
) -> bool:
    if alert is None or cooldown_s <= 0:
        return False
    cd = timedelta(seconds=cooldown_s)
    return alert.started_at - cd <= last_image_at and started_at <= alert.last_image_at + cd


@dataclass(frozen=True)
class EventDecision:
    """``open`` a new alert, ``join`` the camera's alert in cooldown, ``refresh`` the event's own alert,
    or ``none``. ``reason`` explains it (stored for ops)."""

    action: Literal["none", "open", "join", "refresh"]
    alert_id: int | None
    reason: str


def decide_event(
    event: Summary, event_alert: AlertState | None, recent_alert: AlertState | None, rules: Rules
) -> EventDecision:
    if event_alert is not None:
        return EventDecision("refresh", event_alert.id, "photo of an event that has an alert")
    if not event.passes:
        return EventDecision("none", None, "event does not pass the rules")
    assert event.started_at is not None and event.last_image_at is not None
    if in_cooldown(recent_alert, event.started_at, event.last_image_at, rules.cooldown_s):
        assert recent_alert is not None
        return EventDecision(
            "join",
            recent_alert.id,
            f"within the camera's cooldown ({rules.cooldown_s:g} s) of alert {recent_alert.id}",
        )
    how = "one photo passes" if event.how == "single" else "weak detections confirmed by neighbours"
    return EventDecision("open", None, how)


def worth_telling(old: AlertState, new: Summary, rules: Rules, *, joined_event: bool) -> str | None:
    """Why the change from ``old`` to ``new`` deserves a message to rangers, or None."""
    if joined_event:
        return "a further event joined the alert"
    added = [c for c in new.categories if c not in old.categories]
    if added:
        return f"new category: {', '.join(added)}"
    if new.max_conf >= old.max_conf + rules.update_conf_step - 1e-9:
        return f"confidence rose to {new.max_conf:.2f}"
    return None


def alert_title(categories: list[str], camera_name: str) -> str:
    what = " and ".join(categories) if categories else "activity"
    return f"{what.capitalize()} at {camera_name}"
