"""An in-memory unit of work for process-image's decision (cosmicpython's FakeRepository): the same methods as
functions/adapters/alerts_repo.py's AlertsRepository, over dicts, so that bursts, merges, cooldown and
suppression are tested with no database. A unit of work that raises is rolled back (its dicts restored)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from functions.adapters.alerts_repo import LockedPhoto
from functions.domain.decision import (
    NEW,
    AlertRecord,
    CameraRef,
    CameraState,
    Decision,
    EventRecord,
    NewPhoto,
)
from functions.domain.events import AlertState, PhotoRecord
from functions.domain.rules import Det, PhotoAssessment, Rules
from functions.domain.suppression import StaticBox


@dataclass
class Tables:
    cameras: dict[int, tuple[CameraRef, str]] = field(default_factory=dict)
    rules: dict[int, dict[str, Any]] = field(default_factory=dict)  # camera id -> camera layer
    park_rules: dict[str, Any] = field(default_factory=dict)
    images: dict[int, dict[str, Any]] = field(default_factory=dict)
    detections: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[int, dict[str, Any]] = field(default_factory=dict)
    boxes: dict[int, StaticBox] = field(default_factory=dict)
    box_camera: dict[int, int] = field(default_factory=dict)
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)

    def next_id(self, table: str) -> int:
        self.ids[table] = self.ids.get(table, 0) + 1
        return self.ids[table]


class FakeUnitOfWork:
    def __init__(self, tables: Tables | None = None):
        self.tables = tables or Tables()
        self.alerts = FakeAlertsRepository(self.tables)
        self.committed = 0

    def __enter__(self) -> FakeUnitOfWork:
        self._snapshot = copy.deepcopy(self.tables.__dict__)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.committed += 1
        else:
            self.tables.__dict__.update(self._snapshot)


class FakeAlertsRepository:
    def __init__(self, t: Tables):
        self.t = t

    def lock(self, camera_id: int, image_id: int) -> LockedPhoto:
        if camera_id not in self.t.cameras:
            raise LookupError(f"camera {camera_id} of image {image_id} does not exist")
        if image_id not in self.t.images:
            raise LookupError(f"image {image_id} does not exist")
        camera, tz = self.t.cameras[camera_id]
        return LockedPhoto(camera, tz, dict(self.t.images[image_id]))

    def record_score(self, image_id: int, score) -> None:
        for d in score.detections:
            i = self.t.next_id("detections")
            self.t.detections[i] = {"image_id": image_id, "det": Det(d.category, d.conf, tuple(d.bbox))}
        self.t.images[image_id].update(status="scored", night=bool(score.night))

    def detections(self, image_id: int) -> list[tuple[int, Det]]:
        return sorted((i, d["det"]) for i, d in self.t.detections.items() if d["image_id"] == image_id)

    def rule_layers(self, camera: CameraRef) -> tuple[dict[str, Any], dict[str, Any]]:
        return dict(self.t.park_rules), dict(self.t.rules.get(camera.id, {}))

    def _photo(self, image_id: int) -> PhotoRecord:
        im = self.t.images[image_id]
        return PhotoRecord(image_id, im["taken_at"], PhotoAssessment.from_json(im["assessment"]))

    def _decided(self, **where) -> list[PhotoRecord]:
        key, value = next(iter(where.items()))
        return [
            self._photo(i)
            for i, im in sorted(self.t.images.items())
            if im.get(key) == value and im.get("decided_at") is not None
        ]

    def load(self, camera: CameraRef, rules: Rules, taken_at: datetime) -> CameraState:
        gap = timedelta(seconds=rules.burst_gap_s)
        events = [
            EventRecord(i, e["started_at"], e["last_image_at"], e["alert_id"], self._decided(event_id=i))
            for i, e in sorted(self.t.events.items())
            if e["camera_id"] == camera.id
            and e["started_at"] <= taken_at + gap
            and e["last_image_at"] >= taken_at - gap
        ]
        mine = [(i, a) for i, a in self.t.alerts.items() if a["camera_id"] == camera.id]
        recent = max(mine, key=lambda x: x[1]["last_image_at"])[0] if mine else None
        ids = {e.alert_id for e in events if e.alert_id is not None} | ({recent} - {None})
        alerts = {}
        for i in ids:
            a = self.t.alerts[i]
            alerts[i] = AlertRecord(
                AlertState(
                    i,
                    a["version"],
                    tuple(a["categories"]),
                    a["max_conf"],
                    a["started_at"],
                    a["last_image_at"],
                ),
                a["best_image_id"],
                sorted(e for e, ev in self.t.events.items() if ev["alert_id"] == i),
                self._decided(alert_id=i),
            )
        boxes = [b for i, b in sorted(self.t.boxes.items()) if self.t.box_camera[i] == camera.id]
        return CameraState(camera, rules, events, alerts, recent, boxes)

    def save(self, state: CameraState, photo: NewPhoto, d: Decision) -> None:
        t = self.t
        if d.event_kind == "new":
            event_id = t.next_id("events")
            t.events[event_id] = {
                "camera_id": state.camera.id,
                "started_at": photo.taken_at,
                "last_image_at": photo.taken_at,
                "alert_id": None,
            }
        else:
            event_id = d.event_id
        keep_alert = t.events[event_id]["alert_id"]
        for merged in d.merged_event_ids:
            for im in t.images.values():
                if im.get("event_id") == merged:
                    im.update(event_id=event_id, alert_id=keep_alert)
            del t.events[merged]
        d.event_id = event_id
        box_ids: dict[int, int] = {}
        for box in d.boxes_changed:
            last = event_id if box.last_event_id == NEW else box.last_event_id
            bid = box.id if box.id is not None else t.next_id("boxes")
            evidence = tuple(replace(e, event_id=event_id) if e.event_id == NEW else e for e in box.evidence)
            t.boxes[bid] = replace(box, id=bid, last_event_id=last, evidence=evidence)
            t.box_camera[bid] = state.camera.id
            box_ids[id(box)] = bid
        for i, box in d.suppressed.items():
            t.detections[photo.detection_ids[i]]["suppression_id"] = box_ids.get(id(box), box.id)
        t.images[d.image_id].update(
            event_id=event_id, assessment=d.assessment.to_json(), decided_at=photo.taken_at
        )
        if d.alert is not None:
            a = d.alert
            events = [event_id if e == NEW else e for e in a.event_ids]
            if a.alert_id == NEW:
                alert_id = t.next_id("alerts")
                t.alerts[alert_id] = {"camera_id": state.camera.id, "version": 1, "details": {}}
            else:
                alert_id = a.alert_id
            row = t.alerts[alert_id]
            row.update(
                categories=list(a.categories),
                max_conf=a.summary.max_conf,
                image_count=a.summary.image_count,
                best_image_id=a.best_image_id,
                started_at=a.started_at,
                last_image_at=a.last_image_at,
                title=a.title,
                details=row["details"] | a.details | {"events": events},
            )
            if a.alert_id != NEW:
                row["version"] += a.version_bump
            t.events[event_id]["alert_id"] = alert_id
            for im in t.images.values():
                if im.get("event_id") == event_id:
                    im["alert_id"] = alert_id
            if a.notify:
                t.outbox.append(
                    ("send-alert", {"alert_id": alert_id, "version": row["version"], "reason": a.notify})
                )
            d.alert_id = alert_id
        s = d.event_summary
        t.events[event_id].update(
            started_at=s.started_at, last_image_at=s.last_image_at, image_count=s.image_count
        )


def add_camera(t: Tables, camera_id: int, name: str = "gate", park_id: int = 1, tz: str = "UTC") -> CameraRef:
    ref = CameraRef(camera_id, park_id, name)
    t.cameras[camera_id] = (ref, tz)
    return ref


def add_image(t: Tables, camera_id: int, taken_at: datetime) -> int:
    i = t.next_id("images")
    t.images[i] = {
        "id": i,
        "camera_id": camera_id,
        "status": "stored",
        "taken_at": taken_at,
        "created_at": taken_at,
        "night": False,
        "decided_at": None,
        "event_id": None,
        "alert_id": None,
        "assessment": None,
        "correlation_id": None,
    }
    return i
