"""Camera health in PostgreSQL: the facts the timer reads, and the raise/clear transitions it records.

Per (camera, condition) the state is one row of ``camera_health``. A transition is claimed atomically
(``INSERT .. ON CONFLICT .. WHERE status = 'cleared'`` to raise, ``UPDATE .. WHERE status = 'raised'`` to
clear), so two timer runs at once (scale-out) record it once.

A transition and the SendAlert that announces it commit together: the message is written to the outbox
(scope ``camera-health``) in the transition's transaction, and the handler flushes that scope after the
commit (functions/adapters/outbox.py).
- raise: a new ``alerts`` row with kind='health' (version 1), then SendAlert(reason='health', version=1);
- clear: the same alert row gets version + 1 and details.cleared_at, then SendAlert(reason='health_cleared').

The theft and tamper watch of one photo (:class:`PhotoWatchUnit`, from process-image) records the photo's
view signature and watch result (``images.view_sig``, ``images.watch``), moves the camera's reference view
when a new one is adopted (``camera_views``), and makes its transitions with the same statements, in one
transaction under the camera's row lock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..db import Database
from ..domain.rules import Det
from ..domain.watch import WatchedPhoto
from ..messages import SendAlert
from ..names import SEND_ALERT_QUEUE
from .outbox import Outbox, OutboxMessage
from .rules_repo import RulesRepository

OUTBOX_SCOPE = "camera-health"

_FACTS_SQL = """
SELECT c.id, c.park_id, c.name, c.expected_interval_s, c.created_at, c.overrides,
       c.zone, c.latitude, c.longitude,
       greatest(c.last_seen_at, e.received_at) AS last_seen_at,
       p.settings AS park_settings, e.meta,
       i.taken_at, i.email_received_at,
       coalesce((SELECT array_agg(h.condition) FROM camera_health h
                 WHERE h.camera_id = c.id AND h.status = 'raised'), '{}') AS raised,
       coalesce((SELECT jsonb_object_agg(h.condition, h.details) FROM camera_health h
                 WHERE h.camera_id = c.id AND h.status = 'raised'), '{}'::jsonb) AS raised_details,
       (SELECT max(im.created_at) FROM images im
        WHERE im.camera_id = c.id AND (im.watch ->> 'close_person') = 'true') AS last_close_person_at
FROM cameras c
JOIN parks p ON p.id = c.park_id
LEFT JOIN LATERAL (
    SELECT ie.meta, ie.received_at FROM inbound_emails ie
    WHERE ie.camera_id = c.id AND ie.status IN ('accepted', 'released')
    ORDER BY ie.received_at DESC LIMIT 1) e ON true
LEFT JOIN LATERAL (
    SELECT im.taken_at, ie.received_at AS email_received_at FROM images im
    JOIN inbound_emails ie ON ie.id = im.email_id
    WHERE im.camera_id = c.id AND im.taken_at_source = 'exif' AND im.taken_at IS NOT NULL
    ORDER BY ie.received_at DESC, im.attachment_index LIMIT 1) i ON true
WHERE c.active
ORDER BY c.id
"""


@dataclass(frozen=True)
class Recorded:
    """A transition this call claimed. ``alert_id`` is None when a cleared condition's alert row is gone
    (deleted): the condition is cleared and there is nothing to announce."""

    alert_id: int | None
    version: int | None = None
    correlation_id: uuid.UUID | None = None


class HealthRepository:
    def __init__(self, db: Database):
        self.db = db

    def facts(self) -> list[dict[str, Any]]:
        """One row per active camera: what functions.domain.health.report_of reads, plus ``park_id`` and
        ``raised`` (the conditions raised now)."""
        return self.db.fetchall(_FACTS_SQL)

    def raise_condition(
        self,
        *,
        camera_id: int,
        park_id: int,
        condition: str,
        details: dict[str, Any],
        title: str,
        alert_details: dict[str, Any],
        last_seen_at: datetime | None,
    ) -> Recorded | None:
        """Raise ``condition`` of a camera: open its health alert and write SendAlert(reason='health') to the
        outbox, in one transaction. None when it is raised already (another run got there first)."""
        with self.db.transaction() as cur:
            return _raise(
                cur,
                camera_id=camera_id,
                park_id=park_id,
                condition=condition,
                details=details,
                title=title,
                alert_details=alert_details,
                last_seen_at=last_seen_at,
            )

    def clear_condition(
        self, *, camera_id: int, condition: str, title: str, alert_details: dict[str, Any]
    ) -> Recorded | None:
        """Clear ``condition`` of a camera: bump its alert's version (title, details merged) and write
        SendAlert(reason='health_cleared') to the outbox, in one transaction. None when it is not raised
        (cleared already by another run)."""
        with self.db.transaction() as cur:
            return _clear(
                cur, camera_id=camera_id, condition=condition, title=title, alert_details=alert_details
            )

    def photo(self, image_id: int) -> dict[str, Any] | None:
        """The photo's status, blob and watch record (is it to be watched?)."""
        return self.db.fetchone("SELECT status, blob_name, watch FROM images WHERE id = %s", (image_id,))

    @contextmanager
    def watching(self, camera_id: int, image_id: int) -> Iterator[PhotoWatchUnit]:
        """One transaction around the theft and tamper watch of one scored photo, with the camera's row
        locked (photos of one camera are watched one at a time, as they are decided)."""
        with self.db.transaction() as cur:
            yield PhotoWatchUnit(cur, camera_id, image_id)

    def current(self, park: str | None = None) -> list[dict[str, Any]]:
        """Raised conditions, newest first (for the ops page, status and `trapalert health list`)."""
        return self.db.fetchall(
            "SELECT h.camera_id, c.name AS camera, p.slug AS park, h.condition, h.raised_at, h.alert_id, "
            "h.details "
            "FROM camera_health h JOIN cameras c ON c.id = h.camera_id JOIN parks p ON p.id = c.park_id "
            "WHERE h.status = 'raised' AND (%(park)s::text IS NULL OR p.slug = %(park)s) "
            "ORDER BY h.raised_at DESC",
            {"park": park},
        )


class PhotoWatchUnit:
    """The rows of one photo's watch (functions/domain/watch.py), inside one transaction: the photo, its
    camera and park settings, its detections, the camera's earlier watched photos and reference view, and
    the raise/clear transitions (the same as the timer's, with the outbox)."""

    def __init__(self, cur, camera_id: int, image_id: int):
        self.cur = cur
        cur.execute(
            "SELECT c.id, c.name, c.park_id, c.overrides, p.settings AS park_settings, "
            "coalesce(v.since_image_id, 0) AS since_image_id "
            "FROM cameras c JOIN parks p ON p.id = c.park_id "
            "LEFT JOIN camera_views v ON v.camera_id = c.id WHERE c.id = %s FOR UPDATE OF c",
            (camera_id,),
        )
        self.camera: dict[str, Any] | None = cur.fetchone()
        cur.execute(
            "SELECT id, camera_id, status, night, blob_name, view_sig, watch, "
            "coalesce(taken_at, created_at) AS at FROM images WHERE id = %s",
            (image_id,),
        )
        self.image: dict[str, Any] | None = cur.fetchone()
        self.camera_id, self.image_id = camera_id, image_id

    def raised(self) -> set[str]:
        self.cur.execute(
            "SELECT condition FROM camera_health WHERE camera_id = %s AND status = 'raised'",
            (self.camera_id,),
        )
        return {r["condition"] for r in self.cur.fetchall()}

    def rule_layers(self) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self.camera is not None
        return RulesRepository.layers_in(self.cur, self.camera["park_id"], self.camera_id)

    def detections(self) -> list[Det]:
        self.cur.execute(
            "SELECT category, conf, bbox_x, bbox_y, bbox_w, bbox_h FROM detections WHERE image_id = %s "
            "ORDER BY id",
            (self.image_id,),
        )
        return [
            Det(r["category"], float(r["conf"]), (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"]))
            for r in self.cur.fetchall()
        ]

    def history(self, n: int) -> list[WatchedPhoto]:
        """The camera's last ``n`` watched photos before this one (by id: order of arrival), newest first."""
        self.cur.execute(
            "SELECT id, view_sig, watch FROM images WHERE camera_id = %s AND id < %s AND watch IS NOT NULL "
            "ORDER BY id DESC LIMIT %s",
            (self.camera_id, self.image_id, n),
        )
        return [
            WatchedPhoto(
                r["id"],
                str(r["watch"].get("view") or "unknown"),
                bool(r["watch"].get("close_person")),
                r["watch"].get("regime"),
                r["view_sig"],
            )
            for r in self.cur.fetchall()
        ]

    def references(self, regime: str, k: int) -> list[str]:
        """Signatures of the camera's last ``k`` photos of ``regime`` that show its reference view."""
        assert self.camera is not None
        self.cur.execute(
            "SELECT view_sig FROM images WHERE camera_id = %s AND id < %s AND id >= %s "
            "AND watch IS NOT NULL AND watch ->> 'regime' = %s AND watch ->> 'view' IN ('baseline', 'match') "
            "AND view_sig IS NOT NULL ORDER BY id DESC LIMIT %s",
            (self.camera_id, self.image_id, self.camera["since_image_id"], regime, k),
        )
        return [r["view_sig"] for r in self.cur.fetchall()]

    def record(self, view_sig: str | None, watch: dict[str, Any]) -> None:
        self.cur.execute(
            "UPDATE images SET view_sig = %s, watch = %s WHERE id = %s",
            (view_sig, json.dumps(watch), self.image_id),
        )

    def adopt(self, since_image_id: int, image_ids: tuple[int, ...]) -> None:
        """The view of ``image_ids`` becomes the camera's reference view, from ``since_image_id`` on."""
        self.cur.execute(
            "UPDATE images SET watch = jsonb_set(watch, '{view}', '\"match\"') "
            "WHERE camera_id = %s AND id = ANY(%s)",
            (self.camera_id, list(image_ids)),
        )
        self.cur.execute(
            "INSERT INTO camera_views (camera_id, since_image_id, adopted_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (camera_id) DO UPDATE SET since_image_id = EXCLUDED.since_image_id, "
            "adopted_at = now(), updated_at = now()",
            (self.camera_id, since_image_id),
        )

    def raise_(
        self, condition: str, details: dict[str, Any], title: str, alert_details: dict[str, Any]
    ) -> Recorded | None:
        assert self.camera is not None and self.image is not None
        return _raise(
            self.cur,
            camera_id=self.camera_id,
            park_id=self.camera["park_id"],
            condition=condition,
            details=details,
            title=title,
            alert_details=alert_details,
            last_seen_at=self.image["at"],
            image_id=self.image_id,
        )

    def clear(self, condition: str, title: str, alert_details: dict[str, Any]) -> Recorded | None:
        return _clear(
            self.cur, camera_id=self.camera_id, condition=condition, title=title, alert_details=alert_details
        )


def _raise(
    cur,
    *,
    camera_id: int,
    park_id: int,
    condition: str,
    details: dict[str, Any],
    title: str,
    alert_details: dict[str, Any],
    last_seen_at: datetime | None,
    image_id: int | None = None,
) -> Recorded | None:
    """Raise ``condition`` in the caller's transaction (see HealthRepository.raise_condition). ``image_id``:
    the photo that shows the condition (the alert's photo)."""
    correlation_id = uuid.uuid4()
    cur.execute(
        "INSERT INTO camera_health (camera_id, condition, status, raised_at, details) "
        "VALUES (%(cam)s, %(cond)s, 'raised', now(), %(details)s) "
        "ON CONFLICT (camera_id, condition) DO UPDATE SET status = 'raised', raised_at = now(), "
        "cleared_at = NULL, details = EXCLUDED.details, updated_at = now() "
        "WHERE camera_health.status = 'cleared' RETURNING camera_id",
        {"cam": camera_id, "cond": condition, "details": json.dumps(details)},
    )
    if cur.fetchone() is None:
        return None
    cur.execute(
        "INSERT INTO alerts (park_id, camera_id, kind, started_at, last_image_at, title, details, "
        "correlation_id, best_image_id, image_count) "
        "VALUES (%s, %s, 'health', now(), coalesce(%s, now()), %s, %s, %s, %s, %s) "
        "RETURNING id, version",
        (
            park_id,
            camera_id,
            last_seen_at,
            title,
            json.dumps(alert_details),
            str(correlation_id),
            image_id,
            1 if image_id is not None else 0,
        ),
    )
    alert = cur.fetchone()
    cur.execute(
        "UPDATE camera_health SET alert_id = %s WHERE camera_id = %s AND condition = %s",
        (alert["id"], camera_id, condition),
    )
    recorded = Recorded(alert["id"], alert["version"], correlation_id)
    _announce(cur, recorded, "health")
    return recorded


def _clear(
    cur, *, camera_id: int, condition: str, title: str, alert_details: dict[str, Any]
) -> Recorded | None:
    """Clear ``condition`` in the caller's transaction (see HealthRepository.clear_condition)."""
    cur.execute(
        "UPDATE camera_health SET status = 'cleared', cleared_at = now(), updated_at = now() "
        "WHERE camera_id = %s AND condition = %s AND status = 'raised' RETURNING alert_id",
        (camera_id, condition),
    )
    claimed = cur.fetchone()
    if claimed is None:
        return None
    if claimed["alert_id"] is None:
        return Recorded(None)
    cur.execute(
        "UPDATE alerts SET version = version + 1, updated_at = now(), title = %s, "
        "details = details || %s::jsonb WHERE id = %s RETURNING id, version, correlation_id",
        (title, json.dumps(alert_details), claimed["alert_id"]),
    )
    alert = cur.fetchone()
    if alert is None:  # the alert row went between the two statements
        return Recorded(None)
    cid = alert["correlation_id"]  # old alert rows may have none
    recorded = Recorded(alert["id"], alert["version"], uuid.UUID(str(cid)) if cid else uuid.uuid4())
    _announce(cur, recorded, "health_cleared")
    return recorded


def _announce(cur, recorded: Recorded, reason: Literal["health", "health_cleared"]) -> None:
    """Write the SendAlert of a transition to the outbox, in the transition's transaction."""
    assert recorded.alert_id is not None and recorded.version is not None
    assert recorded.correlation_id is not None
    message = SendAlert(
        alert_id=recorded.alert_id,
        version=recorded.version,
        reason=reason,
        correlation_id=recorded.correlation_id,
    )
    Outbox.add(
        cur,
        OutboxMessage(
            queue=SEND_ALERT_QUEUE,
            message=message,
            key=f"send-alert:{recorded.alert_id}:v{recorded.version}",
            scope=OUTBOX_SCOPE,
        ),
    )
