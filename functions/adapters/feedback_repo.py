"""Rangers' feedback (table feedback, migration 0013): record a verdict on an alert or one of its photos (with
its audit row, in one transaction), and read what the domain needs to turn verdicts into numbers
(functions/domain/feedback.py) and into suppression candidates (functions/domain/suppression.py).

The whole "feedback changes behaviour" step is one unit of work (functions/handlers/feedback.py): the
camera's row is locked (the same lock process-image takes, so a photo being decided and a verdict never
change the camera's boxes at the same time), the verdict is inserted, the judged detections and the
camera's boxes are read, the domain decides, and the changed boxes are saved, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..db import Database
from ..domain.feedback import FeedbackRow
from ..domain.rules import Det
from ..domain.suppression import JudgedDetection, StaticBox
from ..statuses import AuditVia
from .audit_repo import AuditRepository
from .listing import newest_first
from .rules_repo import RulesRepository
from .suppressions_repo import load_boxes, save_boxes


class FeedbackNotFound(LookupError):
    """No such alert, or the photo is not one of the alert's."""


@dataclass
class FeedbackUnit:
    """The open transaction of one verdict: the alert's camera locked; see the module docstring."""

    cur: Any
    alert: dict[str, Any]

    def record(
        self,
        *,
        image_id: int | None,
        verdict: str,
        what: str | None,
        note: str | None,
        user: str,
        role: str,
        via: AuditVia,
    ) -> dict[str, Any]:
        """Insert the verdict and its audit row; the feedback row (id, created_at, ...)."""
        cur, a = self.cur, self.alert
        if image_id is not None:
            cur.execute("SELECT 1 FROM images WHERE id = %s AND alert_id = %s", (image_id, a["id"]))
            if cur.fetchone() is None:
                raise FeedbackNotFound(f"photo {image_id} is not a photo of alert {a['id']}")
        cur.execute(
            """INSERT INTO feedback (park_id, camera_id, alert_id, image_id, verdict, what, note, user_name,
                   user_role) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *""",
            (a["park_id"], a["camera_id"], a["id"], image_id, verdict, what, note, user[:200], role[:50]),
        )
        row = dict(cur.fetchone())
        AuditRepository.record_in(
            cur,
            actor=user,
            actor_role=role,
            via=via,
            action="feedback.recorded",
            park_id=a["park_id"],
            target=f"alert:{a['id']}" + (f"/image:{image_id}" if image_id is not None else ""),
            details={"feedback_id": row["id"], "verdict": verdict, "what": what, "note": note},
        )
        return row

    def judged_detections(self, image_id: int | None) -> list[JudgedDetection]:
        """The detections of the alert's photos (or of the one photo), each with its event, photo, time
        and night flag."""
        where, params = ("i.alert_id = %s", [self.alert["id"]])
        if image_id is not None:
            where, params = ("i.id = %s AND i.alert_id = %s", [image_id, self.alert["id"]])
        self.cur.execute(
            f"""SELECT i.id AS image_id, i.event_id, COALESCE(i.taken_at, e.received_at) AS at,
                       COALESCE(i.night, false) AS night, d.category, d.conf, d.bbox_x, d.bbox_y, d.bbox_w,
                       d.bbox_h
                FROM images i JOIN detections d ON d.image_id = i.id
                LEFT JOIN inbound_emails e ON e.id = i.email_id
                WHERE {where} AND i.event_id IS NOT NULL ORDER BY i.id, d.id""",
            params,
        )
        return [
            JudgedDetection(
                r["event_id"],
                r["image_id"],
                r["at"],
                bool(r["night"]),
                Det(r["category"], float(r["conf"]), (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"])),
            )
            for r in self.cur.fetchall()
        ]

    def rule_layers(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return RulesRepository.layers_in(self.cur, self.alert["park_id"], self.alert["camera_id"])

    def boxes(self) -> list[StaticBox]:
        return load_boxes(self.cur, self.alert["camera_id"])

    def save_boxes(self, boxes: list[StaticBox]) -> dict[int, int]:
        return save_boxes(self.cur, self.alert["park_id"], self.alert["camera_id"], boxes)


def _row(r: dict[str, Any]) -> FeedbackRow:
    return FeedbackRow(
        r["id"], r["alert_id"], r["image_id"], r["verdict"], r["user_name"], r["created_at"], r["what"]
    )


class FeedbackRepository:
    def __init__(self, db: Database):
        self.db = db

    @contextmanager
    def unit(self, alert_id: int) -> Iterator[FeedbackUnit]:
        """One verdict's transaction, with the alert's camera row locked (FeedbackNotFound: no alert)."""
        with self.db.transaction() as cur:
            cur.execute("SELECT id, park_id, camera_id, kind FROM alerts WHERE id = %s", (alert_id,))
            alert = cur.fetchone()
            if alert is None:
                raise FeedbackNotFound(f"no alert {alert_id}")
            cur.execute("SELECT id FROM cameras WHERE id = %s FOR UPDATE", (alert["camera_id"],))
            yield FeedbackUnit(cur, dict(alert))

    # -- reads ------------------------------------------------------------------------------------------
    def for_alert(self, alert_id: int) -> list[dict[str, Any]]:
        """Every verdict on an alert (and its photos), oldest first: what the alert page shows."""
        return self.db.fetchall(
            "SELECT id, alert_id, image_id, verdict, what, note, user_name, user_role, created_at "
            "FROM feedback WHERE alert_id = %s ORDER BY created_at, id",
            (alert_id,),
        )

    def rows_for_alert(self, alert_id: int) -> list[FeedbackRow]:
        return [_row(r) for r in self.for_alert(alert_id)]

    def list(
        self, park_id: int | None = None, camera_id: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest verdicts first, with park slug and camera name."""
        return newest_first(
            self.db,
            "SELECT f.id, p.slug AS park, c.name AS camera, f.alert_id, f.image_id, f.verdict, f.what, "
            "f.note, f.user_name, f.user_role, f.created_at FROM feedback f JOIN parks p ON p.id = f.park_id "
            "JOIN cameras c ON c.id = f.camera_id",
            [("f.park_id = %s", park_id), ("f.camera_id = %s", camera_id)],
            key="f.id",
            limit=limit,
        )

    def judged(self, park_id: int, camera_id: int | None = None) -> dict[int, dict[str, Any]]:
        """Per camera of the park (or the one camera) that has feedback: {camera_id: {"camera": name,
        "rows": {alert_id: [FeedbackRow]}, "photos": {alert_id: [(image_id, night, {category: conf})]},
        "layers": (park layer, camera layer)}}: what precision and threshold suggestions are computed from."""
        params: list[Any] = [park_id]
        extra = ""
        if camera_id is not None:
            extra, params = " AND f.camera_id = %s", [park_id, camera_id]
        with self.db.transaction() as cur:
            cur.execute(
                f"""SELECT f.*, c.name AS camera FROM feedback f JOIN cameras c ON c.id = f.camera_id
                    WHERE f.park_id = %s{extra} ORDER BY f.created_at, f.id""",
                params,
            )
            out: dict[int, dict[str, Any]] = {}
            for r in cur.fetchall():
                cam = out.setdefault(r["camera_id"], {"camera": r["camera"], "rows": {}, "photos": {}})
                cam["rows"].setdefault(r["alert_id"], []).append(_row(r))
            alert_ids = sorted({a for cam in out.values() for a in cam["rows"]})
            if alert_ids:
                cur.execute(
                    """SELECT i.alert_id, i.id, COALESCE(i.night, (i.assessment->>'night')::boolean, false)
                              AS night, i.assessment->'seen' AS seen
                       FROM images i WHERE i.alert_id = ANY(%s) ORDER BY i.id""",
                    (alert_ids,),
                )
                by_alert: dict[int, list] = {}
                for r in cur.fetchall():
                    by_alert.setdefault(r["alert_id"], []).append(
                        (r["id"], bool(r["night"]), r["seen"] or {})
                    )
                for cam in out.values():
                    cam["photos"] = {a: by_alert.get(a, []) for a in cam["rows"]}
            for cam_id, cam in out.items():
                cam["layers"] = RulesRepository.layers_in(cur, park_id, cam_id)
        return out
