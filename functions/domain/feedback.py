"""Rangers' feedback, as numbers an operator can act on. Pure: no I/O.

Verdicts (table feedback, migration 0013): ``confirmed`` (a real sighting), ``false_positive`` (with what
it really was: animal, shadow, stump, staff_vehicle, vegetation, other) or ``unsure``, on a whole alert or on
one photo of it. Several people may judge the same alert, and a person may change their mind:

* **latest verdict**: per (alert, photo, user) only the newest verdict counts; older ones stay for the
  audit trail (:func:`latest_verdicts`);
* **an alert's verdict** (:func:`alert_verdict`): the newest verdict on the whole alert, from anyone, if
  there is one; else from its photos: ``confirmed`` if any photo was confirmed, ``false_positive`` if every
  judged photo was a false positive. ``unsure`` counts for nothing.

**Precision of a camera** = confirmed / (confirmed + false_positive) over its judged alerts
(:func:`camera_precision`); None while nothing was judged.

**Suggested threshold** (:func:`suggest_thresholds`), per category and day/night (the keys of
``trapalert rules set``), from the best confidence of each judged alert in that category:

1. at least ``MIN_FALSE_POSITIVES`` (3) false positives are needed, else no suggestion;
2. the candidate is the smallest threshold, on a 0.01 grid, that would have removed at least
   ``TARGET_REMOVED`` (80 %) of the false positives (a false positive is removed when its confidence is below
   the threshold);
3. the candidate must keep **every** confirmed sighting (each confirmed confidence >= the candidate); if it
   does not, there is no threshold suggestion: the false positives score as high as real sightings, and the
   answer is a suppression of the place or nothing;
4. a candidate at or below the current threshold is no change (these false positives alerted through
   the burst rule, or the current threshold is already there);
5. a threshold is never suggested down: lowering one can't be judged from the alerts it sent.

A suggestion is only printed (``trapalert feedback suggest``) and shown in the console; applying it is an
explicit rules edit by an operator (``trapalert rules set ... threshold.person.night=0.72``), audited.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from .rules import CATEGORY_NAMES

Verdict = Literal["confirmed", "false_positive", "unsure"]
VERDICTS: tuple[str, ...] = ("confirmed", "false_positive", "unsure")
FALSE_POSITIVE_WHAT: tuple[str, ...] = ("animal", "shadow", "stump", "staff_vehicle", "vegetation", "other")
CONFIRMED_WHAT: tuple[str, ...] = ("person", "vehicle", "animal")

MIN_FALSE_POSITIVES = 3
TARGET_REMOVED = 0.8
MAX_THRESHOLD = 0.99


class FeedbackError(ValueError):
    """Feedback that cannot be recorded as given (unknown verdict, a `what` that does not fit it, ...)."""


def check_feedback(verdict: str, what: str | None, note: str | None) -> tuple[str, str | None, str | None]:
    """The verdict, ``what`` and note as stored (normalized), or FeedbackError."""
    verdict = (verdict or "").strip().lower().replace("-", "_").replace(" ", "_")
    if verdict in ("fp", "false"):
        verdict = "false_positive"
    if verdict not in VERDICTS:
        raise FeedbackError(f"verdict must be one of {', '.join(VERDICTS)}")
    what = (what or "").strip().lower().replace(" ", "_").replace("-", "_") or None
    if what is not None:
        allowed = FALSE_POSITIVE_WHAT if verdict == "false_positive" else CONFIRMED_WHAT
        if verdict == "unsure" or what not in allowed:
            raise FeedbackError(
                f"'what' for {verdict} must be one of {', '.join(allowed)}"
                if verdict != "unsure"
                else "'what' is not given with 'unsure'"
            )
    note = (note or "").strip()[:2000] or None
    return verdict, what, note


@dataclass(frozen=True)
class FeedbackRow:
    """One stored verdict."""

    id: int
    alert_id: int
    image_id: int | None
    verdict: str
    user: str
    created_at: datetime
    what: str | None = None


def latest_verdicts(rows: Iterable[FeedbackRow]) -> list[FeedbackRow]:
    """The newest verdict per (alert, photo, user); ties broken by id."""
    best: dict[tuple[int, int | None, str], FeedbackRow] = {}
    for r in rows:
        key = (r.alert_id, r.image_id, r.user)
        cur = best.get(key)
        if cur is None or (r.created_at, r.id) > (cur.created_at, cur.id):
            best[key] = r
    return sorted(best.values(), key=lambda r: (r.created_at, r.id))


def alert_verdict(rows: Iterable[FeedbackRow]) -> str | None:
    """The verdict of one alert from its feedback rows (see the module docstring); None: not judged."""
    latest = latest_verdicts(rows)
    whole = [r for r in latest if r.image_id is None and r.verdict != "unsure"]
    if whole:
        return whole[-1].verdict
    photos = [r for r in latest if r.image_id is not None and r.verdict != "unsure"]
    # per photo, the newest verdict of anyone
    per_photo: dict[int, FeedbackRow] = {}
    for r in photos:
        per_photo[r.image_id] = r  # sorted oldest first: the last one wins
    if not per_photo:
        return None
    if any(r.verdict == "confirmed" for r in per_photo.values()):
        return "confirmed"
    return "false_positive"


def photo_verdict(rows: Iterable[FeedbackRow], image_id: int) -> str | None:
    """The verdict that applies to one photo: its own newest verdict, else the alert's whole verdict."""
    latest = [r for r in latest_verdicts(rows) if r.verdict != "unsure"]
    own = [r for r in latest if r.image_id == image_id]
    if own:
        return own[-1].verdict
    whole = [r for r in latest if r.image_id is None]
    return whole[-1].verdict if whole else None


@dataclass(frozen=True)
class Precision:
    confirmed: int
    false_positive: int
    unsure: int
    precision: float | None

    def to_json(self) -> dict:
        return {
            "confirmed": self.confirmed,
            "false_positive": self.false_positive,
            "unsure": self.unsure,
            "precision": None if self.precision is None else round(self.precision, 4),
        }


def camera_precision(rows_by_alert: dict[int, list[FeedbackRow]]) -> Precision:
    """confirmed / (confirmed + false_positive) over the judged alerts of one camera."""
    confirmed = fp = unsure = 0
    for rows in rows_by_alert.values():
        v = alert_verdict(rows)
        if v == "confirmed":
            confirmed += 1
        elif v == "false_positive":
            fp += 1
        elif rows:
            unsure += 1
    judged = confirmed + fp
    return Precision(confirmed, fp, unsure, confirmed / judged if judged else None)


@dataclass(frozen=True)
class Sample:
    """One judged alert's best confidence in one category, day or night."""

    verdict: str
    category: str  # person, vehicle, animal
    night: bool
    conf: float


@dataclass
class ThresholdSuggestion:
    key: str  # e.g. threshold.person.night
    current: float
    suggested: float | None
    false_positives: int
    confirmed: int
    removed_false_positives: int = 0
    reason: str = ""
    fp_confs: list[float] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "key": self.key,
            "current": self.current,
            "suggested": self.suggested,
            "false_positives": self.false_positives,
            "confirmed": self.confirmed,
            "removed_false_positives": self.removed_false_positives,
            "reason": self.reason,
        }


def _ceil2(x: float) -> float:
    return math.ceil(round(x * 100, 6)) / 100


def suggest_threshold(samples: list[Sample], key: str, current: float) -> ThresholdSuggestion:
    """The rule of the module docstring for one key (all ``samples`` of that category and time of day)."""
    fps = sorted(s.conf for s in samples if s.verdict == "false_positive")
    oks = sorted(s.conf for s in samples if s.verdict == "confirmed")
    out = ThresholdSuggestion(key, current, None, len(fps), len(oks), fp_confs=fps)
    if len(fps) < MIN_FALSE_POSITIVES:
        out.reason = f"{len(fps)} false positive(s) judged; at least {MIN_FALSE_POSITIVES} are needed"
        return out
    need = math.ceil(TARGET_REMOVED * len(fps))
    # smallest grid value strictly above the need-th smallest false positive removes at least `need`
    candidate = _ceil2(fps[need - 1] + 1e-9)
    if candidate <= fps[need - 1]:
        candidate = round(candidate + 0.01, 2)
    candidate = min(candidate, MAX_THRESHOLD)
    removed = sum(1 for c in fps if c < candidate)
    if removed < need:
        out.reason = "the false positives score at the top of the scale: no threshold removes them"
        return out
    if oks and oks[0] < candidate:
        out.reason = (
            f"a threshold of {candidate:.2f} would remove {removed} of {len(fps)} false positives but also "
            f"{sum(1 for c in oks if c < candidate)} of {len(oks)} confirmed sightings: the false positives "
            "score as high as real ones (a suppression of the place may fit better)"
        )
        return out
    if candidate <= current:
        out.reason = (
            f"{candidate:.2f} (which removes {removed} of {len(fps)} false positives) is not above the "
            f"current {current:.2f}"
        )
        return out
    out.suggested, out.removed_false_positives = candidate, removed
    out.reason = (
        f"{key}={candidate:.2f} would have removed {removed} of {len(fps)} false positives and kept all "
        f"{len(oks)} confirmed sightings"
    )
    return out


def suggest_thresholds(samples: list[Sample], current: dict[str, float]) -> list[ThresholdSuggestion]:
    """One suggestion per ``threshold.<category>.<day|night>`` key that has judged samples. ``current``:
    the camera's effective thresholds by key."""
    keys: dict[str, list[Sample]] = {}
    for s in samples:
        if s.verdict not in ("confirmed", "false_positive"):
            continue
        keys.setdefault(f"threshold.{s.category}.{'night' if s.night else 'day'}", []).append(s)
    return [suggest_threshold(v, k, float(current.get(k, 0.0))) for k, v in sorted(keys.items())]


def samples_of(photos: Iterable[tuple[int, bool, dict[str, float]]], verdict: str | None) -> list[Sample]:
    """One judged alert's samples: its best confidence per (category, day/night) over its photos
    (``(image id, night, {category: best confidence})``, as the photos' assessments record them)."""
    if verdict not in ("confirmed", "false_positive"):
        return []
    best: dict[tuple[str, bool], float] = {}
    for _image_id, night, seen in photos:
        for cat, conf in (seen or {}).items():
            key = (CATEGORY_NAMES.get(cat, cat), bool(night))
            best[key] = max(best.get(key, 0.0), float(conf))
    return [Sample(verdict, c, n, v) for (c, n), v in sorted(best.items())]
