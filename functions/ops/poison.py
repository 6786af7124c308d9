"""Poison records: list, show, replay and purge (shared by `trapalert poison` and the admin HTTP API).

The database is the source of truth: the poison monitors consume <queue>-poison and write one
``poison_records`` row per poisoned message (functions/handlers/poison.py), so an operator never has to
read a poison queue. Statuses: poisoned (waiting for ops), invalid (the message itself is bad), replayed
(put back on its source queue; ``replay_message_id`` is the new message id), purged (given up on). The SQL is
in functions/adapters/poison_repo.py.

Replay goes through the one transactional outbox (functions/adapters/outbox.py): in one transaction the
record is locked, marked ``replayed`` and its original body written to the outbox (key ``replay:<id>``,
scope ``poison:<id>``); after the commit the scope is flushed onto the source queue. Only a record still
``poisoned`` (or ``invalid``, when asked for by id) is marked, and the outbox key is unique, so a replay run
twice, or from two places at once, never enqueues twice. A flush that failed (the queue unreachable) leaves
the message in the outbox and reports the record as failed; the next replay of that record (or
``replay_all``) flushes it. The worst case, a crash between the enqueue and its mark, sends the message twice:
at least once, never lost; the handlers are idempotent.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from ..adapters.outbox import Outbox
from ..adapters.poison_repo import REPLAYABLE, STATUSES, SUMMARY_COLUMNS, PoisonRepository, replay_scope
from ..adapters.storage import Storage
from ..db import Database
from ..names import poison_queue

log = logging.getLogger(__name__)

__all__ = ["REPLAYABLE", "STATUSES", "SUMMARY_COLUMNS", "NotFound", "PoisonError", "ReplayResult"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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
    return PoisonRepository(db).list(queue=queue, status=status, limit=max(1, min(int(limit), 1000)))


def get_record(db: Database, record_id: int) -> dict[str, Any]:
    """The record with its body and every recorded failure of the same message (by correlation id)."""
    repo = PoisonRepository(db)
    row = repo.get(int(record_id))
    if row is None:
        raise NotFound(f"no poison record {record_id}")
    row["failures"] = repo.failures_of(row["correlation_id"]) if row.get("correlation_id") else []
    return row


def counts(db: Database) -> dict[str, dict[str, int]]:
    """{queue: {status: count}} over every record."""
    return PoisonRepository(db).counts()


@dataclass
class ReplayResult:
    replayed: list[dict[str, Any]] = field(default_factory=list)  # {id, queue, replay_message_id}
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {id, status, reason}
    failed: list[dict[str, Any]] = field(default_factory=list)  # {id, error}

    def as_dict(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "skipped": self.skipped, "failed": self.failed}


def _flush(repo: PoisonRepository, outbox: Outbox, storage: Storage, row: dict[str, Any]) -> int:
    """Send the record's replay from the outbox (a deleted queue is created again: the app declares it)."""
    scope = replay_scope(row["id"])
    try:
        return outbox.flush(scope)
    except ResourceNotFoundError:
        storage.queue(row["queue"]).create_queue()
        return outbox.flush(scope)


def _send(
    repo: PoisonRepository, outbox: Outbox, storage: Storage, row: dict[str, Any], result: ReplayResult
) -> bool:
    """Flush the record's replay and note what happened in ``result``; True when it is (now) sent."""
    try:
        sent = _flush(repo, outbox, storage, row)
    except Exception as exc:  # noqa: BLE001 - the message waits in the outbox; the next replay sends it
        log.warning("replay of poison record %s not sent yet: %s", row["id"], exc)
        error = f"{type(exc).__name__}: {exc} (replay again to send it)"
        result.failed.append({"id": row["id"], "error": error})
        return False
    new_id = repo.note_replay_sent(row["id"])
    if not (sent or row.get("marked")):
        return False
    log.info(
        "poison record %s replayed onto %s as message %s",
        row["id"],
        row["queue"],
        new_id,
        extra={"correlation_id": str(row["correlation_id"]) if row.get("correlation_id") else None},
    )
    result.replayed.append({"id": row["id"], "queue": row["queue"], "replay_message_id": new_id})
    return True


def replay(db: Database, storage: Storage, record_id: int) -> ReplayResult:
    """Put the original message of one record back on its source queue (poisoned or invalid records)."""
    repo, outbox, result = PoisonRepository(db), Outbox(db, storage), ReplayResult()
    row = repo.mark_replayed(int(record_id))
    if row is None:
        raise NotFound(f"no poison record {record_id}")
    if not _send(repo, outbox, storage, row, result) and not result.failed:
        status = row["status"]
        result.skipped.append({"id": row["id"], "status": status, "reason": f"already {status}"})
    return result


def replay_all(
    db: Database, storage: Storage, *, queue: str | None = None, limit: int = 1000
) -> ReplayResult:
    """Replay every ``poisoned`` record (of ``queue``), oldest first, after sending the replays whose flush
    failed earlier. ``invalid`` records are left alone (they would be invalid again): replay them one by one
    by id after a fix. Records another replayer is working on are skipped (SKIP LOCKED), so two replays at
    once never send a message twice."""
    repo, outbox, result = PoisonRepository(db), Outbox(db, storage), ReplayResult()
    for row in repo.unsent_replays(queue)[:limit]:
        _send(repo, outbox, storage, {**row, "marked": True}, result)
    while len(result.replayed) + len(result.failed) < limit:
        row = repo.mark_next_replayed(queue=queue, skip=[f["id"] for f in result.failed])
        if row is None:
            break
        _send(repo, outbox, storage, row, result)
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
    rows = PoisonRepository(db).purge(older_than, queue)
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
