"""The two science exports, end to end: read through ExportsRepository (and the blob storage for the photos),
shape with md_json / camtrap_dp / observations, write the files. Called by `trapalert export` (functions/cli/
export.py); nothing here is on the alert path."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError

from .. import names
from ..adapters.exports_repo import ExportsRepository
from . import camtrap_dp as dp
from . import md_json
from .observations import DEFAULT_THRESHOLD, classify_event, has_person


class ExportError(ValueError):
    """The export cannot be made as asked (unknown park or camera, a folder that is not empty)."""


@dataclass
class ExportResult:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _park_and_camera(repo: ExportsRepository, park: str, camera: str | None) -> tuple[dict, list[dict]]:
    row = repo.park(park)
    if row is None:
        raise ExportError(f"no park {park!r} (see `trapalert parks list`)")
    cameras = repo.cameras(row["id"], camera)
    if camera is not None and not cameras:
        raise ExportError(f"park {park!r} has no camera {camera!r}")
    return row, cameras


def _frames_by_clip(photos: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    frames: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for p in photos:
        if p.get("clip_image_id") is not None:
            frames[p["clip_image_id"]].append(p)
    return frames


def _md_entry(photo: dict[str, Any], frames: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A photo's entry; a video clip's gathers the detections of its kept frames (with their numbers)."""
    status = photo["status"]
    video = photo.get("video") or {}
    if status == "scored" and video.get("frame_rate"):
        dets = [
            {
                "category": d["category"],
                "conf": d["conf"],
                "bbox": [d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]],
                "frame_number": d["frame_number"] if d.get("frame_number") is not None else f["frame_number"],
            }
            for f in frames or []
            for d in f["detections"]
        ]
        return {
            "file": photo["blob_name"],
            "detections": dets,
            "frame_rate": video["frame_rate"],
            "frames_processed": video.get("frames_processed")
            or sorted(f["frame_number"] for f in frames or []),
        }
    if status == "scored":
        dets = [
            {
                "category": d["category"],
                "conf": d["conf"],
                "bbox": [d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]],
            }
            for d in photo["detections"]
        ]
        return {"file": photo["blob_name"], "detections": dets}
    if status == "failed":
        failure = photo.get("reason") or "failed"
        failure = failure.removeprefix("scoring: ")
    elif status in ("stored", "linked"):
        failure = "not_scored: waiting for the detector"
    else:
        failure = f"{status}: {photo.get('reason') or 'not a photo the detector reads'}"
    return {"file": photo["blob_name"], "detections": None, "failure": failure}


def _first_of_each_blob(photos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per photo file: the same photo delivered twice (another email, the same bytes of the same
    camera and day) has one blob, so it is listed once (the first row)."""
    seen: set[str] = set()
    out = []
    for p in photos:
        if p["blob_name"] not in seen:
            seen.add(p["blob_name"])
            out.append(p)
    return out


def _models(photos: list[dict[str, Any]]) -> Counter:
    return Counter((p["model_name"], p["model_version"]) for p in photos if p["model_name"])


def export_md_json(
    repo: ExportsRepository,
    park: str,
    out: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    camera: str | None = None,
) -> ExportResult:
    """Every stored photo of the park (once), in the MegaDetector output format, with paths relative to the
    images container (``<park>/<camera>/<date>/<sha256>.<ext>``)."""
    prow, cameras = _park_and_camera(repo, park, camera)
    camera_id = cameras[0]["id"] if camera is not None else None
    photos = list(repo.photos(prow["id"], since, until, camera_id))
    result = ExportResult(Path(out))
    models = _models(photos)
    (name, version), _ = models.most_common(1)[0] if models else ((None, None), 0)
    if len(models) > 1:
        result.warnings.append(
            "photos were scored by several models ("
            + ", ".join(f"{n} {v or ''}".strip() + f": {c}" for (n, v), c in models.most_common())
            + f"); info.detector names the most common, {name}"
        )
    completed = max((p["scored_at"] for p in photos if p["scored_at"]), default=None)
    extra = {"trapalert_models": {f"{n} {v or ''}".strip(): c for (n, v), c in models.items()}}
    frames = _frames_by_clip(photos)
    doc = md_json.md_document(
        (
            _md_entry(p, frames.get(p["id"]))
            for p in _first_of_each_blob(photos)
            if p.get("clip_image_id") is None
        ),
        md_json.detector_info(name, version, completed, extra if len(models) > 1 else None),
    )
    md_json.write(doc, result.path)
    result.counts = {
        "images": len(doc["images"]),
        "failures": sum(1 for i in doc["images"] if i.get("failure")),
        "detections": sum(len(i["detections"] or []) for i in doc["images"]),
    }
    return result


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def _software_version() -> str | None:
    try:
        return metadata.version("trapalert")
    except metadata.PackageNotFoundError:
        return None


def export_camtrap_dp(
    repo: ExportsRepository,
    storage: Any,
    park: str,
    out_dir: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    camera: str | None = None,
    media: Literal["links", "files"] = "links",
    link_hours: int = 72,
    threshold: float = DEFAULT_THRESHOLD,
    sampling_design: str = "targeted",
    coordinate_decimals: int | None = None,
    now: datetime | None = None,
) -> ExportResult:
    """A Camtrap DP 1.0.2 package in ``out_dir`` (which must be empty or new). ``media``: ``links`` puts
    read-only links that expire after ``link_hours`` in ``filePath``; ``files`` copies each photo under
    ``media/`` and puts the relative path."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty: export into a new folder")
    if sampling_design not in dp.SAMPLING_DESIGNS:
        raise ExportError(f"sampling design must be one of {', '.join(dp.SAMPLING_DESIGNS)}")
    prow, cameras = _park_and_camera(repo, park, camera)
    now = now or datetime.now(UTC)
    result = ExportResult(out)

    by_camera: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for p in repo.photos(prow["id"], since, until, cameras[0]["id"] if camera is not None else None):
        by_camera[p["camera_id"]].append(p)

    deployments: dict[int, dp.Deployment] = {}
    for cam in cameras:
        d = dp.deployment(
            cam, by_camera.get(cam["id"], []), since=since, until=until, now=now, decimals=coordinate_decimals
        )
        if isinstance(d, str):
            if by_camera.get(cam["id"]):
                result.warnings.append(f"{d} with its {len(by_camera[cam['id']])} photos")
            elif "no location" in d:
                result.warnings.append(d)
            continue
        deployments[cam["id"]] = d
    photos = [p for cid in deployments for p in by_camera.get(cid, [])]

    # observations, event by event
    by_event: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for p in photos:
        if p["event_id"] is not None:
            by_event[p["event_id"]].append(p)
    events = repo.events(sorted(by_event))
    feedback = repo.feedback(sorted({e["alert_id"] for e in events if e["alert_id"] is not None}))
    fb_by_alert: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for f in feedback:
        fb_by_alert[f["alert_id"]].append(f)
    observation_records: list[dict[str, Any]] = []
    human_events: set[int] = set()
    for ev in events:
        ev_photos = by_event[ev["id"]]
        models = _models(ev_photos)
        detector = None
        if models:
            (n, v), _ = models.most_common(1)[0]
            detector = f"{n} {v}" if v and v not in n else n
        obs = classify_event(
            ev_photos,
            alert_id=ev["alert_id"],
            alerted=(ev.get("summary") or {}).get("categories") or [],
            feedback=fb_by_alert.get(ev["alert_id"], []),
            detector=detector,
            threshold=threshold,
        )
        if any(o.type == "human" for o in obs):
            human_events.add(ev["id"])
        machine_at = max((p["scored_at"] for p in ev_photos if p["scored_at"]), default=None)
        observation_records.extend(dp.observation_rows(ev, deployments[ev["camera_id"]], obs, machine_at))

    # media (and their files): photos and clips; a clip's kept frames count for it, not as media of their own
    frames = _frames_by_clip(photos)
    media_records: list[dict[str, Any]] = []
    missing: list[str] = []
    for p in _first_of_each_blob(photos):
        if p.get("clip_image_id") is not None:
            continue
        shown = [p, *frames.get(p["id"], [])]
        public = (
            p["status"] == "scored"
            and not any(has_person(s) for s in shown)
            and not any(s["event_id"] in human_events for s in shown)
        )
        if media == "files":
            rel = f"media/{p['blob_name']}"
            try:
                data = storage.get_blob(names.IMAGES_CONTAINER, p["blob_name"])
            except ResourceNotFoundError:
                missing.append(str(p["id"]))
                continue
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        else:
            rel = storage.blob_url(names.IMAGES_CONTAINER, p["blob_name"], hours=link_hours)
        media_records.append(dp.media_row(p, deployments[p["camera_id"]], rel, public=public))

    if missing:
        result.warnings.append(
            f"{len(missing)} photos are no longer in blob storage and are left out of media.csv "
            f"(image ids {', '.join(missing[:10])}{', ...' if len(missing) > 10 else ''})"
        )
    out.mkdir(parents=True, exist_ok=True)
    result.counts = {
        "deployments": len(deployments),
        "media": len(media_records),
        "observations": len(observation_records),
        "events": len(events),
        "non_public_media": sum(1 for m in media_records if not m["filePublic"]),
        "human_classified": sum(1 for o in observation_records if o["classificationMethod"] == "human"),
    }
    precision = 10.0**-coordinate_decimals if coordinate_decimals is not None else None
    info = dp.PackageInfo(
        prow["slug"], prow["name"], sampling_design, now, since, until, precision, _software_version()
    )
    _write_csv(out / "deployments.csv", dp.rows_of("deployments", [d.row for d in deployments.values()]))
    _write_csv(out / "media.csv", dp.rows_of("media", media_records))
    _write_csv(out / "observations.csv", dp.rows_of("observations", observation_records))
    descriptor = dp.datapackage(info, list(deployments.values()), result.counts)
    (out / "datapackage.json").write_text(json.dumps(descriptor, indent=2) + "\n", encoding="utf-8")
    return result


def remove_partial(out_dir: Path) -> None:
    """Remove a package folder left half-written by a failed export (only the files an export writes)."""
    out = Path(out_dir)
    for name in ("datapackage.json", "deployments.csv", "media.csv", "observations.csv"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "media", ignore_errors=True)
