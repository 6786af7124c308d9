"""PostgreSQL side of process-image: store a photo's detections, apply the event/alert decision of the
domain (functions/domain/) under a row lock on the camera, and the send-alert outbox.

Concurrency: every decision about one camera runs in one transaction that first takes ``SELECT ... FOR
UPDATE`` on the camera's row, so the photos of a burst handled by parallel workers are decided one after
the other (the first opens the alert, the others attach). Scoring (HTTP) happens before, outside any lock.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..db import Database
from ..domain import events as ev
from ..domain import suppression as sup
from ..domain.rules import Det, PhotoAssessment, Rules, assess_photo
from .rules_repo import RulesRepository
from .scoring_client import ImageScore

log = logging.getLogger(__name__)


@dataclass
class Decision:
    """What one photo's decision did (for logs and tests)."""

    image_id: int
    event_id: int | None = None
    alert_id: int | None = None
    action: str = "none"
    notify: str | None = None
    reason: str = ""
    already_decided: bool = False


class AlertsRepository:
    def __init__(self, db: Database):
        self.db = db
        self.rules = RulesRepository(db)

    # -- images ---------------------------------------------------------------------------------------
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

    # -- the decision ---------------------------------------------------------------------------------
    def record_and_decide(self, image_id: int, camera_id: int, score: ImageScore | None) -> Decision:
        """In one transaction: lock the camera, store ``score`` if the image is still 'stored', then apply
        the event/alert decision unless it was applied already (a redelivered message changes nothing)."""
        with self.db.transaction() as cur:
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
            if image["status"] == "stored":
                if score is None:
                    raise RuntimeError(f"image {image_id} is not scored yet")
                self._store_score(cur, image_id, score)
                image["night"] = bool(score.night)
            elif image["status"] != "scored":
                return Decision(image_id, reason=f"image status {image['status']}", already_decided=True)
            if image["decided_at"] is not None:
                return Decision(
                    image_id,
                    image["event_id"],
                    image["alert_id"],
                    reason="already decided",
                    already_decided=True,
                )
            return self._decide(cur, dict(camera), dict(image))

    def _store_score(self, cur, image_id: int, score: ImageScore) -> None:
        if score.detections:
            args = [
                (image_id, d.category, float(d.conf), *(float(v) for v in d.bbox)) for d in score.detections
            ]
            cur.executemany(
                "INSERT INTO detections (image_id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                args,
            )
        cur.execute(
            "UPDATE images SET status = 'scored', reason = NULL, night = %s, model_name = %s, "
            "model_version = %s, scored_at = now() WHERE id = %s",
            (score.night, score.detector, score.detector_version, image_id),
        )

    def _decide(self, cur, camera: dict, image: dict) -> Decision:
        image_id = image["id"]
        rules = self.rules.effective(camera["park_id"], camera["id"], cur)
        taken_at: datetime = image["taken_at"] or image["created_at"]
        try:
            local = taken_at.astimezone(ZoneInfo(camera["tz"])).time()
        except (ZoneInfoNotFoundError, ValueError):
            local = taken_at.time()
        night = bool(image["night"])

        # 1. the event (burst) this photo belongs to
        cur.execute(
            """SELECT id, started_at, last_image_at, alert_id FROM events
                       WHERE camera_id = %s AND started_at <= %s + make_interval(secs => %s)
                         AND last_image_at >= %s - make_interval(secs => %s)""",
            (camera["id"], taken_at, rules.burst_gap_s, taken_at, rules.burst_gap_s),
        )
        windows = [
            ev.EventWindow(r["id"], r["started_at"], r["last_image_at"], r["alert_id"])
            for r in cur.fetchall()
        ]
        choice = ev.assign_event(taken_at, windows, rules.burst_gap_s)
        if choice.kind == "new":
            cur.execute(
                "INSERT INTO events (park_id, camera_id, started_at, last_image_at) VALUES (%s, %s, %s, %s) "
                "RETURNING id",
                (camera["park_id"], camera["id"], taken_at, taken_at),
            )
            event_id = cur.fetchone()["id"]
        else:
            event_id = choice.event_id
            if choice.merge_ids:
                merged = list(choice.merge_ids)
                cur.execute("SELECT alert_id FROM events WHERE id = %s", (event_id,))
                keep_alert = cur.fetchone()["alert_id"]
                cur.execute(
                    "UPDATE images SET event_id = %s, alert_id = %s WHERE event_id = ANY(%s)",
                    (event_id, keep_alert, merged),
                )
                cur.execute("DELETE FROM events WHERE id = ANY(%s)", (merged,))
                log.info("photo %s bridges events %s: merged into event %s", image_id, merged, event_id)

        # 2. detections, static false positives
        cur.execute(
            "SELECT id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h FROM detections WHERE image_id = %s "
            "ORDER BY id",
            (image_id,),
        )
        rows = cur.fetchall()
        dets = [
            Det(r["category"], float(r["conf"]), (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"]))
            for r in rows
        ]
        cand_idx = [i for i, d in enumerate(dets) if rules.is_candidate(d.category, d.conf, d.bbox, night)]
        suppressed_by = self._observe_static(cur, camera, rules, event_id, taken_at, dets, cand_idx)
        for i, sid in suppressed_by.items():
            dets[i] = Det(dets[i].category, dets[i].conf, dets[i].bbox, suppressed=True)
            cur.execute("UPDATE detections SET suppression_id = %s WHERE id = %s", (sid, rows[i]["id"]))

        # 3. the photo, then its event
        assessment = assess_photo(dets, rules, night=night, local_time=local)
        cur.execute(
            "UPDATE images SET event_id = %s, assessment = %s::jsonb, decided_at = now() WHERE id = %s",
            (event_id, json.dumps(assessment.to_json()), image_id),
        )
        event_photos = self._photos(cur, "event_id = %s", (event_id,))
        summary = ev.summarize(event_photos, rules)
        cur.execute("SELECT alert_id FROM events WHERE id = %s", (event_id,))
        event_alert_id = cur.fetchone()["alert_id"]
        event_alert = self._alert_state(cur, event_alert_id) if event_alert_id else None
        recent = None
        if event_alert is None and summary.passes:
            cur.execute(
                """SELECT id FROM alerts WHERE camera_id = %s AND kind = 'detection'
                           ORDER BY last_image_at DESC LIMIT 1""",
                (camera["id"],),
            )
            row = cur.fetchone()
            recent = self._alert_state(cur, row["id"]) if row else None
        decision = ev.decide_event(summary, event_alert, recent, rules)
        cur.execute(
            "UPDATE events SET started_at = %s, last_image_at = %s, image_count = %s, summary = %s::jsonb, "
            "updated_at = now() WHERE id = %s",
            (
                summary.started_at,
                summary.last_image_at,
                summary.image_count,
                json.dumps(summary.to_json() | {"decision": decision.action, "reason": decision.reason}),
                event_id,
            ),
        )
        out = Decision(image_id, event_id, action=decision.action, reason=decision.reason)

        # 4. the alert
        if decision.action == "open":
            out.alert_id = self._open_alert(cur, camera, image, event_id, summary, decision.reason)
            out.notify = "new"
        elif decision.action in ("join", "refresh"):
            assert decision.alert_id is not None
            if decision.action == "join":
                cur.execute("UPDATE events SET alert_id = %s WHERE id = %s", (decision.alert_id, event_id))
            out.alert_id = decision.alert_id
            out.notify = self._refresh_alert(
                cur, camera, decision.alert_id, rules, joined=decision.action == "join"
            )
        log.info(
            "image %s: event %s, %s%s (%s)",
            image_id,
            event_id,
            decision.action,
            f" alert {out.alert_id}" if out.alert_id else "",
            decision.reason,
            extra={"image_id": image_id, "event_id": event_id, "alert_id": out.alert_id},
        )
        return out

    def _observe_static(
        self, cur, camera, rules: Rules, event_id: int, at: datetime, dets: list[Det], cand_idx: list[int]
    ) -> dict[int, int]:
        """Update the camera's static boxes with this photo's candidates; {det index: suppression id} of the
        detections that lie in a suppressed box."""
        if not cand_idx:
            return {}
        cur.execute("SELECT * FROM suppressions WHERE camera_id = %s ORDER BY id", (camera["id"],))
        boxes = [
            sup.StaticBox(
                r["id"],
                r["category"],
                (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"]),
                r["event_count"],
                r["last_event_id"],
                r["status"],
                r["max_conf"],
                r["first_seen_at"],
                r["last_seen_at"],
                r["reason"],
            )
            for r in cur.fetchall()
        ]
        candidates = [dets[i] for i in cand_idx]
        obs = sup.observe(boxes, candidates, event_id=event_id, at=at, rules=rules)
        ids: dict[int, int] = {}  # id(box object) -> row id
        for box in obs.changed:
            if box.id is None:
                cur.execute(
                    """INSERT INTO suppressions (park_id, camera_id, category, bbox_x, bbox_y, bbox_w, bbox_h,
                                   event_count, last_event_id, max_conf, first_seen_at, last_seen_at, status,
                                   reason,
                                   suppressed_at)
                               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                                       CASE WHEN %s = 'suppressed' THEN now() END) RETURNING id""",
                    (
                        camera["park_id"],
                        camera["id"],
                        box.category,
                        *box.bbox,
                        box.event_count,
                        box.last_event_id,
                        box.max_conf,
                        box.first_seen_at,
                        box.last_seen_at,
                        box.status,
                        box.reason,
                        box.status,
                    ),
                )
                ids[id(box)] = cur.fetchone()["id"]
            else:
                cur.execute(
                    """UPDATE suppressions SET event_count = %s, last_event_id = %s, max_conf = %s,
                                   first_seen_at = %s, last_seen_at = %s, status = %s, reason = %s,
                                   suppressed_at = CASE WHEN %s = 'suppressed' AND suppressed_at IS NULL
                                                        THEN now()
                                                        ELSE suppressed_at END
                               WHERE id = %s""",
                    (
                        box.event_count,
                        box.last_event_id,
                        box.max_conf,
                        box.first_seen_at,
                        box.last_seen_at,
                        box.status,
                        box.reason,
                        box.status,
                        box.id,
                    ),
                )
                ids[id(box)] = box.id
        for box in obs.newly_suppressed:
            log.warning(
                "camera %s: static false positive suppressed: %s",
                camera["name"],
                box.reason,
                extra={"camera_id": camera["id"]},
            )
        out = {}
        for j, box in obs.matched.items():
            if box.status == "suppressed":
                out[cand_idx[j]] = ids.get(id(box), box.id)
        return out

    def _photos(self, cur, where: str, params: tuple) -> list[ev.PhotoRecord]:
        cur.execute(
            f"SELECT id, COALESCE(taken_at, created_at) AS t, assessment FROM images "
            f"WHERE {where} AND decided_at IS NOT NULL",
            params,
        )
        return [
            ev.PhotoRecord(r["id"], r["t"], PhotoAssessment.from_json(r["assessment"]))
            for r in cur.fetchall()
        ]

    def _alert_state(self, cur, alert_id: int) -> ev.AlertState:
        cur.execute(
            "SELECT id, version, categories, max_conf, started_at, last_image_at FROM alerts WHERE id = %s",
            (alert_id,),
        )
        r = cur.fetchone()
        return ev.AlertState(
            r["id"],
            r["version"],
            tuple(r["categories"] or ()),
            float(r["max_conf"] or 0.0),
            r["started_at"],
            r["last_image_at"],
        )

    def _open_alert(self, cur, camera, image, event_id: int, s: ev.Summary, reason: str) -> int:
        cur.execute(
            """INSERT INTO alerts (park_id, camera_id, kind, categories, max_conf, mean_conf, image_count,
                   best_image_id, started_at, last_image_at, version, title, details, correlation_id)
               VALUES (%s, %s, 'detection', %s, %s, %s, %s, %s, %s, %s, 1, %s, %s::jsonb, %s) RETURNING id""",
            (
                camera["park_id"],
                camera["id"],
                s.categories,
                s.max_conf,
                s.mean_conf,
                s.image_count,
                s.best_image_id,
                s.started_at,
                s.last_image_at,
                ev.alert_title(s.categories, camera["name"]),
                json.dumps({"opened_because": reason, "how": s.how, "events": [event_id], "updates": []}),
                str(image["correlation_id"] or uuid.uuid4()),
            ),
        )
        alert_id = cur.fetchone()["id"]
        cur.execute("UPDATE events SET alert_id = %s WHERE id = %s", (alert_id, event_id))
        cur.execute("UPDATE images SET alert_id = %s WHERE event_id = %s", (alert_id, event_id))
        return alert_id

    def _refresh_alert(self, cur, camera, alert_id: int, rules: Rules, *, joined: bool) -> str | None:
        """Recompute the alert over all photos of its events; bump its version when worth telling."""
        old = self._alert_state(cur, alert_id)
        cur.execute(
            "UPDATE images SET alert_id = %s WHERE event_id IN (SELECT id FROM events WHERE alert_id = %s) "
            "AND alert_id IS DISTINCT FROM %s",
            (alert_id, alert_id, alert_id),
        )
        photos = self._photos(cur, "alert_id = %s", (alert_id,))
        s = ev.summarize(photos, rules)
        why = ev.worth_telling(old, s, rules, joined_event=joined)
        cur.execute("SELECT array_agg(id ORDER BY id) AS ids FROM events WHERE alert_id = %s", (alert_id,))
        event_ids = cur.fetchone()["ids"] or []
        detail = {"events": event_ids}
        if why:
            detail["last_update_reason"] = why
        cur.execute(
            """UPDATE alerts SET categories = %s, max_conf = %s, mean_conf = %s, image_count = %s,
                   best_image_id = COALESCE(%s, best_image_id), started_at = LEAST(started_at, %s),
                   last_image_at = GREATEST(last_image_at, %s), title = %s,
                   details = details || %s::jsonb, version = version + %s, updated_at = now()
               WHERE id = %s""",
            (
                s.categories or list(old.categories),
                max(s.max_conf, 0.0),
                s.mean_conf,
                s.image_count,
                s.best_image_id,
                s.started_at or old.started_at,
                s.last_image_at or old.last_image_at,
                ev.alert_title(s.categories or list(old.categories), camera["name"]),
                json.dumps(detail),
                1 if why else 0,
                alert_id,
            ),
        )
        return "update" if why else None

    # -- outbox ---------------------------------------------------------------------------------------
    def pending_alerts(self, camera_id: int) -> list[int]:
        return [
            r["id"]
            for r in self.db.fetchall(
                "SELECT id FROM alerts WHERE camera_id = %s AND enqueued_version < version ORDER BY id",
                (camera_id,),
            )
        ]

    def enqueue_pending(self, alert_id: int, send, correlation_id: str | None) -> tuple[int, str] | None:
        """If the alert has a version not enqueued yet, call ``send(alert_id, version, reason)`` (which puts
        the SendAlert on the queue and returns its message id) while holding the alert's row lock, then record
        it. A failing ``send`` rolls back and raises: the queue message retries and enqueues then."""
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT id, version, enqueued_version FROM alerts "
                "WHERE id = %s AND enqueued_version < version "
                "FOR UPDATE SKIP LOCKED",
                (alert_id,),
            )
            row = cur.fetchone()
            if row is None:  # done already, or another worker is enqueuing it right now
                return None
            reason = "new" if row["enqueued_version"] == 0 else "update"
            message_id = send(alert_id, row["version"], reason)
            cur.execute("UPDATE alerts SET enqueued_version = %s WHERE id = %s", (row["version"], alert_id))
            cur.execute(
                "INSERT INTO alert_notifications (alert_id, version, reason, message_id, correlation_id) "
                "VALUES (%s, %s, %s, %s, %s)",
                (alert_id, row["version"], reason, message_id, correlation_id),
            )
            return row["version"], reason

    # -- suppressions (operators) ---------------------------------------------------------------------
    def suppressions(self, park_slug: str | None = None, include_all: bool = False) -> list[dict[str, Any]]:
        where, params = [], []
        if not include_all:
            where.append("s.status IN ('suppressed', 'lifted')")
        if park_slug:
            where.append("p.slug = %s")
            params.append(park_slug)
        sql = (
            "SELECT s.id, p.slug AS park, c.name AS camera, s.status, s.category, "
            "s.bbox_x, s.bbox_y, s.bbox_w, s.bbox_h, s.event_count, s.max_conf, "
            "s.first_seen_at, s.last_seen_at, s.suppressed_at, s.reason, "
            "s.lifted_at, s.lifted_by, s.lift_note FROM suppressions s JOIN cameras c ON c.id = s.camera_id "
            "JOIN parks p ON p.id = s.park_id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self.db.fetchall(sql + " ORDER BY s.id", tuple(params))

    def lift(self, suppression_id: int, by: str | None, note: str | None) -> dict[str, Any] | None:
        return self.db.fetchone(
            "UPDATE suppressions SET status = 'lifted', lifted_at = now(), lifted_by = %s, lift_note = %s "
            "WHERE id = %s AND status = 'suppressed' RETURNING id, status, camera_id",
            (by, note, suppression_id),
        )
