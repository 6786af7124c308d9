"""The one transactional outbox: every queue message the pipeline produces goes through here.

A producer writes its message with :meth:`Outbox.add` *inside the transaction of the state change it
announces* (an image stored, an alert opened or updated, a health condition raised or cleared, a poisoned
message replayed), so the change and its message commit together or not at all. After the commit it calls
:meth:`Outbox.flush` for the message's scope: each pending row is locked (``FOR UPDATE SKIP LOCKED``, so two
flushers never both send it), put on its queue, and marked sent in the same transaction. A flush that fails
(the queue unreachable) leaves the row pending, records the error, and raises: the producer's own retry (a
SendGrid retry, a queue message retry, the next timer run) flushes its scope again, and :meth:`flush` with no
scope (a sweep) sends whatever any producer left behind.

The worst case is a crash after the queue accepted a message and before the mark committed: the message is
sent again, which every handler tolerates (delivery is at least once everywhere).

Keys say what a message is about and are unique: ``process-image:<image id>``,
``send-alert:<alert id>:v<version>``, ``replay:<poison record id>``. Scopes say who flushes on the producer's
path: ``email:<id>``, ``camera:<id>``, ``camera-health``, ``poison:<record id>``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import Json
from pydantic import BaseModel

from ..db import Database, DatabaseUnavailable
from ..telemetry import correlation_id_of, current_traceparent
from .storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxMessage:
    """One message to put on ``queue`` once the transaction that wrote it commits."""

    queue: str
    message: BaseModel | dict[str, Any] | str  # a str (a replayed body, as received) is sent verbatim
    key: str
    scope: str
    delay_s: float = 0.0  # visible on the queue this long after it is put there (a retry's backoff)


class Outbox:
    def __init__(self, db: Database, storage: Storage):
        self.db = db
        self.storage = storage

    # -- producers (inside their own transaction) --------------------------------------------------
    @staticmethod
    def add(cur, item: OutboxMessage) -> bool:
        """Write ``item`` in the caller's transaction; False when a message with its key exists already."""
        body = item.message.model_dump(mode="json") if isinstance(item.message, BaseModel) else item.message
        if isinstance(body, dict) and "correlation_id" in body and not body.get("traceparent"):
            body = body | {"traceparent": current_traceparent()}
        cur.execute(
            "INSERT INTO outbox (queue, body, key, scope, correlation_id, delay_s, subject) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING RETURNING id",
            (
                item.queue,
                Json(body),
                item.key,
                item.scope,
                correlation_id_of(body),
                math.ceil(item.delay_s),
                _subject(body),
            ),
        )
        return cur.fetchone() is not None

    # -- the flusher -------------------------------------------------------------------------------
    def flush(self, scope: str | None = None, *, older_than_s: float = 0.0, limit: int = 1000) -> int:
        """Put every pending message of ``scope`` (every scope when None, created at least ``older_than_s``
        ago) on its queue, oldest first; return how many this call sent. A message that cannot be put raises
        after its error is recorded; the ones sent before it stay sent."""
        rows = self.db.fetchall(
            "SELECT id FROM outbox WHERE sent_at IS NULL AND (%(scope)s::text IS NULL OR scope = %(scope)s) "
            "AND created_at <= now() - make_interval(secs => %(age)s) ORDER BY id LIMIT %(limit)s",
            {"scope": scope, "age": older_than_s, "limit": limit},
        )
        return sum(1 for r in rows if self._send(r["id"]))

    def _send(self, outbox_id: int) -> bool:
        try:
            with self.db.transaction() as cur:
                cur.execute(
                    "SELECT id, queue, body, key, delay_s FROM outbox WHERE id = %s AND sent_at IS NULL "
                    "FOR UPDATE SKIP LOCKED",
                    (outbox_id,),
                )
                row = cur.fetchone()
                if row is None:  # sent already, or being sent by another flusher right now
                    return False
                message_id = self.storage.enqueue(
                    row["queue"], _json_text(row["body"]), visibility_timeout=row["delay_s"] or None
                )
                cur.execute(
                    "UPDATE outbox SET sent_at = now(), message_id = %s, attempts = attempts + 1, "
                    "last_error = NULL WHERE id = %s",
                    (message_id, outbox_id),
                )
        except Exception as exc:
            self._record_error(outbox_id, exc)
            raise
        log.debug("outbox %s (%s) sent to %s", outbox_id, row["key"], row["queue"])
        return True

    def _record_error(self, outbox_id: int, exc: BaseException) -> None:
        try:
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = %s "
                "WHERE id = %s AND sent_at IS NULL",
                (f"{type(exc).__name__}: {exc}"[:2000], outbox_id),
            )
        except Exception as db_exc:  # noqa: BLE001 - the original error is the one to raise
            log.warning("could not record the flush error of outbox %s: %s", outbox_id, db_exc)

    def send_later(self, item: OutboxMessage) -> str:
        """Put one message on its queue, visible after ``item.delay_s``: written to the outbox and flushed
        (``"outbox"``), or, when the database is unreachable (a failover), straight onto the queue
        (``"direct"``: the message carries its own state and every handler is idempotent). Once the outbox
        row is committed the message is safe even if this flush fails (a later flush or the sweeper sends
        it). Raises only when neither the database nor the queue took it."""
        try:
            with self.db.transaction() as cur:
                self.add(cur, item)
        except DatabaseUnavailable as exc:
            log.warning("outbox unreachable (%s): %s goes straight to %s", exc, item.key, item.queue)
            body = item.message.model_dump_json() if isinstance(item.message, BaseModel) else item.message
            self.storage.enqueue(
                item.queue,
                body if isinstance(body, str) else _json_text(body),
                visibility_timeout=math.ceil(item.delay_s) or None,
            )
            return "direct"
        try:
            self.flush(item.scope)
        except Exception as exc:  # noqa: BLE001 - committed: a later flush or the sweeper sends it
            log.warning("outbox %s committed, flush failed (the sweeper sends it): %s", item.key, exc)
        return "outbox"

    # -- reading (ops, tests) ----------------------------------------------------------------------
    def pending(self, scope: str | None = None) -> list[dict[str, Any]]:
        return self.db.fetchall(
            "SELECT id, queue, key, scope, created_at, attempts, last_error FROM outbox "
            "WHERE sent_at IS NULL "
            "AND (%(scope)s::text IS NULL OR scope = %(scope)s) ORDER BY id",
            {"scope": scope},
        )

    def sent_count(self, scope: str) -> int:
        row = self.db.fetchone(
            "SELECT count(*) AS n FROM outbox WHERE scope = %s AND sent_at IS NOT NULL", (scope,)
        )
        return int(row["n"]) if row else 0


def _json_text(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))


def _subject(body: Any) -> str | None:
    """What a message is about (``image:<id>``, ``alert:<id>``), for the sweeper."""
    if isinstance(body, dict):
        if "image_id" in body:
            return f"image:{body['image_id']}"
        if "alert_id" in body:
            return f"alert:{body['alert_id']}"
    return None
