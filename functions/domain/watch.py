"""Theft and tamper watch (pure, no I/O): three camera-health conditions that say someone may be taking or
tampering with a camera. They are raised and cleared like every health condition (functions/domain/health.py
``transitions``; one health alert per camera and condition, announced through the outbox).

- ``someone_at_camera``: a photo shows a person box that covers a large part of the frame (area at least
  ``close_person_area`` or height at least ``close_person_height``) with a confidence at least the rules'
  person threshold (day or night): someone is standing at the camera. Decided from each scored photo by
  process-image, so it is raised with that photo. Cleared when the next ``close_person_clear_photos``
  photos of the camera show no such box, or by the camera-health timer when no such photo came for
  ``close_person_quiet_s``.
- ``view_changed``: the view changed abruptly (camera moved, turned, knocked down or covered). Each photo's
  view signature (functions/inbound/view_signature.py) is compared with the per-pixel median of the
  camera's last ``view_refs`` reference photos of the same light regime (colour day frames with colour
  frames, greyscale infrared frames with infrared frames). The distance is 1 - the correlation of the two
  normalised thumbnails: lighting, exposure and noise hardly move it, another scene does. A photo is *off*
  when the distance exceeds ``view_max_distance``; a blank frame (covered lens, a camera face down) is
  always off. Raised when the last ``view_photos`` compared photos are all off and agree with each other
  (every two within ``view_max_distance``, or blank): a moved camera sees its new view photo after photo,
  while vegetation in the wind or passing animals make photos that differ from each other too. Photos with
  a large detection box (an animal or a person right in front of the lens) are not compared. The first
  photos of a regime (fewer than ``view_min_refs`` references) build the reference (*baseline*).
  Cleared when ``view_clear_photos`` photos in a row match the reference again (the camera was put back),
  or when the new view is *adopted*: after ``view_adopt_photos`` off photos in a row that agree with each
  other (and none is blank), the new view becomes the reference and the condition clears (the camera was
  re-aimed on purpose, or rangers know it was moved). A covered camera never adopts its blank view.
- ``neighbours_silent``: at least ``neighbours_min`` cameras of one park that are neighbours (the same zone,
  or within ``neighbours_radius_m`` of each other, chained) are all silent (their own ``silent`` condition)
  and their last reports lie within ``neighbours_window_s`` of each other: they went silent together (a
  team collecting cameras, a cut power or network). Evaluated by the camera-health timer with the park's
  thresholds. ONE health alert for the group, on the group's camera with the smallest id (its *anchor*: the
  alert's map position), naming every camera; cameras that go silent later do not raise a second alert for
  the same group. Cleared when fewer than ``neighbours_min`` of the group's cameras are still silent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from .health import Condition, Finding, Thresholds
from .rules import Det

PERSON = "2"  # MegaDetector category of a person
FLAT_STD = 3.0  # a thumbnail whose grey levels vary less than this (0..255) is blank
BIG_BOX_MIN_CONF = (
    0.2  # a detection at least this sure and this big hides the view: the photo is not compared
)
VIEW_STATES = ("baseline", "match", "off", "skipped", "unknown")
COMPARED = ("baseline", "match", "off")


# -- signatures -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signature:
    grey: bool
    pixels: tuple[int, ...]

    @property
    def regime(self) -> str:
        return "ir" if self.grey else "day"

    @property
    def flat(self) -> bool:
        return _std(self.pixels) < FLAT_STD


def parse_signature(text: str | None) -> Signature | None:
    """``v1:<g|c>:<hex>`` (functions/inbound/view_signature.py) -> Signature; None for anything else."""
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != "v1" or parts[1] not in ("g", "c"):
        return None
    try:
        pixels = tuple(bytes.fromhex(parts[2]))
    except ValueError:
        return None
    if len(pixels) < 16:
        return None
    return Signature(parts[1] == "g", pixels)


def regime_of(text: str | None) -> str | None:
    sig = parse_signature(text)
    return sig.regime if sig else None


def _std(values: tuple[float, ...] | list[float]) -> float:
    n = len(values)
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / n)


def reference(signatures: list[Signature]) -> tuple[float, ...]:
    """The per-pixel median of the reference photos' thumbnails."""
    return tuple(median(px) for px in zip(*(s.pixels for s in signatures), strict=True))


def distance(pixels: tuple[float, ...], ref: tuple[float, ...]) -> float:
    """1 - the correlation of two thumbnails (0 same view .. 1 unrelated or opposite); a blank thumbnail is at
    distance 1 from any other view, and 0 from another blank one of about the same brightness."""
    if len(pixels) != len(ref):
        return 1.0
    sa, sr = _std(pixels), _std(ref)
    if sa < FLAT_STD or sr < FLAT_STD:
        both = sa < FLAT_STD and sr < FLAT_STD
        return 0.0 if both and abs(sum(pixels) / len(pixels) - sum(ref) / len(ref)) < 32 else 1.0
    ma, mr = sum(pixels) / len(pixels), sum(ref) / len(ref)
    corr = sum((a - ma) * (r - mr) for a, r in zip(pixels, ref, strict=True)) / (len(pixels) * sa * sr)
    return round(min(1.0, max(0.0, 1.0 - corr)), 4)


# -- one photo --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WatchedPhoto:
    """An earlier photo of the camera as the watch recorded it (``images.watch``), newest first."""

    image_id: int
    view: str
    close_person: bool
    regime: str | None = None
    sig: str | None = None


@dataclass(frozen=True)
class PhotoFacts:
    camera_name: str
    image_id: int
    sig: str | None
    detections: tuple[Det, ...]
    person_threshold: float  # the rules' person threshold for this photo (day or night)
    history: tuple[WatchedPhoto, ...]  # earlier watched photos of the camera, newest first
    references: tuple[str, ...]  # signatures of the reference photos of this photo's regime, newest first
    raised: frozenset[str]
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass(frozen=True)
class Adopt:
    """The new view becomes the reference: it starts at ``since_image_id``; ``image_ids`` become matches."""

    since_image_id: int
    image_ids: tuple[int, ...]


@dataclass(frozen=True)
class PhotoWatch:
    record: dict[str, Any]  # what is stored as images.watch
    findings: dict[Condition, Finding]
    adopt: Adopt | None = None


def history_size(t: Thresholds) -> int:
    """How many earlier watched photos :func:`watch_photo` needs (skipped photos in between included)."""
    return 3 * int(max(t.view_photos, t.view_clear_photos, t.view_adopt_photos, t.close_person_clear_photos))


def close_person(dets: tuple[Det, ...], person_threshold: float, t: Thresholds) -> Det | None:
    """The largest sure person box that covers a large part of the frame, if any."""
    found = [
        d
        for d in dets
        if d.category == PERSON
        and d.conf >= person_threshold
        and (d.bbox[2] * d.bbox[3] >= t.close_person_area or d.bbox[3] >= t.close_person_height)
    ]
    return max(found, key=lambda d: d.bbox[2] * d.bbox[3], default=None)


def _big_box(dets: tuple[Det, ...], t: Thresholds) -> bool:
    return any(
        d.conf >= BIG_BOX_MIN_CONF
        and (d.bbox[2] * d.bbox[3] >= t.close_person_area or d.bbox[3] >= t.close_person_height)
        for d in dets
    )


def watch_photo(f: PhotoFacts) -> PhotoWatch:
    """What one scored photo says about ``someone_at_camera`` and ``view_changed``."""
    t = f.thresholds
    sig = parse_signature(f.sig)
    person = close_person(f.detections, f.person_threshold, t)
    record: dict[str, Any] = {
        "close_person": person is not None,
        "regime": sig.regime if sig else None,
        "view_distance": None,
    }
    if person is not None:
        record["person"] = {"conf": round(person.conf, 3), "bbox": [round(v, 4) for v in person.bbox]}

    if sig is None:
        record["view"] = "unknown"
    elif _big_box(f.detections, t):
        record["view"] = "skipped"
    elif sig.flat:
        record["view"], record["view_distance"] = "off", 1.0
    else:
        refs = [s for s in (parse_signature(r) for r in f.references) if s and s.regime == sig.regime]
        refs = refs[: int(t.view_refs)]
        if len(refs) < int(t.view_min_refs):
            record["view"] = "baseline"
        else:
            d = distance(sig.pixels, reference(refs))
            record["view"], record["view_distance"] = ("off" if d > t.view_max_distance else "match"), d

    this = WatchedPhoto(f.image_id, record["view"], person is not None, record["regime"], f.sig)
    seq = [this, *f.history]
    findings: dict[Condition, Finding] = {"someone_at_camera": _someone(f, person, seq)}
    view, adopt = _view(f, seq, record)
    findings["view_changed"] = view
    return PhotoWatch(record, findings, adopt)


def _someone(f: PhotoFacts, person: Det | None, seq: list[WatchedPhoto]) -> Finding:
    t = f.thresholds
    if person is not None:
        area = person.bbox[2] * person.bbox[3]
        return Finding(
            "someone_at_camera",
            True,
            f"Camera {f.camera_name}: someone is at the camera (a person fills {area:.0%} of the frame, "
            f"{person.bbox[3]:.0%} of its height; confidence {person.conf:.2f}). "
            "Possible tampering or theft.",
            {
                "image_id": f.image_id,
                "conf": round(person.conf, 3),
                "area": round(area, 3),
                "height": round(person.bbox[3], 3),
                "min_area": t.close_person_area,
                "min_height": t.close_person_height,
            },
        )
    n = int(t.close_person_clear_photos)
    if "someone_at_camera" in f.raised and len(seq) >= n and not any(p.close_person for p in seq[:n]):
        return Finding(
            "someone_at_camera",
            False,
            f"Camera {f.camera_name}: no one at the camera in the last {n} photos.",
            {"image_id": f.image_id, "photos": n},
        )
    return Finding("someone_at_camera", None)


def _view(f: PhotoFacts, seq: list[WatchedPhoto], record: dict[str, Any]) -> tuple[Finding, Adopt | None]:
    t = f.thresholds
    compared = [p for p in seq if p.view in COMPARED]
    streak = 0
    for p in compared:
        if p.view != "off":
            break
        streak += 1
    raised = "view_changed" in f.raised
    adopt_n, m = int(t.view_adopt_photos), int(t.view_photos)
    if streak >= adopt_n and _agree(compared[:adopt_n], t, blank_ok=False):
        ids = tuple(sorted(p.image_id for p in compared[:adopt_n]))
        return (
            Finding(
                "view_changed",
                False if raised else None,
                f"Camera {f.camera_name}: its new view was stable for {streak} photos and is now its "
                "reference view (view changed cleared).",
                {"adopted": True, "photos": streak, "since_image_id": ids[0]},
            ),
            Adopt(ids[0], ids),
        )
    if streak >= m and _agree(compared[:m], t, blank_ok=True):
        blank = all(_is_blank(p) for p in compared[:m])
        what = "are blank (lens covered, or the camera faces the ground?)" if blank else "show another view"
        d = record.get("view_distance")
        return (
            Finding(
                "view_changed",
                True,
                f"Camera {f.camera_name}: the view changed: its last {streak} photos {what} "
                f"(distance {d if d is not None else 1.0:.2f} > {t.view_max_distance:.2f}). "
                "The camera may have been moved, knocked down, covered or stolen.",
                {
                    "image_id": f.image_id,
                    "photos": streak,
                    "distance": d,
                    "max_distance": t.view_max_distance,
                    "blank": blank,
                },
            ),
            None,
        )
    n = int(t.view_clear_photos)
    # a baseline photo (the first of its light regime) says nothing about the usual view: only matches clear
    if raised and len(compared) >= n and all(p.view == "match" for p in compared[:n]):
        return (
            Finding(
                "view_changed",
                False,
                f"Camera {f.camera_name}: its last {n} photos show its usual view again "
                "(view changed cleared).",
                {"image_id": f.image_id, "photos": n, "distance": record.get("view_distance")},
            ),
            None,
        )
    return Finding("view_changed", None), None


def _is_blank(p: WatchedPhoto) -> bool:
    sig = parse_signature(p.sig)
    return sig is None or sig.flat


def _agree(photos: list[WatchedPhoto], t: Thresholds, *, blank_ok: bool) -> bool:
    """The photos show one view: per light regime, every two are within ``view_max_distance``.
    A moved or knocked-down camera sees its new view photo after photo; photos that differ from the
    reference *and* from each other (vegetation in the wind, animals passing) are no changed view. Blank
    photos (a covered lens) agree with each other; ``blank_ok`` False: a blank view is never adopted."""
    by_regime: dict[str, list[Signature]] = {}
    for p in photos:
        sig = parse_signature(p.sig)
        if sig is None or sig.flat:
            if not blank_ok:
                return False
            continue
        by_regime.setdefault(sig.regime, []).append(sig)
    for group in by_regime.values():
        for i, a in enumerate(group):
            if any(distance(a.pixels, b.pixels) > t.view_max_distance for b in group[i + 1 :]):
                return False
    return True


# -- the timer: neighbours going silent together -------------------------------------------------------
@dataclass(frozen=True)
class Neighbour:
    """One active camera as the neighbours check sees it."""

    camera_id: int
    park_id: int
    name: str
    silent: bool
    since: datetime | None  # its last report (or registration)
    zone: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    group: tuple[int, ...] = ()  # raised neighbours_silent on this camera: the ids of its group


def metres(a: Neighbour, b: Neighbour) -> float | None:
    """Great-circle distance (haversine, mean Earth radius) between two cameras, None without coordinates."""
    if a.latitude is None or a.longitude is None or b.latitude is None or b.longitude is None:
        return None
    lat1, lon1, lat2, lon2 = (math.radians(v) for v in (a.latitude, a.longitude, b.latitude, b.longitude))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(min(1.0, h)))


def _near(a: Neighbour, b: Neighbour, t: Thresholds) -> bool:
    if a.zone and b.zone and a.zone.strip().lower() == b.zone.strip().lower():
        return True
    m = metres(a, b)
    return m is not None and m <= t.neighbours_radius_m


def _components(cams: list[Neighbour], t: Thresholds) -> list[list[Neighbour]]:
    seen: set[int] = set()
    out = []
    for c in cams:
        if c.camera_id in seen:
            continue
        comp, todo = [], [c]
        seen.add(c.camera_id)
        while todo:
            x = todo.pop()
            comp.append(x)
            for y in cams:
                if y.camera_id not in seen and _near(x, y, t):
                    seen.add(y.camera_id)
                    todo.append(y)
        out.append(comp)
    return out


def _together(comp: list[Neighbour], window_s: float) -> list[Neighbour]:
    """The largest subset whose last reports lie within ``window_s`` of each other."""
    timed = sorted((c for c in comp if c.since is not None), key=lambda c: c.since)  # type: ignore[arg-type,return-value]
    best: list[Neighbour] = []
    start = 0
    for end in range(len(timed)):
        while (timed[end].since - timed[start].since).total_seconds() > window_s:  # type: ignore[operator]
            start += 1
        if end - start + 1 > len(best):
            best = timed[start : end + 1]
    return best


def neighbours_silent(cameras: list[Neighbour], thresholds: dict[int, Thresholds]) -> dict[int, Finding]:
    """``neighbours_silent`` findings by camera id (only anchors get one): True for a new group, False for a
    raised group of which fewer than ``neighbours_min`` cameras are still silent. ``thresholds`` by park."""
    out: dict[int, Finding] = {}
    by_id = {c.camera_id: c for c in cameras}
    for park_id in sorted({c.park_id for c in cameras}):
        t = thresholds.get(park_id) or Thresholds()
        need = int(t.neighbours_min)
        cams = [c for c in cameras if c.park_id == park_id]
        covered: set[int] = set()
        for anchor in (c for c in cams if c.group):
            still = [i for i in anchor.group if i in by_id and by_id[i].silent]
            if len(still) < need:
                back = [by_id[i].name for i in anchor.group if i in by_id and not by_id[i].silent]
                out[anchor.camera_id] = Finding(
                    "neighbours_silent",
                    False,
                    f"Cameras near {anchor.name} report again ({', '.join(back) or 'removed'}); "
                    f"{len(still)} still silent.",
                    {"camera_ids": list(anchor.group), "still_silent": still},
                )
            else:
                covered.update(anchor.group)
        silent = [c for c in cams if c.silent and c.camera_id not in covered]
        for comp in _components(silent, t):
            group = _together(comp, t.neighbours_window_s)
            if len(group) < need:
                continue
            group = sorted(group, key=lambda c: c.camera_id)
            anchor = group[0]
            if anchor.camera_id in out:  # its old group just cleared: raise the new one at the next run
                continue
            names = [c.name for c in group]
            zones = sorted({c.zone for c in group if c.zone})
            out[anchor.camera_id] = Finding(
                "neighbours_silent",
                True,
                f"{len(group)} neighbouring cameras went silent together: {', '.join(names)}"
                f"{' (zone ' + ', '.join(zones) + ')' if zones else ''}. They may have been found and taken.",
                {
                    "camera_ids": [c.camera_id for c in group],
                    "cameras": names,
                    "zones": zones,
                    "last_seen": {c.name: c.since.isoformat() for c in group if c.since},
                    "min_cameras": need,
                    "radius_m": t.neighbours_radius_m,
                    "window_s": t.neighbours_window_s,
                },
            )
    return out
