"""The MegaDetector output format ("MD JSON"), written in ONE place: the `trapalert export md-json` export and
the batch lane's results both go through :func:`md_document`, so both open in Timelapse and the other tools
of the field.

Written from the format's description (agentmorris/MegaDetector ``megadetector-output-format.md``, permanent
link https://lila.science/megadetector-output-format) and its validator's rules
(``megadetector/postprocessing/validate_batch_results.py``):

* ``info.format_version`` is a string-formatted float (required); ``detector``, ``detection_completion_time``
  (UTC ``YYYY-MM-DD HH:MM:SS``) and ``detector_metadata`` (with ``typical_detection_threshold`` and
  ``conservative_detection_threshold``, which Timelapse reads as its default thresholds) are optional;
* ``detection_categories`` maps string-formatted ints to names; "1" animal, "2" person, "3" vehicle;
* ``images`` (required, may be empty): each ``file`` once (relative, forward slashes); a processed image has
  ``detections`` (an empty list when nothing was found), each ``{category, conf (a float), bbox [x_min, y_min,
  width, height] normalized, origin top-left}``; an image that was not processed has a ``failure`` string
  and ``detections: null`` (never an empty list).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..domain.rules import CATEGORY_NAMES

FORMAT_VERSION = "1.4"  # as the scoring service writes it (scoring/schemas.py)
DETECTION_CATEGORIES: dict[str, str] = dict(CATEGORY_NAMES)  # MegaDetector's codes, from the one map
CONF_DIGITS = 3
COORD_DIGITS = 4

# Thresholds the model's maintainer recommends (MegaDetector ``megadetector/detection/run_detector.py``
# ``known_models``): (typical, conservative; none published for v1000). Matched on the model file's name,
# most specific first.
KNOWN_THRESHOLDS: tuple[tuple[str, float, float | None], ...] = (
    ("v1000", 0.3, None),
    ("v5", 0.2, 0.05),
    ("v4", 0.8, 0.3),
)


class MDFormatError(ValueError):
    """A document that Timelapse and the format's validator would refuse (the message says which rule)."""


def completion_time(when: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, as MegaDetector writes ``detection_completion_time``."""
    when = when or datetime.now(UTC)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def detector_info(
    detector: str | None,
    detector_version: str | None = None,
    completed_at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``info`` block of a model (its name as the scoring service reports it, e.g. ``md_v5a.0.0.pt``).
    ``detector_metadata`` gets the maintainer's thresholds when the model is a known MegaDetector."""
    name = detector or "unknown"
    meta: dict[str, Any] = {}
    low = f"{name} {detector_version or ''}".lower()
    for key, typical, conservative in KNOWN_THRESHOLDS:
        if key in low:
            meta = {"typical_detection_threshold": typical}
            if conservative is not None:
                meta["conservative_detection_threshold"] = conservative
            break
    if detector_version:
        meta["megadetector_version"] = detector_version
    meta.update(metadata or {})
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "detector": name,
        "detection_completion_time": completion_time(completed_at),
        "detector_metadata": meta,
    }
    if detector_version:
        info["detector_version"] = detector_version
    return info


def md_detection(
    category: str, conf: float, bbox: Iterable[float], frame_number: int | None = None
) -> dict[str, Any]:
    box = [round(float(v), COORD_DIGITS) for v in bbox]
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise MDFormatError(f"a box is [x_min, y_min, width, height], got {box}")
    det = {"category": str(category), "conf": round(float(conf), CONF_DIGITS), "bbox": box}
    if frame_number is not None:
        det["frame_number"] = int(frame_number)
    return det


def md_image(
    file: str,
    detections: Iterable[Mapping[str, Any]] | None,
    failure: str | None = None,
    *,
    frame_rate: float | None = None,
    frames_processed: Iterable[int] | None = None,
) -> dict:
    """One ``images`` entry: ``detections`` (dicts with category, conf, bbox) for a processed image, or a
    ``failure`` string (then ``detections`` is null). A video also has ``frame_rate`` and
    ``frames_processed``, and each of its detections a ``frame_number``."""
    path = str(file).replace("\\", "/")
    if failure is not None:
        return {"file": path, "detections": None, "failure": str(failure) or "failure"}
    dets = [
        md_detection(d["category"], d["conf"], d["bbox"], d.get("frame_number")) for d in (detections or [])
    ]
    dets.sort(key=lambda d: (d.get("frame_number", 0), -d["conf"]))
    entry: dict[str, Any] = {"file": path}
    if frame_rate is not None:
        entry["frame_rate"] = float(frame_rate)
        entry["frames_processed"] = sorted(int(f) for f in frames_processed or [])
    entry["detections"] = dets
    return entry


def md_document(images: Iterable[Mapping[str, Any]], detector_info: Mapping[str, Any]) -> dict[str, Any]:
    """The whole document: ``images`` are entries as :func:`md_image` makes them (or dicts of the same
    shape); ``detector_info`` the ``info`` block (see :func:`detector_info`). Checked with
    :func:`check_document` before it is returned."""
    info = dict(detector_info)
    info.setdefault("format_version", FORMAT_VERSION)
    info["format_version"] = str(info["format_version"])
    doc = {
        "info": info,
        "detection_categories": dict(DETECTION_CATEGORIES),
        "images": [
            md_image(
                i["file"],
                i.get("detections"),
                i.get("failure"),
                frame_rate=i.get("frame_rate"),
                frames_processed=i.get("frames_processed"),
            )
            for i in images
        ],
    }
    check_document(doc)
    return doc


def check_document(doc: Mapping[str, Any]) -> None:
    """Raise :class:`MDFormatError` where ``doc`` breaks a rule of the format (see the module's docstring)."""
    info = doc.get("info")
    if not isinstance(info, Mapping) or not isinstance(info.get("format_version"), str):
        raise MDFormatError("info.format_version must be a string")
    try:
        float(info["format_version"])
    except ValueError:
        raise MDFormatError("info.format_version must be a string-formatted float") from None
    cats = doc.get("detection_categories")
    if not isinstance(cats, Mapping) or not cats:
        raise MDFormatError("detection_categories is required")
    for k, v in cats.items():
        if not str(k).isdigit() or not isinstance(v, str) or not v.strip():
            raise MDFormatError(f"invalid detection category {k!r}: {v!r}")
    images = doc.get("images")
    if not isinstance(images, list):
        raise MDFormatError("images must be a list")
    seen: set[str] = set()
    for im in images:
        file = im.get("file")
        if not isinstance(file, str) or not file:
            raise MDFormatError("an image has no file")
        if file in seen:
            raise MDFormatError(f"image listed twice: {file}")
        seen.add(file)
        failure, dets = im.get("failure"), im.get("detections")
        if failure is not None:
            if not isinstance(failure, str) or dets is not None:
                raise MDFormatError(f"{file}: a failure is a string, with detections null")
            continue
        if not isinstance(dets, list):
            raise MDFormatError(f"{file}: a processed image has a detections list")
        for d in dets:
            if d.get("category") not in cats:
                raise MDFormatError(f"{file}: unknown category {d.get('category')!r}")
            if not isinstance(d.get("conf"), float) or not 0.0 <= d["conf"] <= 1.0:
                raise MDFormatError(f"{file}: conf must be a float in 0..1")
            box = d.get("bbox")
            if not isinstance(box, list) or len(box) != 4:
                raise MDFormatError(f"{file}: bbox must be [x_min, y_min, width, height]")
        if "frame_rate" in im:
            if not isinstance(im["frame_rate"], int | float) or im["frame_rate"] <= 0:
                raise MDFormatError(f"{file}: a video's frame_rate is greater than zero")
            if not isinstance(im.get("frames_processed"), list):
                raise MDFormatError(f"{file}: a video lists its frames_processed")
            if any(not isinstance(d.get("frame_number"), int) or d["frame_number"] < 0 for d in dets):
                raise MDFormatError(f"{file}: each detection of a video has its frame_number")


def write(doc: Mapping[str, Any], path: Path) -> None:
    """Write the document atomically (UTF-8, one image per line: readable, and written by the C encoder;
    an indented dump of 100,000 images takes Python's slow encoder half a minute)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    head = {k: v for k, v in doc.items() if k != "images"}
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(head, indent=1, ensure_ascii=False)[:-2] + ',\n "images": [')
        for i, image in enumerate(doc.get("images") or []):
            fh.write(("," if i else "") + "\n  " + json.dumps(image, **compact))
        fh.write("\n ]\n}\n")
    tmp.replace(path)
