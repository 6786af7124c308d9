"""Camtrap DP 1.0.2 (the TDWG camera-trap data package): the rows of ``deployments.csv``, ``media.csv`` and
``observations.csv`` and the ``datapackage.json`` that describes them. Pure: the records come in, rows and
the descriptor come out (functions/exports/run.py reads the database and writes the files).

Source of every field name, type and constraint: the standard's table schemas and profile at tag 1.0.2 of
github:tdwg/camtrap-dp (``deployments-table-schema.json``, ``media-table-schema.json``,
``observations-table-schema.json``, ``camtrap-dp-profile.json``); the tests validate a package against copies
of them (tests/exports/schemas/).

* a **deployment** is a camera over the export's period: from when it was added (or the period's start, or
  its first photo) to the period's end (or its last contact when it is no longer active, or its last photo);
  its location is the camera's, else the median of its photos' GPS; a camera with neither is left out (and
  said so), since Camtrap DP requires coordinates;
* a **media** row is a stored photo: ``filePublic`` is false when the detector saw a person in it (any
  confidence), when its event was classified human, or when it was never scored (no one knows what it shows);
* **observations** are at event level (one per type seen in the event, see functions/exports/observations.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .observations import Observation

VERSION = "1.0.2"
BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE = f"{BASE}/camtrap-dp-profile.json"
SCHEMAS = {t: f"{BASE}/{t}-table-schema.json" for t in ("deployments", "media", "observations")}

# Column order of each table, as in its 1.0.2 table schema.
DEPLOYMENT_FIELDS = (
    "deploymentID locationID locationName latitude longitude coordinateUncertainty deploymentStart "
    "deploymentEnd setupBy cameraID cameraModel cameraDelay cameraHeight cameraDepth cameraTilt "
    "cameraHeading detectionDistance timestampIssues baitUse featureType habitat deploymentGroups "
    "deploymentTags deploymentComments"
).split()
MEDIA_FIELDS = (
    "mediaID deploymentID captureMethod timestamp filePath filePublic fileName fileMediatype exifData "
    "favorite mediaComments"
).split()
OBSERVATION_FIELDS = (
    "observationID deploymentID mediaID eventID eventStart eventEnd observationLevel observationType "
    "cameraSetupType scientificName count lifeStage sex behavior individualID individualPositionRadius "
    "individualPositionAngle individualSpeed bboxX bboxY bboxWidth bboxHeight classificationMethod "
    "classifiedBy classificationTimestamp classificationProbability observationTags observationComments"
).split()
TABLES = {"deployments": DEPLOYMENT_FIELDS, "media": MEDIA_FIELDS, "observations": OBSERVATION_FIELDS}

SAMPLING_DESIGNS = (
    "simpleRandom",
    "systematicRandom",
    "clusteredRandom",
    "experimental",
    "targeted",
    "opportunistic",
)
# where a photo's time came from (images.taken_at_source): anything but the camera's own clock is an issue
RELIABLE_TIME_SOURCES = {"exif", "vendor"}
MEDIA_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "mp4": "video/mp4"}


def timestamp(when: datetime, tz: str | None) -> str:
    """ISO 8601 with the offset of the camera's time zone, as the schemas' ``%Y-%m-%dT%H:%M:%S%z`` wants."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(tz or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return when.astimezone(zone).isoformat(timespec="seconds")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(round(v, 6))
    return str(v)


def rows_of(table: str, records: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    """The CSV rows (header first) of ``table`` in its schema's column order."""
    fields = TABLES[table]
    return [list(fields)] + [[_cell(r.get(f)) for f in fields] for r in records]


@dataclass
class Deployment:
    camera_id: int
    row: dict[str, Any]
    tz: str
    start: datetime
    end: datetime


def deployment(
    camera: Mapping[str, Any],
    photos: list[Mapping[str, Any]],
    *,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    decimals: int | None = None,
) -> Deployment | str:
    """The camera's deployment over the period, or why it has none (a sentence for the export's report)."""
    lat, lon = camera.get("latitude"), camera.get("longitude")
    if lat is None or lon is None:
        gps = [
            (p["gps_latitude"], p["gps_longitude"])
            for p in photos
            if p.get("gps_latitude") is not None and p.get("gps_longitude") is not None
        ]
        if not gps:
            return f"camera {camera['name']}: no location (set it with `trapalert cameras`), left out"
        lat, lon = statistics.median(g[0] for g in gps), statistics.median(g[1] for g in gps)
    if decimals is not None:
        lat, lon = round(float(lat), decimals), round(float(lon), decimals)
    start = max(camera["created_at"], since) if since else camera["created_at"]
    end = until or now
    if not camera.get("active", True) and camera.get("last_seen_at") is not None:
        end = min(end, camera["last_seen_at"])
    if photos:
        start = min(start, min(p["taken_at"] for p in photos))
        end = max(end, max(p["taken_at"] for p in photos))
    elif start > end:
        return f"camera {camera['name']}: not deployed in the period, left out"
    tz = camera.get("tz") or "UTC"
    serials = camera.get("serials") or []
    issues = any(p.get("taken_at_source") not in RELIABLE_TIME_SOURCES for p in photos)
    row = {
        "deploymentID": camera["name"],
        "locationID": camera["name"],
        "locationName": camera["name"],
        "latitude": float(lat),
        "longitude": float(lon),
        "deploymentStart": timestamp(start, tz),
        "deploymentEnd": timestamp(end, tz),
        "cameraID": serials[0] if serials else None,
        "cameraModel": camera.get("brand"),
        "timestampIssues": issues,
        "deploymentTags": "source:trapalert" + ("" if camera.get("active", True) else "|camera:inactive"),
    }
    return Deployment(int(camera["id"]), row, tz, start, end)


def media_type(photo: Mapping[str, Any]) -> str:
    ct = (photo.get("content_type") or "").lower()
    if ct.split("/")[0] in ("image", "video", "audio"):
        return ct
    ext = str(photo.get("blob_name") or "").rsplit(".", 1)[-1].lower()
    return MEDIA_TYPES.get(ext, "image/jpeg")


def media_row(photo: Mapping[str, Any], dep: Deployment, file_path: str, *, public: bool) -> dict[str, Any]:
    comment = None
    if photo["status"] != "scored":
        comment = f"not scored: {photo['status']}" + (f" ({photo['reason']})" if photo.get("reason") else "")
    name = photo.get("filename") or str(photo["blob_name"]).rsplit("/", 1)[-1]
    return {
        "mediaID": str(photo["id"]),
        "deploymentID": dep.row["deploymentID"],
        "captureMethod": "activityDetection",
        "timestamp": timestamp(photo["taken_at"], dep.tz),
        "filePath": file_path,
        "filePublic": public,
        "fileName": name,
        "fileMediatype": media_type(photo),
        "mediaComments": comment,
    }


def observation_rows(
    event: Mapping[str, Any], dep: Deployment, observations: list[Observation], machine_at: datetime | None
) -> list[dict[str, Any]]:
    rows = []
    for o in observations:
        tags = list(o.tags)
        if event.get("alert_id") is not None:
            tags.append(f"alert:{event['alert_id']}")
        when = o.classified_at if o.method == "human" else machine_at
        rows.append(
            {
                "observationID": f"{event['id']}-{o.type}",
                "deploymentID": dep.row["deploymentID"],
                "eventID": str(event["id"]),
                "eventStart": timestamp(event["started_at"], dep.tz),
                "eventEnd": timestamp(event["last_image_at"], dep.tz),
                "observationLevel": "event",
                "observationType": o.type,
                "count": o.count if o.type not in ("blank", "unknown") else None,
                "classificationMethod": o.method,
                "classifiedBy": o.classified_by,
                "classificationTimestamp": timestamp(when, dep.tz) if when else None,
                "classificationProbability": o.probability,
                "observationTags": "|".join(tags) or None,
            }
        )
    return rows


@dataclass
class PackageInfo:
    park_slug: str
    park_name: str
    sampling_design: str = "targeted"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    since: datetime | None = None
    until: datetime | None = None
    coordinate_precision: float | None = None
    software_version: str | None = None


def spatial(points: list[tuple[float, float]]) -> dict[str, Any]:
    """GeoJSON of the deployments (lon, lat order): their bounding box, a point, or none at all."""
    if not points:
        return {"type": "FeatureCollection", "features": []}
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    if min(lats) == max(lats) or min(lons) == max(lons):
        uniq = sorted({(lo, la) for la, lo in points})
        if len(uniq) == 1:
            return {"type": "Point", "coordinates": list(uniq[0])}
        return {"type": "MultiPoint", "coordinates": [list(u) for u in uniq]}
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _day(d: datetime | None, fallback: date) -> str:
    return (d.astimezone(UTC).date() if d else fallback).isoformat()


def datapackage(info: PackageInfo, deployments: list[Deployment], counts: Mapping[str, int]) -> dict:
    """The ``datapackage.json`` descriptor (the profile's required properties, and the three resources)."""
    today = info.created.astimezone(UTC).date()
    if deployments:
        start = _day(min(d.start for d in deployments), today)
        end = _day(max(d.end for d in deployments), today)
    else:
        start = _day(info.since, today)
        end = _day(info.until, today) if info.until else max(start, today.isoformat())
    period = f" from {info.since:%Y-%m-%d}" if info.since else ""
    period += f" until {info.until:%Y-%m-%d}" if info.until else ""
    descriptor: dict[str, Any] = {
        "name": f"trapalert-{info.park_slug}",
        "title": f"{info.park_name}: camera-trap photos{period}",
        "description": (
            f"Photos of the camera traps of {info.park_name} that reached TrapAlert by email, with the "
            f"detector's findings at event level (bursts of photos) and the rangers' verdicts where they "
            f"gave one. {counts.get('deployments', 0)} deployments, {counts.get('media', 0)} media, "
            f"{counts.get('observations', 0)} observations. Photos of people are not public (filePublic)."
        ),
        "profile": PROFILE,
        "created": info.created.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "contributors": [{"title": info.park_name, "role": "rightsHolder"}],
        "sources": [{"title": "TrapAlert", "version": info.software_version or "unknown"}],
        "project": {
            "id": info.park_slug,
            "title": f"{info.park_name} camera traps",
            "description": "Camera traps run for real-time anti-poaching alerts; every photo is survey data.",
            "samplingDesign": info.sampling_design,
            "captureMethod": ["activityDetection"],
            "individualAnimals": False,
            "observationLevel": ["event"],
        },
        "spatial": spatial([(d.row["latitude"], d.row["longitude"]) for d in deployments]),
        "temporal": {"start": start, "end": max(start, end)},
        "taxonomic": [],
        "resources": [
            {
                "name": t,
                "path": f"{t}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": SCHEMAS[t],
            }
            for t in ("deployments", "media", "observations")
        ],
    }
    if info.coordinate_precision is not None:
        descriptor["coordinatePrecision"] = info.coordinate_precision
    return descriptor
