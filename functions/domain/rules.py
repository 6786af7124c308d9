"""Alert rules: which detections of one photo count, decided per park with per-camera overrides.

Operators set *flat keys* (``trapalert rules set --park P threshold.person.night=0.5``); each level (park,
camera) stores only the keys set there, and the effective rules of a camera are the defaults, overlaid by
the park's keys, overlaid by the camera's. Every value is validated here, with a message that names the key.

A photo's detections are judged against the rules by :func:`assess_photo`:

* only the alerting ``categories`` count (person and vehicle by default; animal for parks that want it);
* a box smaller than ``min_box_area`` (fraction of the image) does not count;
* a box inside a suppressed static false positive (see suppression.py) does not count;
* outside the ``active_hours`` (in the camera's time zone) nothing counts;
* a detection *passes* when its confidence reaches the category's threshold (``day`` or ``night``: infrared
  night frames score lower); it is *weak* when it reaches ``confirm_factor`` x threshold: weak detections
  in ``confirm_photos`` photos of one event confirm each other (events.py).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CATEGORY_NAMES: dict[str, str] = {"1": "animal", "2": "person", "3": "vehicle"}  # MegaDetector codes
CATEGORY_CODES: dict[str, str] = {v: k for k, v in CATEGORY_NAMES.items()}
CategoryName = Literal["animal", "person", "vehicle"]
ALL_CATEGORIES: tuple[str, ...] = ("person", "vehicle", "animal")


class RulesError(ValueError):
    """A rule key or value that cannot be used; the message names the key and says what is expected."""


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    day: float = Field(ge=0, le=1)
    night: float = Field(ge=0, le=1)


_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class TimeWindow:
    """Local clock times ``start``-``end``; a window whose end is before its start wraps past midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        m = _WINDOW.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a window like 18:00-06:00")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h2 == 24 and m2 == 0:
            h2, m2 = 23, 59
        if not (0 <= h1 < 24 and 0 <= m1 < 60 and 0 <= h2 < 24 and 0 <= m2 < 60):
            raise ValueError(f"{text!r}: hours are 00..23 and minutes 00..59")
        if (h1, m1) == (h2, m2):
            raise ValueError(f"{text!r}: start and end are equal (use 'always' for the whole day)")
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, t: time) -> bool:
        t = t.replace(tzinfo=None, second=0, microsecond=0)
        if self.start < self.end:
            return self.start <= t <= self.end
        return t >= self.start or t <= self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_active_hours(value: Any) -> tuple[TimeWindow, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "always", "all", "any", "24h"):
            return ()
        parts = [p for p in text.split(",") if p.strip()]
    elif isinstance(value, list | tuple):
        parts = [str(p) for p in value]
    else:
        raise ValueError("must be 'always' or windows like '18:00-06:00,12:00-13:00'")
    return tuple(TimeWindow.parse(p) for p in parts)


DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    # Tuned for MegaDetector v5-like confidences; night (infrared) frames score lower than day frames.
    "person": Threshold(day=0.6, night=0.5),
    "vehicle": Threshold(day=0.6, night=0.5),
    "animal": Threshold(day=0.7, night=0.6),
}


class Rules(BaseModel):
    """The effective rules of one camera (defaults <- park <- camera)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    categories: tuple[CategoryName, ...] = ("person", "vehicle")
    threshold: dict[CategoryName, Threshold] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    active_hours: tuple[TimeWindow, ...] = ()
    min_box_area: float = Field(0.0, ge=0, le=1)
    burst_gap_s: float = Field(60.0, ge=1, le=3600)
    cooldown_s: float = Field(300.0, ge=0, le=86400)
    confirm_photos: int = Field(3, ge=2, le=100)
    confirm_factor: float = Field(0.75, gt=0, le=1)
    update_conf_step: float = Field(0.1, gt=0, le=1)
    suppress_after: int = Field(5, ge=0, le=1000)
    suppress_iou: float = Field(0.8, ge=0.3, le=1)

    @field_validator("categories", mode="before")
    @classmethod
    def _categories(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [p for p in re.split(r"[,\s]+", value.strip().lower()) if p]
        names = []
        for v in value or ():
            v = CATEGORY_NAMES.get(str(v), str(v).lower())
            if v not in ALL_CATEGORIES:
                raise ValueError(f"unknown category {v!r} (one of {', '.join(ALL_CATEGORIES)})")
            if v not in names:
                names.append(v)
        return tuple(names)

    @field_validator("active_hours", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> tuple[TimeWindow, ...]:
        if isinstance(value, tuple) and all(isinstance(w, TimeWindow) for w in value):
            return value
        return parse_active_hours(value)

    # -- questions the decisions ask ----------------------------------------------------------------------
    def threshold_for(self, category: str, night: bool) -> float:
        name = CATEGORY_NAMES.get(category, category)
        t = self.threshold.get(name) or DEFAULT_THRESHOLDS[name]
        return t.night if night else t.day

    def alerts_on(self, category: str) -> bool:
        return CATEGORY_NAMES.get(category, category) in self.categories

    def is_active(self, local_time: time | None) -> bool:
        if not self.active_hours or local_time is None:
            return True
        return any(w.contains(local_time) for w in self.active_hours)

    def is_candidate(self, category: str, conf: float, bbox: tuple[float, ...], night: bool) -> bool:
        """Could this detection contribute to an alert (alerting category, big enough, at least weak)?"""
        if not self.alerts_on(category):
            return False
        if bbox[2] * bbox[3] < self.min_box_area:
            return False
        return conf >= self.confirm_factor * self.threshold_for(category, night)


# -- flat keys -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    name: str
    help: str
    example: str


KEYS: dict[str, Key] = {
    k.name: k
    for k in [
        Key(
            "categories", "categories that alert: person, vehicle, animal (comma separated)", "person,vehicle"
        ),
        *[
            Key(f"threshold.{c}.{when}", f"{c} confidence threshold for {when} photos (0..1)", "0.6")
            for c in ALL_CATEGORIES
            for when in ("day", "night")
        ],
        Key("active_hours", "local time windows when detections alert, or 'always'", "18:00-06:00"),
        Key("min_box_area", "smallest box that counts, as a fraction of the image (0..1)", "0.001"),
        Key("burst_gap_s", "photos of one camera closer than this many seconds form one event", "60"),
        Key(
            "cooldown_s",
            "events of a camera within this many seconds of its last alert join that alert",
            "300",
        ),
        Key("confirm_photos", "weak detections in this many photos of one event confirm each other", "3"),
        Key("confirm_factor", "a detection at this fraction of its threshold is weak (1 = off)", "0.75"),
        Key("update_conf_step", "tell rangers again when the best confidence rises by this much", "0.1"),
        Key(
            "suppress_after",
            "a box at the same place in this many events is proposed (person/vehicle: an operator confirms) "
            "or suppressed (animal); 0 = never by count",
            "5",
        ),
        Key("suppress_iou", "overlap (IoU) that makes two boxes 'the same place' (0.3..1)", "0.8"),
    ]
}
SHORTHANDS = {f"threshold.{c}": (f"threshold.{c}.day", f"threshold.{c}.night") for c in ALL_CATEGORIES}


def defaults_flat() -> dict[str, Any]:
    return to_flat(Rules())


def to_flat(rules: Rules) -> dict[str, Any]:
    out: dict[str, Any] = {"categories": ",".join(rules.categories)}
    for c in ALL_CATEGORIES:
        t = rules.threshold.get(c) or DEFAULT_THRESHOLDS[c]
        out[f"threshold.{c}.day"] = t.day
        out[f"threshold.{c}.night"] = t.night
    out["active_hours"] = ",".join(str(w) for w in rules.active_hours) or "always"
    for name in (
        "min_box_area",
        "burst_gap_s",
        "cooldown_s",
        "confirm_photos",
        "confirm_factor",
        "update_conf_step",
        "suppress_after",
        "suppress_iou",
    ):
        out[name] = getattr(rules, name)
    return out


def from_flat(flat: dict[str, Any]) -> Rules:
    """Rules from flat keys (unknown keys raise RulesError)."""
    unknown = sorted(set(flat) - set(KEYS))
    if unknown:
        raise RulesError(f"unknown rule key {unknown[0]!r} (known: {', '.join(KEYS)})")
    data: dict[str, Any] = {}
    thresholds: dict[str, dict[str, Any]] = {c: DEFAULT_THRESHOLDS[c].model_dump() for c in ALL_CATEGORIES}
    for key, value in flat.items():
        if key.startswith("threshold."):
            _, cat, when = key.split(".")
            thresholds[cat][when] = value
        else:
            data[key] = value
    data["threshold"] = thresholds
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        raise RulesError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ()) if not str(p).isdigit()]
    key = ".".join(loc) or "rules"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{key}: {msg}"


def effective_rules(*layers: dict[str, Any] | None) -> Rules:
    """Defaults overlaid by each layer in turn (park, then camera)."""
    flat = defaults_flat()
    for layer in layers:
        flat.update(layer or {})
    return from_flat(flat)


def parse_assignment(text: str) -> dict[str, Any | None]:
    """``key=value`` as given on the command line -> {flat key: typed value}; an empty value (``key=``)
    gives None, which removes the key at that level. ``threshold.person=0.7`` sets day and night."""
    if "=" not in text:
        raise RulesError(f"{text!r}: expected key=value (keys: {', '.join(KEYS)})")
    key, _, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    keys = SHORTHANDS.get(key, (key,))
    for k in keys:
        if k not in KEYS:
            raise RulesError(f"unknown rule key {key!r} (known: {', '.join(KEYS)})")
    if raw == "":
        return {k: None for k in keys}
    value = _typed(keys[0], raw)
    return {k: value for k in keys}


def _typed(key: str, raw: str) -> Any:
    if key in ("categories", "active_hours"):
        try:
            if key == "categories":
                return ",".join(Rules.model_validate({"categories": raw}).categories)
            return ",".join(str(w) for w in parse_active_hours(raw)) or "always"
        except (ValidationError, ValueError) as exc:
            detail = _explain(exc) if isinstance(exc, ValidationError) else f"{key}: {exc}"
            raise RulesError(detail) from None
    try:
        number = json.loads(raw)
    except json.JSONDecodeError:
        raise RulesError(f"{key}: {raw!r} is not a number") from None
    if not isinstance(number, int | float) or isinstance(number, bool) or not math.isfinite(number):
        raise RulesError(f"{key}: {raw!r} is not a number")
    if key in ("confirm_photos", "suppress_after"):
        if number != int(number):
            raise RulesError(f"{key}: {raw!r} must be a whole number")
        number = int(number)
    return number


def apply_assignments(
    layer: dict[str, Any], assignments: dict[str, Any | None], below: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The layer after ``assignments`` (None removes a key); the result, overlaid on ``below`` (the layers
    under it), must give valid rules, else RulesError names the key."""
    new = dict(layer)
    for k, v in assignments.items():
        if v is None:
            new.pop(k, None)
        else:
            new[k] = v
    base = defaults_flat()
    base.update(below or {})
    effective_rules(base, new)  # validates the combination
    return new


def new_layer(
    park_layer: dict[str, Any],
    camera_layer: dict[str, Any],
    assignments: dict[str, Any | None],
    overrides: list[tuple[str, dict[str, Any]]],
    *,
    camera_level: bool,
) -> dict[str, Any]:
    """The park's (or, with ``camera_level``, the camera's) layer after ``assignments``. A camera layer must
    stay valid on top of the park's; a park layer under every camera override of the park (``overrides``:
    camera name, its layer), else RulesError names the key and the camera."""
    if camera_level:
        return apply_assignments(camera_layer, assignments, below=park_layer)
    new = apply_assignments(park_layer, assignments)
    for name, layer in overrides:
        try:
            effective_rules(new, layer)
        except RulesError as exc:
            raise RulesError(f"{exc} (with the override of camera {name})") from None
    return new


# -- one photo -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Det:
    """One detection as stored: MegaDetector category code, confidence, normalized [x, y, w, h]."""

    category: str
    conf: float
    bbox: tuple[float, float, float, float]
    suppressed: bool = False


@dataclass
class PhotoAssessment:
    """What the rules make of one photo. ``ratio`` is the best confidence / threshold over the alerting
    categories (>= 1 passes, >= confirm_factor is weak); ``seen`` maps each category that is at least weak
    to its best confidence; ``reasons`` says why the photo does not pass."""

    active: bool
    night: bool
    ratio: float = 0.0
    passes: bool = False
    weak: bool = False
    seen: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "night": self.night,
            "ratio": round(self.ratio, 4),
            "passes": self.passes,
            "weak": self.weak,
            "seen": self.seen,
            "ratios": {k: round(v, 4) for k, v in self.ratios.items()},
            "reasons": self.reasons,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PhotoAssessment:
        data = data or {}
        return cls(
            active=bool(data.get("active", True)),
            night=bool(data.get("night", False)),
            ratio=float(data.get("ratio", 0.0)),
            passes=bool(data.get("passes", False)),
            weak=bool(data.get("weak", False)),
            seen=dict(data.get("seen") or {}),
            ratios=dict(data.get("ratios") or {}),
            reasons=list(data.get("reasons") or []),
        )


_RATIO_CAP = 1000.0


def assess_photo(
    detections: list[Det], rules: Rules, *, night: bool, local_time: time | None
) -> PhotoAssessment:
    """Judge one photo's detections against the rules (see the module docstring)."""
    active = rules.is_active(local_time)
    out = PhotoAssessment(active=active, night=night)
    ignored: dict[str, int] = {"category": 0, "small": 0, "suppressed": 0}
    for d in detections:
        if not rules.alerts_on(d.category):
            ignored["category"] += 1
            continue
        if d.bbox[2] * d.bbox[3] < rules.min_box_area:
            ignored["small"] += 1
            continue
        if d.suppressed:
            ignored["suppressed"] += 1
            continue
        name = CATEGORY_NAMES.get(d.category, d.category)
        threshold = rules.threshold_for(d.category, night)
        ratio = min(_RATIO_CAP, d.conf / threshold) if threshold > 0 else _RATIO_CAP
        if ratio > out.ratios.get(name, -1.0):
            out.ratios[name] = ratio
        if ratio >= rules.confirm_factor:
            out.seen[name] = max(out.seen.get(name, 0.0), round(d.conf, 4))
    out.ratio = max(out.ratios.values(), default=0.0)
    if not active:
        out.reasons.append("outside active hours")
        return out
    out.passes = out.ratio >= 1.0
    out.weak = out.ratio >= rules.confirm_factor
    if not out.passes:
        if not detections:
            out.reasons.append("no detection")
        elif out.ratios:
            out.reasons.append(
                f"below threshold (best {out.ratio:.2f} of the {'night' if night else 'day'} threshold)"
            )
        for what, n in ignored.items():
            if n:
                out.reasons.append(
                    {
                        "category": f"{n} detection(s) of a category that does not alert",
                        "small": f"{n} box(es) smaller than min_box_area",
                        "suppressed": f"{n} box(es) inside a suppressed static false positive",
                    }[what]
                )
    return out
