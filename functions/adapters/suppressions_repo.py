"""Static boxes (table suppressions): every read and write of them.

* :func:`load_boxes` / :func:`save_boxes` are used with the cursor of the camera's unit of work: by
  process-image (functions/adapters/alerts_repo.py, under the camera's row lock) and by rangers' feedback
  (:meth:`SuppressionsRepository.feedback_unit`, which takes the same lock);
* :class:`SuppressionsRepository` is what operators see: list (with the photos a proposal is based on),
  confirm or reject a proposal, lift a suppression, each with its audit row in the same transaction.

What a box is, and when it is proposed or suppressed, is decided in functions/domain/suppression.py.
"""

from __future__ import annotations

import json
from typing import Any

from ..db import Database
from ..domain.decision import NEW
from ..domain.suppression import Evidence, StaticBox
from ..statuses import AuditVia
from .audit_repo import AuditRepository


def load_boxes(cur, camera_id: int) -> list[StaticBox]:
    """The camera's static boxes (all statuses), oldest first."""
    cur.execute("SELECT * FROM suppressions WHERE camera_id = %s ORDER BY id", (camera_id,))
    return [
        StaticBox(
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
            tuple(Evidence.from_json(e) for e in (r.get("evidence") or [])),
            r.get("fp_count") or 0,
            r.get("confirmed_count") or 0,
        )
        for r in cur.fetchall()
    ]


def _evidence_json(box: StaticBox, event_id: int | None) -> str:
    out = []
    for e in box.evidence:
        d = e.to_json()
        if d["event_id"] == NEW:
            d["event_id"] = event_id
        out.append(d)
    return json.dumps(out)


def save_boxes(
    cur, park_id: int, camera_id: int, boxes: list[StaticBox], event_id: int | None = None
) -> dict[int, int]:
    """Insert or update the changed ``boxes``; {id(box object): row id}. ``event_id``: the row id that
    stands for NEW (the event the unit of work just created)."""
    ids: dict[int, int] = {}
    for box in boxes:
        last_event = event_id if box.last_event_id == NEW else box.last_event_id
        # what an insert and an update both write, in the same order
        state = (
            box.event_count,
            last_event,
            box.max_conf,
            box.first_seen_at,
            box.last_seen_at,
            box.status,
            box.reason,
            box.status,
            box.status,
            _evidence_json(box, event_id),
            box.fp_count,
            box.confirmed_count,
        )
        if box.id is None:
            cur.execute(
                """INSERT INTO suppressions (park_id, camera_id, category, bbox_x, bbox_y, bbox_w, bbox_h,
                       event_count, last_event_id, max_conf, first_seen_at, last_seen_at, status, reason,
                       suppressed_at, proposed_at, evidence, fp_count, confirmed_count)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                           CASE WHEN %s = 'suppressed' THEN now() END,
                           CASE WHEN %s = 'proposed' THEN now() END, %s::jsonb, %s, %s) RETURNING id""",
                (park_id, camera_id, box.category, *box.bbox, *state),
            )
            ids[id(box)] = cur.fetchone()["id"]
        else:
            cur.execute(
                """UPDATE suppressions SET event_count = %s, last_event_id = %s, max_conf = %s,
                       first_seen_at = %s, last_seen_at = %s, status = %s, reason = %s,
                       suppressed_at = CASE WHEN %s = 'suppressed' AND suppressed_at IS NULL THEN now()
                                            ELSE suppressed_at END,
                       proposed_at = CASE WHEN %s = 'proposed' AND proposed_at IS NULL THEN now()
                                          ELSE proposed_at END,
                       evidence = %s::jsonb, fp_count = %s, confirmed_count = %s
                   WHERE id = %s""",
                (*state, box.id),
            )
            ids[id(box)] = box.id
    return ids


_LIST = (
    "SELECT s.id, s.park_id, p.slug AS park, s.camera_id, c.name AS camera, s.status, s.category, "
    "s.bbox_x, s.bbox_y, s.bbox_w, s.bbox_h, s.event_count, s.fp_count, s.confirmed_count, s.max_conf, "
    "s.first_seen_at, s.last_seen_at, s.suppressed_at, s.proposed_at, s.reason, s.evidence, "
    "s.reviewed_at, s.reviewed_by, s.review_note, "
    "s.lifted_at, s.lifted_by, s.lift_note FROM suppressions s JOIN cameras c ON c.id = s.camera_id "
    "JOIN parks p ON p.id = s.park_id"
)


def _photos(row: dict[str, Any]) -> dict[str, Any]:
    """``image_ids``: the photos a box is based on (one per event and verdict, oldest first)."""
    evidence = row.get("evidence") or []
    row["image_ids"] = list(dict.fromkeys(e["image_id"] for e in evidence if e.get("image_id") is not None))
    return row


class SuppressionsRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- what operators see --------------------------------------------------------------------------
    def suppressions(
        self,
        park_slug: str | None = None,
        include_all: bool = False,
        *,
        status: str | None = None,
        camera_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Boxes with their park, camera, numbers, reason, ``evidence`` and ``image_ids`` (the photos a
        proposal is based on). Default: proposed, suppressed and lifted ones; ``include_all`` adds boxes
        still being watched and rejected proposals; ``status`` picks one status."""
        where, params = [], []
        if status:
            where.append("s.status = %s")
            params.append(status)
        elif not include_all:
            where.append("s.status IN ('proposed', 'suppressed', 'lifted')")
        if park_slug:
            where.append("p.slug = %s")
            params.append(park_slug)
        if camera_id is not None:
            where.append("s.camera_id = %s")
            params.append(camera_id)
        sql = _LIST + (" WHERE " + " AND ".join(where) if where else "")
        return [_photos(r) for r in self.db.fetchall(sql + " ORDER BY s.id", tuple(params))]

    def proposals(self, park_slug: str | None = None) -> list[dict[str, Any]]:
        """Proposed suppressions waiting for an operator (console, `trapalert suppressions list`)."""
        return self.suppressions(park_slug, status="proposed")

    def get(self, suppression_id: int) -> dict[str, Any] | None:
        row = self.db.fetchone(_LIST + " WHERE s.id = %s", (suppression_id,))
        return _photos(row) if row else None

    def photos(self, suppression_id: int) -> list[dict[str, Any]]:
        """The photos a box is based on, with what each was (seen / false_positive / confirmed), its event,
        blob name and time: what the console shows next to a proposal."""
        row = self.db.fetchone("SELECT evidence FROM suppressions WHERE id = %s", (suppression_id,))
        if row is None:
            return []
        evidence = [e for e in (row["evidence"] or []) if e.get("image_id") is not None]
        if not evidence:
            return []
        images = {
            r["id"]: r
            for r in self.db.fetchall(
                "SELECT id, blob_name, taken_at, alert_id, event_id FROM images WHERE id = ANY(%s)",
                ([e["image_id"] for e in evidence],),
            )
        }
        out = []
        for e in evidence:
            img = images.get(e["image_id"])
            out.append(
                {
                    "image_id": e["image_id"],
                    "event_id": e.get("event_id"),
                    "source": e.get("source", "seen"),
                    "at": e.get("at"),
                    "blob_name": img["blob_name"] if img else None,
                    "alert_id": img["alert_id"] if img else None,
                }
            )
        return out

    # -- what operators do ---------------------------------------------------------------------------
    def _review(
        self,
        suppression_id: int,
        *,
        to: str,
        from_statuses: tuple[str, ...],
        actor: str,
        actor_role: str | None,
        via: AuditVia,
        note: str | None,
        action: str,
        lift: bool = False,
    ) -> dict[str, Any] | None:
        with self.db.transaction() as cur:
            if lift:
                cur.execute(
                    "UPDATE suppressions SET status = %s, lifted_at = now(), lifted_by = %s, lift_note = %s "
                    "WHERE id = %s AND status = ANY(%s) RETURNING id, status, camera_id, park_id, category",
                    (to, actor, note, suppression_id, list(from_statuses)),
                )
            else:
                cur.execute(
                    "UPDATE suppressions SET status = %s, reviewed_at = now(), reviewed_by = %s, "
                    "review_note = %s, suppressed_at = CASE WHEN %s = 'suppressed' THEN now() "
                    "ELSE suppressed_at END WHERE id = %s AND status = ANY(%s) "
                    "RETURNING id, status, camera_id, park_id, category",
                    (to, actor, note, to, suppression_id, list(from_statuses)),
                )
            row = cur.fetchone()
            if row is None:
                return None
            AuditRepository.record_in(
                cur,
                actor=actor,
                actor_role=actor_role,
                via=via,
                action=action,
                park_id=row["park_id"],
                target=f"suppression:{suppression_id}",
                details={"camera_id": row["camera_id"], "category": row["category"], "note": note},
            )
            return dict(row)

    def confirm(
        self,
        suppression_id: int,
        *,
        actor: str,
        actor_role: str | None,
        via: AuditVia,
        note: str | None = None,
    ) -> dict[str, Any] | None:
        """A proposal confirmed: detections inside the box no longer alert. None: no such proposal."""
        return self._review(
            suppression_id,
            to="suppressed",
            from_statuses=("proposed",),
            actor=actor,
            actor_role=actor_role,
            via=via,
            note=note,
            action="suppression.confirmed",
        )

    def reject(
        self,
        suppression_id: int,
        *,
        actor: str,
        actor_role: str | None,
        via: AuditVia,
        note: str | None = None,
    ) -> dict[str, Any] | None:
        """A proposal rejected: the place keeps alerting and is never proposed again. None: no such
        proposal."""
        return self._review(
            suppression_id,
            to="rejected",
            from_statuses=("proposed",),
            actor=actor,
            actor_role=actor_role,
            via=via,
            note=note,
            action="suppression.rejected",
        )

    def lift(
        self,
        suppression_id: int,
        by: str | None,
        note: str | None,
        *,
        actor_role: str | None = None,
        via: AuditVia = "cli",
    ) -> dict[str, Any] | None:
        """A suppression lifted: detections at that place alert again, and it is never suppressed again."""
        return self._review(
            suppression_id,
            to="lifted",
            from_statuses=("suppressed",),
            actor=by or "unknown",
            actor_role=actor_role,
            via=via,
            note=note,
            action="suppression.lifted",
            lift=True,
        )
