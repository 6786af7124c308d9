"""Batches and their items in PostgreSQL (migration 0014_batch.sql), and the blobs they read and write.

Exactly once: an item's result is written only while it is ``pending`` (``UPDATE ... WHERE state =
'pending'``), in the same transaction that queues the batch's next item (its BulkImage goes through the
outbox with key ``bulk:<purpose>:<item id>``, scope ``batch:<id>``) and, when it was the last one, marks the
batch ``done``. The same photo twice in a batch is caught by the unique index on ``(batch_id, sha256)``.

Nothing here decides: what a photo's failure string is, whether a batch can be cancelled, or what a
re-scoring changed is decided by functions/handlers/batch.py and functions/domain/rescore.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
from azure.core.exceptions import ResourceNotFoundError
from psycopg2.extras import Json, execute_values

from .. import names
from ..db import Database
from ..domain.rescore import PastAlert
from ..messages import BulkImage, SendAlert
from .outbox import Outbox, OutboxMessage
from .rules_repo import RulesRepository
from .storage import Storage

WINDOW = 32  # BulkImage messages of one batch on the queue at once (each finished item queues the next)
REQUEUE_AFTER_S = 1800  # an item still pending this long after its message was queued is queued again
MAX_REQUEUES = 3  # ... this many times, then it ends failed ("gave_up: ...")
RESULTS_PREFIX = "batch-results/"  # images/batch-results/<request id>.json
# images/batch/<park slug>/<sha256>.<ext>: photos uploaded by `trapalert batch submit`
UPLOAD_PREFIX = "batch/"


def batch_scope(batch_id: int) -> str:
    return f"batch:{batch_id}"


@dataclass(frozen=True)
class NewItem:
    file: str
    blob_name: str
    image_id: int | None = None


class BatchRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- creating ------------------------------------------------------------------------------------------
    def create(
        self,
        *,
        park_id: int,
        camera_id: int | None,
        purpose: str,
        items: list[NewItem],
        source: dict[str, Any],
        alert: bool = False,
        created_by: str | None = None,
        window: int = WINDOW,
    ) -> dict[str, Any]:
        """The batch, its items and the BulkImage of its first ``window`` items, in one transaction."""
        request_id = uuid.uuid4()
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO batches (request_id, park_id, camera_id, purpose, alert, source, total, "
                "created_by, correlation_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (
                    str(request_id),
                    park_id,
                    camera_id,
                    purpose,
                    alert,
                    Json(source),
                    len(items),
                    created_by,
                    str(uuid.uuid4()),
                ),
            )
            batch = dict(cur.fetchone())
            if items:
                execute_values(
                    cur,
                    "INSERT INTO batch_items (batch_id, file, blob_name, image_id) VALUES %s "
                    "ON CONFLICT (batch_id, file) DO NOTHING",
                    [(batch["id"], i.file, i.blob_name, i.image_id) for i in items],
                    page_size=1000,
                )
                cur.execute("SELECT count(*) AS n FROM batch_items WHERE batch_id = %s", (batch["id"],))
                total = int(cur.fetchone()["n"])
                cur.execute("UPDATE batches SET total = %s WHERE id = %s", (total, batch["id"]))
                batch["total"] = total
                self._queue_next(cur, batch, window)
            else:
                cur.execute(
                    "UPDATE batches SET state = 'done', finished_at = now() WHERE id = %s", (batch["id"],)
                )
                batch["state"] = "done"
        return batch

    @staticmethod
    def _queue_next(cur, batch: dict[str, Any], count: int) -> int:
        """Queue up to ``count`` items of ``batch`` not queued yet (outbox rows, in the caller's tx)."""
        if count <= 0 or batch["state"] != "running":
            return 0
        cur.execute(
            "SELECT i.id, i.blob_name, i.image_id FROM batch_items i WHERE i.batch_id = %s "
            "AND i.queued_at IS NULL ORDER BY i.id LIMIT %s FOR UPDATE SKIP LOCKED",
            (batch["id"], count),
        )
        rows = cur.fetchall()
        BatchRepository._enqueue(cur, batch, rows)
        if rows:
            cur.execute(
                "UPDATE batch_items SET queued_at = now() WHERE id = ANY(%s)", ([r["id"] for r in rows],)
            )
        return len(rows)

    @staticmethod
    def _enqueue(cur, batch: dict[str, Any], rows: list[dict[str, Any]], suffix: str = "") -> None:
        for row in rows:
            Outbox.add(
                cur,
                OutboxMessage(
                    names.BULK_IMAGE_QUEUE,
                    BulkImage(
                        correlation_id=batch["correlation_id"],
                        image_id=row["image_id"] or 0,
                        item_id=row["id"],
                        blob_name=row["blob_name"],
                        park_id=batch["park_id"],
                        camera_id=batch["camera_id"],
                        purpose=batch["purpose"],
                        batch_id=batch["id"],
                        alert=bool(batch["alert"]),
                    ),
                    key=f"bulk:{batch['purpose']}:{row['id']}{suffix}",
                    scope=batch_scope(batch["id"]),
                ),
            )

    def top_up(
        self, batch_id: int, window: int = WINDOW, stale_s: float = REQUEUE_AFTER_S
    ) -> tuple[int, dict[str, Any] | None]:
        """Keep a running batch moving (called by every status read): an item queued ``stale_s`` ago and still
        pending (its message was lost, or poisoned) is queued again, at most MAX_REQUEUES times, then ends
        ``failed`` with ``gave_up: ...``; then items are queued until ``window`` are in flight. Returns
        (messages queued, the batch when this call finished it)."""
        with self.db.transaction() as cur:
            batch = self._lock_batch(cur, batch_id)
            if batch is None or batch["state"] != "running":
                return 0, None
            cur.execute(
                "SELECT id, blob_name, image_id, requeued FROM batch_items WHERE batch_id = %s "
                "AND state = 'pending' "
                "AND queued_at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                (batch_id, stale_s, window),
            )
            stale = cur.fetchall()
            gave_up = [r["id"] for r in stale if r["requeued"] >= MAX_REQUEUES]
            if gave_up:
                cur.execute(
                    "UPDATE batch_items SET state = 'failed', failure = %s, scored_at = now(), "
                    "score_count = score_count + 1 WHERE id = ANY(%s)",
                    (
                        f"gave_up: not scored after {MAX_REQUEUES + 1} deliveries (see the poison queue)",
                        gave_up,
                    ),
                )
            again = [r for r in stale if r["requeued"] < MAX_REQUEUES]
            for row in again:
                self._enqueue(cur, batch, [row], suffix=f":r{row['requeued'] + 1}")
                cur.execute(
                    "UPDATE batch_items SET queued_at = now(), requeued = requeued + 1 WHERE id = %s",
                    (row["id"],),
                )
            cur.execute(
                "SELECT count(*) AS n FROM batch_items WHERE batch_id = %s AND state = 'pending' "
                "AND queued_at IS NOT NULL",
                (batch_id,),
            )
            in_flight = int(cur.fetchone()["n"])
            queued = len(again) + self._queue_next(cur, batch, window - in_flight)
            return queued, self._maybe_done(cur, batch) if gave_up else None

    # -- reading -------------------------------------------------------------------------------------------
    def get(self, ref: str | int) -> dict[str, Any] | None:
        """A batch by request id (uuid) or numeric id."""
        try:
            request_id = str(uuid.UUID(str(ref)))
        except ValueError:
            request_id = None
        if request_id is not None:
            return self.db.fetchone("SELECT * FROM batches WHERE request_id = %s", (request_id,))
        if str(ref).isdigit():
            return self.db.fetchone("SELECT * FROM batches WHERE id = %s", (int(ref),))
        return None

    def progress(self, batch_id: int) -> dict[str, int]:
        rows = self.db.fetchall(
            "SELECT state, count(*) AS n FROM batch_items WHERE batch_id = %s GROUP BY state", (batch_id,)
        )
        out = {"pending": 0, "scored": 0, "failed": 0, "cancelled": 0}
        out.update({r["state"]: int(r["n"]) for r in rows})
        return out

    def failures(self, batch_id: int, limit: int = 20) -> list[dict[str, Any]]:
        return self.db.fetchall(
            "SELECT file, failure FROM batch_items WHERE batch_id = %s AND state = 'failed' "
            "ORDER BY id LIMIT %s",
            (batch_id, limit),
        )

    def item(self, item_id: int) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT i.*, b.state AS batch_state, b.purpose, b.park_id FROM batch_items i "
            "JOIN batches b ON b.id = i.batch_id WHERE i.id = %s",
            (item_id,),
        )

    def items(self, batch_id: int) -> list[dict[str, Any]]:
        return self.db.fetchall(
            "SELECT id, file, state, failure, detections, night, model_name, model_version, scored_at, "
            "score_count, image_id, video FROM batch_items WHERE batch_id = %s ORDER BY id",
            (batch_id,),
        )

    def model_of(self, batch_id: int) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT model_name, model_version, max(scored_at) AS finished FROM batch_items "
            "WHERE batch_id = %s AND model_name IS NOT NULL GROUP BY model_name, model_version "
            "ORDER BY count(*) DESC LIMIT 1",
            (batch_id,),
        )

    # -- finishing one item (exactly once) -----------------------------------------------------------------
    def claim_hash(self, item_id: int, sha256: str) -> str | None:
        """Record the photo's hash; return the file of an earlier item of the batch with the same photo."""
        try:
            with self.db.transaction() as cur:
                cur.execute("UPDATE batch_items SET sha256 = %s WHERE id = %s", (sha256, item_id))
            return None
        except psycopg2.errors.UniqueViolation:
            row = self.db.fetchone(
                "SELECT o.file FROM batch_items o JOIN batch_items i ON i.batch_id = o.batch_id "
                "WHERE i.id = %s AND o.sha256 = %s",
                (item_id, sha256),
            )
            return row["file"] if row else "another item"

    def finish(
        self,
        item_id: int,
        *,
        failure: str | None = None,
        detections: list[dict] | None = None,
        night: bool | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
        state: str | None = None,
        video: dict[str, Any] | None = None,
    ) -> tuple[bool, dict[str, Any] | None]:
        """Write one item's outcome if it is still pending, queue the batch's next item, and mark the batch
        done when nothing is left. Returns (written, the batch when this call finished it). ``video``: a
        clip's own fields (frame_rate, frames_processed, ...; migration 0018)."""
        state = state or ("failed" if failure is not None else "scored")
        with self.db.transaction() as cur:
            cur.execute("SELECT batch_id FROM batch_items WHERE id = %s", (item_id,))
            row = cur.fetchone()
            if row is None:
                return False, None
            batch = self._lock_batch(cur, row["batch_id"])
            cur.execute(
                "UPDATE batch_items SET state = %s, failure = %s, detections = %s, night = %s, "
                "model_name = %s, model_version = %s, video = %s, scored_at = now(), "
                "score_count = score_count + 1 "
                "WHERE id = %s AND state = 'pending' RETURNING id",
                (
                    state,
                    failure,
                    Json(detections) if detections is not None else None,
                    night,
                    model_name,
                    model_version,
                    Json(video) if video is not None else None,
                    item_id,
                ),
            )
            if cur.fetchone() is None:
                return False, None
            self._queue_next(cur, batch, 1)
            return True, self._maybe_done(cur, batch)

    @staticmethod
    def _lock_batch(cur, batch_id: int) -> dict[str, Any] | None:
        cur.execute("SELECT * FROM batches WHERE id = %s FOR UPDATE", (batch_id,))
        row = cur.fetchone()
        return dict(row) if row else None

    @staticmethod
    def _maybe_done(cur, batch: dict[str, Any]) -> dict[str, Any] | None:
        if batch["state"] != "running":
            return None
        cur.execute(
            "UPDATE batches SET state = 'done', finished_at = now() WHERE id = %s AND state = 'running' "
            "AND NOT EXISTS (SELECT 1 FROM batch_items WHERE batch_id = %s AND state = 'pending') "
            "RETURNING *",
            (batch["id"], batch["id"]),
        )
        row = cur.fetchone()
        return dict(row) if row else None

    def cancel(self, batch_id: int) -> dict[str, Any] | None:
        """Stop a running batch: items not finished become ``cancelled``; what was done is kept."""
        with self.db.transaction() as cur:
            batch = self._lock_batch(cur, batch_id)
            if batch is None or batch["state"] != "running":
                return batch
            cur.execute(
                "UPDATE batch_items SET state = 'cancelled' WHERE batch_id = %s AND state = 'pending'",
                (batch_id,),
            )
            cur.execute(
                "UPDATE batches SET state = 'cancelled', finished_at = now() WHERE id = %s RETURNING *",
                (batch_id,),
            )
            return dict(cur.fetchone())

    def set_results_blob(self, batch_id: int, blob: str) -> None:
        self.db.execute("UPDATE batches SET results_blob = %s WHERE id = %s", (blob, batch_id))

    # -- parks, cameras and stored photos ------------------------------------------------------------------
    def park(self, ref: str | int) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT id, slug, name, timezone FROM parks WHERE slug = %s OR id::text = %s",
            (str(ref), str(ref)),
        )

    def camera(self, park_id: int, ref: str | int) -> dict[str, Any] | None:
        return self.db.fetchone(
            "SELECT id, name, park_id FROM cameras WHERE park_id = %s AND (name = %s OR id::text = %s)",
            (park_id, str(ref), str(ref)),
        )

    def stored_photos(
        self, park_id: int, since: datetime, until: datetime | None, camera_id: int | None
    ) -> list[dict[str, Any]]:
        """Scored photos of a park taken in [since, until) (re-scoring). Not clips: their kept frames are
        photos of their own (migration 0016) and are re-scored as such."""
        return self.db.fetchall(
            "SELECT id, blob_name, camera_id FROM images WHERE park_id = %(park)s AND status = 'scored' "
            "AND blob_name IS NOT NULL AND coalesce(content_type, '') NOT LIKE 'video/%%' "
            "AND coalesce(taken_at, created_at) >= %(since)s "
            "AND (%(until)s::timestamptz IS NULL OR coalesce(taken_at, created_at) < %(until)s) "
            "AND (%(camera)s::bigint IS NULL OR camera_id = %(camera)s) ORDER BY id",
            {"park": park_id, "since": since, "until": until, "camera": camera_id},
        )

    def rescore_rows(self, batch_id: int) -> list[dict[str, Any]]:
        """For each scored item of a re-scoring run: the stored photo (camera, time, night, event, alert), its
        original detections and the new ones."""
        return self.db.fetchall(
            """SELECT i.id AS item_id, i.detections AS new_detections, i.night AS new_night,
                      i.model_name AS new_model, i.model_version AS new_version,
                      im.id AS image_id, im.camera_id, c.name AS camera, im.event_id, im.alert_id,
                      coalesce(im.taken_at, im.created_at) AS taken_at, im.night,
                      coalesce(c.timezone, p.timezone, 'UTC') AS timezone,
                      im.model_name AS old_model, im.model_version AS old_version,
                      coalesce((SELECT json_agg(json_build_object(
                          'category', d.category, 'conf', d.conf,
                          'bbox', json_build_array(d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h),
                          'suppressed', d.suppression_id IS NOT NULL) ORDER BY d.id)
                        FROM detections d WHERE d.image_id = im.id), '[]'::json) AS old_detections
               FROM batch_items i JOIN images im ON im.id = i.image_id
               JOIN cameras c ON c.id = im.camera_id JOIN parks p ON p.id = im.park_id
               WHERE i.batch_id = %s AND i.state = 'scored' ORDER BY im.camera_id, taken_at""",
            (batch_id,),
        )

    def rule_layers(self, park_id: int, camera_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        with self.db.transaction() as cur:
            return RulesRepository.layers_in(cur, park_id, camera_id)

    # -- re-scoring alerts (`trapalert rescore --alert`, migration 0019) -----------------------------------
    def open_past_alerts(self, batch_id: int, alerts: list[PastAlert]) -> list[dict[str, Any]] | None:
        """In one transaction: one alert of kind ``rescore`` per missed event, each with its SendAlert
        (reason ``rescore``, key ``send-alert:<alert id>:v1``, scope ``batch:<id>``) in the outbox, as every
        alert is announced, and the run marked ``alerted_at``. An event one of whose photos has an alert by
        now, or that a re-scoring alert was opened for already (unique ``alerts.rescore_event``, whatever the
        run), gets none. None when the run's alerts were opened already; else the alerts opened now."""
        with self.db.transaction() as cur:
            batch = self._lock_batch(cur, batch_id)
            if batch is None or batch["alerted_at"] is not None:
                return None
            opened: list[dict[str, Any]] = []
            for a in alerts:
                cur.execute(
                    """INSERT INTO alerts (park_id, camera_id, kind, categories, max_conf, mean_conf,
                           image_count, best_image_id, started_at, last_image_at, version, title, details,
                           correlation_id, rescore_batch_id, rescore_event)
                       SELECT %(park)s, %(camera)s, 'rescore', %(categories)s, %(max)s, %(mean)s, %(count)s,
                              %(best)s, %(started)s, %(last)s, 1, %(title)s, %(details)s, %(cid)s, %(batch)s,
                              %(event)s
                       WHERE NOT EXISTS (SELECT 1 FROM images
                                         WHERE id = ANY(%(images)s) AND alert_id IS NOT NULL)
                       ON CONFLICT (rescore_event) WHERE rescore_event IS NOT NULL DO NOTHING
                       RETURNING id, version""",
                    {
                        "park": batch["park_id"],
                        "camera": a.camera_id,
                        "categories": a.categories,
                        "max": a.max_conf,
                        "mean": a.mean_conf,
                        "count": a.image_count,
                        "best": a.best_image_id,
                        "started": a.started_at,
                        "last": a.last_image_at,
                        "title": a.title,
                        "details": Json(a.details),
                        "cid": str(batch["correlation_id"]),
                        "batch": batch_id,
                        "event": a.event,
                        "images": list(a.image_ids),
                    },
                )
                row = cur.fetchone()
                if row is None:
                    continue
                message = SendAlert(
                    alert_id=row["id"],
                    version=row["version"],
                    reason="rescore",
                    correlation_id=batch["correlation_id"],
                )
                Outbox.add(
                    cur,
                    OutboxMessage(
                        names.SEND_ALERT_QUEUE,
                        message,
                        f"send-alert:{row['id']}:v{row['version']}",
                        batch_scope(batch_id),
                    ),
                )
                opened.append({"alert_id": row["id"], "camera_id": a.camera_id, "event": a.event})
            cur.execute("UPDATE batches SET alerted_at = now() WHERE id = %s", (batch_id,))
            return opened

    def past_alerts_of(self, batch_id: int) -> list[dict[str, Any]]:
        """The re-scoring alerts a run opened."""
        return self.db.fetchall(
            "SELECT a.id AS alert_id, c.name AS camera, a.rescore_event AS event, a.title FROM alerts a "
            "JOIN cameras c ON c.id = a.camera_id WHERE a.rescore_batch_id = %s ORDER BY a.id",
            (batch_id,),
        )


# -- blobs -------------------------------------------------------------------------------------------------
class BlobMissing(LookupError):
    """The blob a batch item names does not exist."""


def read_blob(storage: Storage, name: str) -> bytes:
    try:
        return storage.get_blob(names.IMAGES_CONTAINER, name)
    except ResourceNotFoundError:
        raise BlobMissing(name) from None


def list_blob_names(storage: Storage, prefix: str, limit: int) -> list[str]:
    """Names of the blobs of the images container under ``prefix`` (at most ``limit``)."""
    container = storage.blobs.get_container_client(names.IMAGES_CONTAINER)
    out: list[str] = []
    for name in container.list_blob_names(name_starts_with=prefix):
        if not name.startswith(RESULTS_PREFIX):
            out.append(name)
            if len(out) >= limit:
                break
    return out


def put_results(storage: Storage, request_id: str, body: bytes) -> str:
    """Write (or overwrite) a batch's results file; return its blob name."""
    name = f"{RESULTS_PREFIX}{request_id}.json"
    client = storage.blobs.get_blob_client(names.IMAGES_CONTAINER, name)
    from azure.storage.blob import ContentSettings

    settings = ContentSettings(content_type="application/json")
    client.upload_blob(body, overwrite=True, content_settings=settings)
    return name
