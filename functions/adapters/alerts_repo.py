"""PostgreSQL side of process-image: load a camera's state under its row lock, save what the domain decided.

The decision itself is ``functions.domain.decision.decide`` (pure); the service that runs the steps in order
is ``functions/handlers/process_image.py``. This module only reads and writes rows:

* :class:`PostgresUnitOfWork` opens one transaction; its :class:`AlertsRepository` works inside it.
* ``lock`` takes ``SELECT ... FOR UPDATE`` on the camera's row, then the image's, so the photos of a burst
  handled by parallel workers are decided one after the other (the first opens the alert, the others
  attach). Scoring (HTTP) happens before, outside any lock.
* ``load`` reads the :class:`CameraState` a decision needs; ``save`` writes every change a
  :class:`Decision` lists, including the SendAlert of a new alert version into the outbox (same transaction).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import names
from ..db import Database
from ..domain.decision import NEW, AlertRecord, CameraRef, CameraState, Decision, EventRecord, NewPhoto
from ..domain.events import AlertState, PhotoRecord
from ..domain.rules import Det, PhotoAssessment, Rules
from ..domain.suppression import StaticBox
from ..messages import SendAlert
from .outbox import Outbox, OutboxMessage
from .rules_repo import RulesRepository
from .scoring_client import ImageScore
from .suppressions_repo import load_boxes, save_boxes

log = logging.getLogger(__name__)


def camera_scope(camera_id: int) -> str:
    """The outbox scope of a camera's detection alerts (flushed by process-image after each decision)."""
    return f"camera:{camera_id}"


@dataclass(frozen=True)
class LockedPhoto:
    """The camera (row locked) and the image row (locked) of one decision."""

    camera: CameraRef
    timezone: str
    image: dict[str, Any]


class ImagesRepository:
    """Image lookups outside the decision's transaction (before scoring)."""

    def __init__(self, db: Database):
        self.db = db

    def image(self, image_id: int) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT id, status, blob_name, camera_id, park_id, content_type, filename, "
            "decided_at FROM images WHERE id = %s",
            (image_id,),
        )

    def mark_failed(self, image_id: int, score: ImageScore) -> bool:
        """A permanent failure of this image (the detector cannot read it); True if it was recorded now."""
        return (
            self.db.execute(
                "UPDATE images SET status = 'failed', reason = %s, model_name = %s, model_version = %s, "
                "scored_at = now() WHERE id = %s AND status = 'stored'",
                (f"scoring: {score.failure}"[:2000], score.detector, score.detector_version, image_id),
            )
            > 0
        )


class PostgresUnitOfWork:
    """One transaction around one decision: ``with PostgresUnitOfWork(db) as uow: uow.alerts...``; committed
    when the block ends normally, rolled back when it raises."""

    def __init__(self, db: Database):
        self.db = db
        self.alerts: AlertsRepository

    def __enter__(self) -> PostgresUnitOfWork:
        self._tx = self.db.transaction()
        self.alerts = AlertsRepository(self._tx.__enter__())
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._tx.__exit__(*exc)


class AlertsRepository:
    """Rows of one camera's decision, inside the unit of work's transaction."""

    def __init__(self, cur):
        self.cur = cur

    # -- lock and score ---------------------------------------------------------------------------
    def lock(self, camera_id: int, image_id: int) -> LockedPhoto:
        cur = self.cur
        cur.execute(
            """SELECT c.id, c.name, c.park_id, COALESCE(c.timezone, p.timezone, 'UTC') AS tz
               FROM cameras c JOIN parks p ON p.id = c.park_id WHERE c.id = %s FOR UPDATE OF c""",
            (camera_id,),
        )
        camera = cur.fetchone()
        if camera is None:
            raise LookupError(f"camera {camera_id} of image {image_id} does not exist")
        cur.execute("SELECT * FROM images WHERE id = %s FOR UPDATE", (image_id,))
        image = cur.fetchone()
        if image is None:
            raise LookupError(f"image {image_id} does not exist")
        return LockedPhoto(
            CameraRef(camera["id"], camera["park_id"], camera["name"]), camera["tz"], dict(image)
        )

    def record_score(self, image_id: int, score: ImageScore) -> None:
        cur = self.cur
        if score.detections:
            cur.executemany(
                "INSERT INTO detections (image_id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (image_id, d.category, float(d.conf), *(float(v) for v in d.bbox))
                    for d in score.detections
                ],
            )
        cur.execute(
            "UPDATE images SET status = 'scored', reason = NULL, night = %s, model_name = %s, "
            "model_version = %s, scored_at = now() WHERE id = %s",
            (score.night, score.detector, score.detector_version, image_id),
        )

    def detections(self, image_id: int) -> list[tuple[int, Det]]:
        self.cur.execute(
            "SELECT id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h FROM detections WHERE image_id = %s "
            "ORDER BY id",
            (image_id,),
        )
        return [
            (
                r["id"],
                Det(r["category"], float(r["conf"]), (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"])),
            )
            for r in self.cur.fetchall()
        ]

    def rule_layers(self, camera: CameraRef) -> tuple[dict[str, Any], dict[str, Any]]:
        """(park layer, camera layer) of the alert rules, as stored."""
        return RulesRepository.layers_in(self.cur, camera.park_id, camera.id)

    # -- load -------------------------------------------------------------------------------------
    def load(self, camera: CameraRef, rules: Rules, taken_at: datetime) -> CameraState:
        cur = self.cur
        cur.execute(
            """SELECT id, started_at, last_image_at, alert_id FROM events
               WHERE camera_id = %s AND started_at <= %s + make_interval(secs => %s)
                 AND last_image_at >= %s - make_interval(secs => %s)""",
            (camera.id, taken_at, rules.burst_gap_s, taken_at, rules.burst_gap_s),
        )
        events = [
            EventRecord(r["id"], r["started_at"], r["last_image_at"], r["alert_id"]) for r in cur.fetchall()
        ]
        if events:
            by_id = {e.id: e for e in events}
            for row in self._photos("event_id = ANY(%s)", [list(by_id)], "event_id"):
                by_id[row[0]].photos.append(row[1])
        cur.execute(
            "SELECT id FROM alerts WHERE camera_id = %s AND kind = 'detection' "
            "ORDER BY last_image_at DESC LIMIT 1",
            (camera.id,),
        )
        recent = cur.fetchone()
        recent_id = recent["id"] if recent else None
        alert_ids = sorted({e.alert_id for e in events if e.alert_id is not None} | ({recent_id} - {None}))
        return CameraState(camera, rules, events, self._alerts(alert_ids), recent_id, self._boxes(camera.id))

    def _photos(self, where: str, params: list, group: str) -> list[tuple[int, PhotoRecord]]:
        self.cur.execute(
            f"SELECT id, {group} AS grp, COALESCE(taken_at, created_at) AS t, assessment FROM images "
            f"WHERE {where} AND decided_at IS NOT NULL ORDER BY id",
            params,
        )
        return [
            (r["grp"], PhotoRecord(r["id"], r["t"], PhotoAssessment.from_json(r["assessment"])))
            for r in self.cur.fetchall()
        ]

    def _alerts(self, alert_ids: list[int]) -> dict[int, AlertRecord]:
        if not alert_ids:
            return {}
        cur = self.cur
        cur.execute(
            "SELECT id, version, categories, max_conf, started_at, last_image_at, best_image_id FROM alerts "
            "WHERE id = ANY(%s)",
            (alert_ids,),
        )
        out = {
            r["id"]: AlertRecord(
                AlertState(
                    r["id"],
                    r["version"],
                    tuple(r["categories"] or ()),
                    float(r["max_conf"] or 0.0),
                    r["started_at"],
                    r["last_image_at"],
                ),
                r["best_image_id"],
                [],
            )
            for r in cur.fetchall()
        }
        cur.execute("SELECT id, alert_id FROM events WHERE alert_id = ANY(%s) ORDER BY id", (alert_ids,))
        for r in cur.fetchall():
            out[r["alert_id"]].event_ids.append(r["id"])
        for alert_id, photo in self._photos("alert_id = ANY(%s)", [alert_ids], "alert_id"):
            out[alert_id].photos.append(photo)
        return out

    def _boxes(self, camera_id: int) -> list[StaticBox]:
        return load_boxes(self.cur, camera_id)  # functions/adapters/suppressions_repo.py

    # -- save -------------------------------------------------------------------------------------
    def save(self, state: CameraState, photo: NewPhoto, d: Decision) -> None:
        """Write every change ``d`` lists; NEW ids become the rows' ids (also in ``d``)."""
        cur, camera = self.cur, state.camera
        # 1. the event, and the events the photo bridged
        if d.event_kind == "new":
            cur.execute(
                "INSERT INTO events (park_id, camera_id, started_at, last_image_at) VALUES (%s, %s, %s, %s) "
                "RETURNING id",
                (camera.park_id, camera.id, photo.taken_at, photo.taken_at),
            )
            event_id = cur.fetchone()["id"]
        else:
            assert d.event_id is not None and d.event_id != NEW
            event_id = d.event_id
        if d.merged_event_ids:
            keep_alert = next(e.alert_id for e in state.events if e.id == event_id)
            cur.execute(
                "UPDATE images SET event_id = %s, alert_id = %s WHERE event_id = ANY(%s)",
                (event_id, keep_alert, list(d.merged_event_ids)),
            )
            cur.execute("DELETE FROM events WHERE id = ANY(%s)", (list(d.merged_event_ids),))
            log.info(
                "photo %s bridges events %s: merged into event %s", d.image_id, d.merged_event_ids, event_id
            )
        d.event_id = event_id

        # 2. static boxes, and the photo's detections inside suppressed ones
        box_ids = self._save_boxes(camera, d, event_id)
        for i, box in d.suppressed.items():
            cur.execute(
                "UPDATE detections SET suppression_id = %s WHERE id = %s",
                (box_ids.get(id(box), box.id), photo.detection_ids[i]),
            )
        for box in d.newly_suppressed:
            log.warning(
                "camera %s: static false positive suppressed: %s",
                camera.name,
                box.reason,
                extra={"camera_id": camera.id},
            )

        # 3. the photo
        assert d.assessment is not None and d.event_summary is not None
        cur.execute(
            "UPDATE images SET event_id = %s, assessment = %s::jsonb, decided_at = now() WHERE id = %s",
            (event_id, json.dumps(d.assessment.to_json()), d.image_id),
        )

        # 4. the alert (and its SendAlert in the outbox when rangers are to be told)
        if d.alert is not None:
            d.alert_id = self._save_alert(state, photo, d, event_id)

        # 5. the event's numbers
        s = d.event_summary
        cur.execute(
            "UPDATE events SET started_at = %s, last_image_at = %s, image_count = %s, summary = %s::jsonb, "
            "updated_at = now() WHERE id = %s",
            (
                s.started_at,
                s.last_image_at,
                s.image_count,
                json.dumps(s.to_json() | {"decision": d.action, "reason": d.reason}),
                event_id,
            ),
        )
        log.info(
            "image %s: event %s, %s%s (%s)",
            d.image_id,
            event_id,
            d.action,
            f" alert {d.alert_id}" if d.alert_id else "",
            d.reason,
            extra={"image_id": d.image_id, "event_id": event_id, "alert_id": d.alert_id},
        )

    def _save_boxes(self, camera: CameraRef, d: Decision, event_id: int) -> dict[int, int]:
        """Insert or update the changed boxes; {id(box object): row id}."""
        return save_boxes(self.cur, camera.park_id, camera.id, d.boxes_changed, event_id)

    def _save_alert(self, state: CameraState, photo: NewPhoto, d: Decision, event_id: int) -> int:
        cur, a, camera = self.cur, d.alert, state.camera
        assert a is not None
        s = a.summary
        event_ids = [event_id if e == NEW else e for e in a.event_ids]
        details = a.details | {"events": event_ids}
        if a.alert_id == NEW:
            cur.execute(
                """INSERT INTO alerts (park_id, camera_id, kind, categories, max_conf, mean_conf, image_count,
                       best_image_id, started_at, last_image_at, version, title, details, correlation_id)
                   VALUES (%s, %s, 'detection', %s, %s, %s, %s, %s, %s, %s, 1, %s, %s::jsonb, %s)
                   RETURNING id, version""",
                (
                    camera.park_id,
                    camera.id,
                    a.categories,
                    s.max_conf,
                    s.mean_conf,
                    s.image_count,
                    a.best_image_id,
                    a.started_at,
                    a.last_image_at,
                    a.title,
                    json.dumps(details),
                    str(photo.correlation_id or uuid.uuid4()),
                ),
            )
        else:
            cur.execute(
                """UPDATE alerts SET categories = %s, max_conf = %s, mean_conf = %s, image_count = %s,
                       best_image_id = %s, started_at = %s, last_image_at = %s, title = %s,
                       details = details || %s::jsonb, version = version + %s, updated_at = now()
                   WHERE id = %s RETURNING id, version""",
                (
                    a.categories,
                    max(s.max_conf, 0.0),
                    s.mean_conf,
                    s.image_count,
                    a.best_image_id,
                    a.started_at,
                    a.last_image_at,
                    a.title,
                    json.dumps(details),
                    a.version_bump,
                    a.alert_id,
                ),
            )
        row = cur.fetchone()
        alert_id, version = row["id"], row["version"]
        cur.execute(
            "UPDATE events SET alert_id = %s WHERE id = %s AND alert_id IS DISTINCT FROM %s",
            (alert_id, event_id, alert_id),
        )
        cur.execute(
            "UPDATE images SET alert_id = %s WHERE event_id = %s AND alert_id IS DISTINCT FROM %s",
            (alert_id, event_id, alert_id),
        )
        if a.notify is not None:
            message = SendAlert(
                alert_id=alert_id,
                version=version,
                reason=a.notify,
                correlation_id=photo.correlation_id or uuid.uuid4(),
            )
            Outbox.add(
                cur,
                OutboxMessage(
                    names.SEND_ALERT_QUEUE,
                    message,
                    f"send-alert:{alert_id}:v{version}",
                    camera_scope(camera.id),
                ),
            )
        return alert_id
