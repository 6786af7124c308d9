"""The one notice composer: every :class:`AlertNotice` a channel receives is built here.

Three callers, one shape:

* send-alert (functions/handlers/send_alert.py): :class:`AlertView` (a typed view of the alert row the
  delivery repository reads) and its detections -> :func:`alert_notice`; the photo is added after, by
  :func:`with_photo` (it is annotated and cached by the handler, which owns storage);
* ops notices (functions/ops/notify.py): :func:`ops_notice` (a poisoned message, a failing channel);
* ``trapalert channels test`` (functions/cli/channels.py): :func:`channel_test_notice`.

Titles, summaries, map links, category names (one map: :data:`functions.domain.rules.CATEGORY_NAMES`) and
the photo's file name are decided here and nowhere else. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..domain.rules import CATEGORY_NAMES
from .base import AlertNotice, CameraRef, DetectionRef, ParkRef

OPS_CAMERA = CameraRef(id=0, name="TrapAlert pipeline")


def category_name(category: object) -> str:
    """A MegaDetector category code ("1", "2", "3") as its name; a name or anything else unchanged."""
    return CATEGORY_NAMES.get(str(category), str(category))


def map_url(latitude: float | None, longitude: float | None) -> str | None:
    """An OpenStreetMap link centred on the position (None without one)."""
    if latitude is None or longitude is None:
        return None
    return (
        f"https://www.openstreetmap.org/?mlat={latitude:.6f}&mlon={longitude:.6f}"
        f"#map=16/{latitude:.6f}/{longitude:.6f}"
    )


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _conf(value: Any) -> float:
    return min(1.0, max(0.0, float(value or 0.0)))


class AlertView(BaseModel):
    """What a notice needs of one alert (``DeliveryRepository.alert_context`` row), typed."""

    model_config = ConfigDict(frozen=True)

    id: int
    # rescore: a re-scoring finding about the past (`trapalert rescore --alert`), told as a new alert
    kind: Literal["detection", "health", "rescore"] = "detection"
    park: ParkRef
    camera: CameraRef
    categories: tuple[str, ...] = ()
    max_conf: float = 0.0
    mean_conf: float = 0.0
    image_count: int = 0
    started_at: datetime
    updated_at: datetime
    title: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    best_image_id: int | None = None
    image_sha256: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AlertView:
        """The view of an ``alert_context`` row (alerts joined with camera, park and best image)."""
        health = row["kind"] == "health"
        return cls(
            id=row["id"],
            kind=row["kind"] if row["kind"] in ("health", "rescore") else "detection",
            park=ParkRef(id=row["park_id"], slug=row["park_slug"], name=row["park_name"]),
            camera=CameraRef(
                id=row["camera_id"],
                name=row["camera_name"],
                latitude=row["latitude"],
                longitude=row["longitude"],
                timezone=row["camera_timezone"] or "UTC",
                zone=row["camera_zone"],
            ),
            categories=tuple(str(c) for c in row["categories"] or ()),
            max_conf=_conf(row["max_conf"]),
            mean_conf=_conf(row["mean_conf"]),
            image_count=max(0, row["image_count"] or 0),
            started_at=_utc(row["started_at"]),
            updated_at=_utc(row["alert_updated_at"] if health else row["last_image_at"]),
            title=row["title"],
            details=dict(row.get("details") or {}),
            best_image_id=row.get("best_image_id"),
            image_sha256=row.get("image_sha256"),
        )

    def category_names(self) -> list[str]:
        names = list(dict.fromkeys(category_name(c) for c in self.categories))
        if self.kind == "health" and not names and self.details.get("condition"):
            names = [f"camera health: {str(self.details['condition']).replace('_', ' ')}"]
        return names


def detection_refs(rows: Iterable[Mapping[str, Any]]) -> list[DetectionRef]:
    """Detections rows (``category, conf, bbox_x, bbox_y, bbox_w, bbox_h``) as the notice carries them."""
    return [
        DetectionRef(
            category=category_name(d["category"]),
            conf=_conf(d["conf"]),
            bbox=(d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]),
        )
        for d in rows
    ]


def _summary(view: AlertView, what: str) -> str:
    camera = view.camera.name
    if view.kind == "health":
        if view.details.get("summary"):
            return str(view.details["summary"])
        if view.details.get("status") == "cleared":
            return f"Camera {camera} is back to normal."
        return f"Camera {camera} needs attention (a silent camera may have been stolen)."
    n = view.image_count
    if view.kind == "rescore":
        found = view.details.get("rescore") or {}
        old = ", ".join(found.get("old_models") or []) or "the model of the time"
        new = ", ".join(found.get("new_models") or []) or "the current model"
        return (
            f"Re-scoring finding about the past, not a live alert: the current model ({new}) sees {what} "
            f"with up to {view.max_conf:.0%} confidence in {n} photo{'s' if n != 1 else ''} camera {camera} "
            f"took from {view.started_at:%Y-%m-%d %H:%M} UTC, for which no alert was sent at the time "
            f"({old})."
        )
    return (
        f"{what.capitalize()} seen by camera {camera} with up to {view.max_conf:.0%} "
        f"confidence ({n} photo{'s' if n != 1 else ''})."
    )


def alert_notice(view: AlertView, detections: list[DetectionRef], *, correlation_id: str) -> AlertNotice:
    """The notice of a detection or health alert, without its photo (see :func:`with_photo`).

    ``kind`` is ``new`` (``health`` for a health alert); send-alert makes it ``update`` per channel where the
    channel already has the alert."""
    categories = view.category_names()
    what = ", ".join(categories) or "activity"
    return AlertNotice(
        alert_id=view.id,
        kind="health" if view.kind == "health" else "new",
        park=view.park,
        camera=view.camera,
        categories=categories,
        max_conf=view.max_conf,
        mean_conf=view.mean_conf,
        image_count=view.image_count,
        started_at=view.started_at,
        updated_at=view.updated_at,
        title=view.title or f"{what[:1].upper()}{what[1:]} detected at {view.camera.name}",
        summary=_summary(view, what),
        map_url=map_url(view.camera.latitude, view.camera.longitude),
        correlation_id=correlation_id,
        detections=detections if view.best_image_id is not None else [],
    )


def photo_filename(image_sha256: str | None, image_id: int) -> str:
    """Unique per image (EarthRanger's camera-trap endpoint de-duplicates on the file name)."""
    return f"{(image_sha256 or '')[:24] or 'image'}-{image_id}.jpg"


def with_photo(notice: AlertNotice, view: AlertView, photo: bytes | None, url: str | None) -> AlertNotice:
    """The notice with the alert's annotated photo and the time-limited link to the original."""
    if view.best_image_id is None:
        return notice
    return notice.model_copy(
        update={
            "photo_jpeg": photo,
            "photo_url": url,
            "photo_filename": photo_filename(view.image_sha256, view.best_image_id),
        }
    )


def ops_notice(
    park: ParkRef, *, title: str, summary: str, ref_id: int, correlation_id: str, ops_url: str
) -> AlertNotice:
    """A notice to a park's ops channels (no camera, no photo)."""
    now = datetime.now(UTC)
    return AlertNotice(
        alert_id=ref_id,
        kind="ops",
        park=park,
        camera=OPS_CAMERA,
        started_at=now,
        updated_at=now,
        title=title,
        summary=summary,
        image_count=0,
        photo_filename=f"ops-{ref_id}.txt",
        ops_url=ops_url,
        correlation_id=correlation_id,
    )


TEST_DETECTION = DetectionRef(category="person", conf=0.99, bbox=(0.35, 0.25, 0.3, 0.5))


def channel_test_notice(
    park: ParkRef, camera: CameraRef, *, channel_id: int, channel_name: str, photo: bytes | None
) -> AlertNotice:
    """The clearly labelled notice of ``trapalert channels test`` (a person, so privacy rules show)."""
    now = datetime.now(UTC)
    return AlertNotice(
        alert_id=0,
        kind="new",
        park=park,
        camera=camera,
        categories=[TEST_DETECTION.category],
        max_conf=TEST_DETECTION.conf,
        mean_conf=TEST_DETECTION.conf,
        image_count=1,
        started_at=now,
        updated_at=now,
        title=f"TEST - TrapAlert channel test ({channel_name})",
        summary="This is a test of the alert channel. No action needed.",
        photo_jpeg=photo,
        photo_filename=f"trapalert-test-{int(now.timestamp())}.jpg",
        map_url=map_url(camera.latitude, camera.longitude),
        correlation_id=f"channel-test-{channel_id}",
        detections=[TEST_DETECTION],
    )


__all__ = [
    "AlertView",
    "alert_notice",
    "category_name",
    "channel_test_notice",
    "detection_refs",
    "map_url",
    "ops_notice",
    "photo_filename",
    "with_photo",
]
