"""What each event was, for science (Camtrap DP ``observations``, at event level): pure, no I/O.

* **By the machine**: the detector's boxes of the event's photos; a category counts when one of its boxes
  reaches ``threshold`` (boxes inside a suppressed static false positive, a stump or a rock, never count).
  One observation per category found (``animal``, ``human``, ``vehicle``), with the best confidence as
  ``classificationProbability`` and the most boxes of that category in one photo as ``count``; none found:
  one ``blank`` observation.
* **By a ranger**: the feedback on the event's alert (on the whole alert, or on one of the event's photos).
  The latest verdict of each person on each photo counts, and of those the most recent that is not
  ``unsure``: ``confirmed`` keeps the machine's types (or the corrected ``what``), ``false_positive`` says
  what it really was (``animal``, ``staff_vehicle``; ``shadow``, ``stump``, ``vegetation`` are ``blank``;
  otherwise the machine's types that did not alert remain, else ``unknown``). Such observations have
  ``classificationMethod`` ``human`` and the person in ``classifiedBy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ObservationType = Literal["animal", "human", "vehicle", "blank", "unknown", "unclassified"]

# MegaDetector category -> Camtrap DP observationType
TYPE_OF_CATEGORY: dict[str, ObservationType] = {"1": "animal", "2": "human", "3": "vehicle"}
# the alerting category names of functions/domain/rules.py -> observationType
TYPE_OF_NAME: dict[str, ObservationType] = {"animal": "animal", "person": "human", "vehicle": "vehicle"}
# a ranger's `what` -> observationType
TYPE_OF_WHAT: dict[str, ObservationType] = {
    "animal": "animal",
    "person": "human",
    "human": "human",
    "vehicle": "vehicle",
    "staff_vehicle": "vehicle",
    "shadow": "blank",
    "stump": "blank",
    "vegetation": "blank",
    "blank": "blank",
}
_ORDER = {"human": 0, "vehicle": 1, "animal": 2, "unknown": 3, "blank": 4, "unclassified": 5}
DEFAULT_THRESHOLD = 0.2  # MegaDetector v5's typical threshold (the maintainer's recommendation)


@dataclass(frozen=True)
class Observation:
    type: ObservationType
    method: Literal["machine", "human"]
    classified_by: str | None
    classified_at: datetime | None = None
    probability: float | None = None
    count: int | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


def machine_types(
    photos: Iterable[Mapping[str, Any]], threshold: float
) -> dict[ObservationType, tuple[float, int]]:
    """{type: (best confidence, most boxes in one photo)} over the photos' unsuppressed boxes >= threshold."""
    out: dict[ObservationType, tuple[float, int]] = {}
    for photo in photos:
        per_photo: dict[ObservationType, int] = {}
        for d in photo.get("detections") or []:
            kind = TYPE_OF_CATEGORY.get(str(d["category"]))
            if kind is None or d.get("suppressed") or float(d["conf"]) < threshold:
                continue
            per_photo[kind] = per_photo.get(kind, 0) + 1
            best, most = out.get(kind, (0.0, 0))
            out[kind] = (max(best, float(d["conf"])), most)
        for kind, n in per_photo.items():
            best, most = out[kind]
            out[kind] = (best, max(most, n))
    return dict(sorted(out.items(), key=lambda kv: _ORDER[kv[0]]))


def deciding_feedback(
    feedback: Iterable[Mapping[str, Any]], alert_id: int | None, image_ids: set[int]
) -> Mapping[str, Any] | None:
    """The verdict that classifies the event, or None (see the module's docstring)."""
    if alert_id is None:
        return None
    latest: dict[tuple[int | None, str], Mapping[str, Any]] = {}
    for f in sorted(feedback, key=lambda f: (f["created_at"], f.get("id", 0))):
        if f["alert_id"] != alert_id or (f.get("image_id") is not None and f["image_id"] not in image_ids):
            continue
        latest[(f.get("image_id"), f["user_name"])] = f
    decided = [f for f in latest.values() if f["verdict"] != "unsure"]
    return max(decided, key=lambda f: (f["created_at"], f.get("id", 0))) if decided else None


def classify_event(
    photos: list[Mapping[str, Any]],
    *,
    alert_id: int | None,
    alerted: Iterable[str] = (),
    feedback: Iterable[Mapping[str, Any]] = (),
    detector: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Observation]:
    """The observations of one event. ``photos``: the event's photos, each with ``id`` and ``detections``
    (category, conf, suppressed); ``alerted``: the category names the event alerted for (its summary)."""
    found = machine_types(photos, threshold)
    verdict = deciding_feedback(feedback, alert_id, {int(p["id"]) for p in photos})
    if verdict is None:
        if not found:
            return [Observation("blank", "machine", detector)]
        return [
            Observation(kind, "machine", detector, probability=round(best, 4), count=most)
            for kind, (best, most) in found.items()
        ]

    what = (verdict.get("what") or "").strip().lower() or None
    tags = (f"feedback:{verdict['verdict']}" + (f":{what}" if what else ""),)
    corrected = TYPE_OF_WHAT.get(what) if what else None
    kinds: list[ObservationType]
    if corrected is not None:
        kinds = [corrected]
    elif verdict["verdict"] == "confirmed":
        kinds = list(found) or ["unknown"]
    else:  # false_positive: what alerted was wrong; what did not alert stays
        wrong = {TYPE_OF_NAME.get(c) for c in alerted}
        kinds = [k for k in found if k not in wrong] or ["unknown"]
    return [
        Observation(
            kind,
            "human",
            verdict["user_name"],
            classified_at=verdict["created_at"],
            count=found[kind][1] if kind in found else None,
            tags=tags,
        )
        for kind in kinds
    ]


def has_person(photo: Mapping[str, Any]) -> bool:
    """Any person box at all, whatever its confidence (``filePublic`` errs on the side of privacy)."""
    return any(str(d["category"]) == "2" for d in photo.get("detections") or [])
