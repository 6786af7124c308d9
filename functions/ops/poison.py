"""Poison records: list, show, replay and purge (shared by `trapalert poison` and the admin HTTP API).

The database is the source of truth: the poison monitors consume <queue>-poison and write one
``poison_records`` row per poisoned message (functions/handlers/poison.py), so an operator never has to
read a poison queue. Statuses: poisoned (waiting for ops), invalid (the message itself is bad), replayed
(put back on its source queue; ``replay_message_id`` is the new message id), purged (given up on).

Replay is safe to run twice and from two places at once: the record is locked (SELECT ... FOR UPDATE) while
its message is enqueued, and only a record still ``poisoned`` (or ``invalid``, when asked for by id) is
replayed. If the process dies after the enqueue and before the commit, the record stays ``poisoned`` and a
second replay sends the message again: at least once, never lost; the handlers are idempotent.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from ..adapters.storage import Storage
from ..db import Database
from ..names import poison_queue

log = logging.getLogger(__name__)

STATUSES = ("poisoned", "invalid", "replayed", "purged")
REPLAYABLE = ("poisoned", "invalid")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

SUMMARY_COLUMNS = (
    "id",
    "queue",
    "message_id",
    "status",
    "dequeue_count",
    "inserted_at",
    "recorded_at",
    "last_error",
    "correlation_id",
    "replayed_at",
    "replay_message_id",
)


class PoisonError(ValueError):
    """An operation that cannot be done as asked (unknown record, bad argument); the message says why."""


class NotFound(PoisonError):
    """No poison record with that id."""


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '90m', '45s', '2w' -> timedelta; PoisonError otherwise."""
    m = _DURATION.match(str(text or ""))
    if not m:
        raise PoisonError(f"invalid duration {text!r}: use a number and a unit s|m|h|d|w, e.g. 30d")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise PoisonError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")


def list_records(
    db: Database, *, queue: str | None = None, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first, without bodies."""
    _check_status(status)
    limit = max(1, min(int(limit), 1000))
    return db.fetchall(
        f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM poison_records "
        "WHERE (%(q)s::text IS NULL OR queue = %(q)s) AND (%(s)s::text IS NULL OR status = %(s)s) "
        "ORDER BY recorded_at DESC, id DESC LIMIT %(n)s",
        {"q": queue, "s": status, "n": limit},
    )


def get_record(db: Database, record_id: int) -> dict[str, Any]:
    """The record with its body and every recorded failure of the same message (by correlation id)."""
    row = db.fetchone("SELECT * FROM poison_records WHERE id = %s", (int(record_id),))
    if row is None:
        raise NotFound(f"no poison record {record_id}")
    row["failures"] = []
    if row.get("correlation_id"):
        row["failures"] = db.fetchall(
            "SELECT queue, message_id, dequeue_count, error, failed_at FROM message_failures "
            "WHERE correlation_id = %s ORDER BY failed_at DESC LIMIT 50",
            (row["correlation_id"],),
        )
    return row


def counts(db: Database) -> dict[str, dict[str, int]]:
    """{queue: {status: count}} over every record."""
    out: dict[str, dict[str, int]] = {}
    for r in db.fetchall("SELECT queue, status, count(*) AS n FROM poison_records GROUP BY queue, status"):
        out.setdefault(r["queue"], {})[r["status"]] = int(r["n"])
    return out


@dataclass
class ReplayResult:
    replayed: list[dict[str, Any]] = field(default_factory=list)  # {id, queue, replay_message_id}
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {id, status, reason}
    failed: list[dict[str, Any]] = field(default_factory=list)  # {id, error}

    def as_dict(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "skipped": self.skipped, "failed": self.failed}


def _replay_locked(cur, storage: Storage, row: dict[str, Any]) -> str:
    """Enqueue the original body on its source queue and mark the (locked) record replayed."""
    try:
        new_id = storage.enqueue(row["queue"], row["body"])
    except ResourceNotFoundError:  # the queue was deleted: the app declares it, so it comes back
        storage.queue(row["queue"]).create_queue()
        new_id = storage.enqueue(row["queue"], row["body"])
    cur.execute(
        "UPDATE poison_records SET status = 'replayed', replayed_at = now(), replay_message_id = %s "
        "WHERE id = %s",
        (new_id, row["id"]),
    )
    log.info(
        "poison record %s replayed onto %s as message %s",
        row["id"],
        row["queue"],
        new_id,
        extra={"correlation_id": str(row["correlation_id"]) if row.get("correlation_id") else None},
    )
    return new_id


def replay(db: Database, storage: Storage, record_id: int) -> ReplayResult:
    """Put the original message of one record back on its source queue (poisoned or invalid records)."""
    result = ReplayResult()
    with db.transaction() as cur:
        cur.execute(
            "SELECT id, queue, body, status, correlation_id FROM poison_records WHERE id = %s FOR UPDATE",
            (int(record_id),),
        )
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no poison record {record_id}")
        row = dict(row)
        if row["status"] not in REPLAYABLE:
            result.skipped.append(
                {"id": row["id"], "status": row["status"], "reason": f"already {row['status']}"}
            )
            return result
        new_id = _replay_locked(cur, storage, row)
        result.replayed.append({"id": row["id"], "queue": row["queue"], "replay_message_id": new_id})
    return result


def replay_all(
    db: Database, storage: Storage, *, queue: str | None = None, limit: int = 1000
) -> ReplayResult:
    """Replay every ``poisoned`` record (of ``queue``), oldest first. ``invalid`` records are left alone
    (they would be invalid again): replay them one by one by id after a fix. Records another replayer is
    working on are skipped (SKIP LOCKED), so two replays at once never send a message twice."""
    result = ReplayResult()
    while len(result.replayed) + len(result.failed) < limit:
        with db.transaction() as cur:
            cur.execute(
                "SELECT id, queue, body, status, correlation_id FROM poison_records "
                "WHERE status = 'poisoned' AND (%(q)s::text IS NULL OR queue = %(q)s) "
                "AND NOT (id = ANY(%(done)s)) "
                "ORDER BY recorded_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                {"q": queue, "done": [f["id"] for f in result.failed] or [0]},
            )
            row = cur.fetchone()
            if row is None:
                break
            row = dict(row)
            try:
                new_id = _replay_locked(cur, storage, row)
            except Exception as exc:  # noqa: BLE001 - report it, keep the record poisoned, go on
                log.warning("replay of poison record %s failed: %s", row["id"], exc)
                result.failed.append({"id": row["id"], "error": f"{type(exc).__name__}: {exc}"})
                continue
            result.replayed.append({"id": row["id"], "queue": row["queue"], "replay_message_id": new_id})
    return result


def purge(
    db: Database, storage: Storage | None, older_than: timedelta | str, *, queue: str | None = None
) -> dict[str, Any]:
    """Mark records recorded before now - ``older_than`` as purged (poisoned and invalid ones; replayed
    records stay as history) and remove their messages from the poison queue if still there.

    The poison monitors normally consume <queue>-poison at once, so the queue is empty; a message is still
    there only when its monitor failed. The poison queue is peeked (no dequeue) and only messages whose id
    matches a purged record are received and deleted."""
    if isinstance(older_than, str):
        older_than = parse_duration(older_than)
    rows = db.fetchall(
        "UPDATE poison_records SET status = 'purged' "
        "WHERE status IN ('poisoned', 'invalid') AND recorded_at < now() - %(age)s "
        "AND (%(q)s::text IS NULL OR queue = %(q)s) RETURNING id, queue, message_id",
        {"age": older_than, "q": queue},
    )
    removed = 0
    if storage is not None and rows:
        by_queue: dict[str, set[str]] = {}
        for r in rows:
            by_queue.setdefault(r["queue"], set()).add(r["message_id"])
        for source, ids in by_queue.items():
            removed += _remove_from_poison_queue(storage, poison_queue(source), ids)
    log.info(
        "purged %d poison records older than %s (%d messages removed from poison queues)",
        len(rows),
        older_than,
        removed,
    )
    return {"purged": len(rows), "ids": sorted(r["id"] for r in rows), "removed_from_queue": removed}


def _remove_from_poison_queue(storage: Storage, queue_name: str, ids: set[str]) -> int:
    client = storage.queue(queue_name, encoded=False)
    try:
        peeked = {m.id for m in client.peek_messages(max_messages=32)}
    except ResourceNotFoundError:
        return 0
    except AzureError as exc:
        log.warning("could not peek %s: %s", queue_name, exc)
        return 0
    if not peeked & ids:
        return 0
    removed = 0
    try:
        for msg in client.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30):
            if msg.id in ids:
                client.delete_message(msg.id, msg.pop_receipt)
                removed += 1
            else:  # not ours: visible again at once for its monitor
                client.update_message(msg.id, msg.pop_receipt, visibility_timeout=0)
    except AzureError as exc:
        log.warning("could not remove purged messages from %s: %s", queue_name, exc)
    return removed
