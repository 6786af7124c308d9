"""Poison monitors: record each message the host moved to <queue>-poison, with its last error, and tell ops.

One record per poisoned message (idempotent on the poisoned copy's message id: a monitor that dies after
the insert and runs again records nothing twice and notifies nobody twice). What is recorded: the source
queue, the poisoned message id, the original body (as the handler received it), the number of attempts
(the highest dequeue count among the recorded failures, else the poison copy's), when it was inserted and
recorded, the last error and the correlation id (from the body; the failures recorded by the middleware are
found through it). The monitor consumes the poison queue: the records are the source of truth for ops.

Notifying ops is best effort and rate limited (functions/ops/notify.py); it never fails the monitor.
The middleware chain (functions/middleware/) sets the correlation id around the monitor and counts each new
record (``trapalert.poison.messages``); the SQL is in functions/adapters/poison_repo.py.
"""

from __future__ import annotations

import logging

import azure.functions as func

from ..adapters.poison_repo import PoisonRepository
from ..bootstrap import Services
from ..names import POISON_SUFFIX
from ..ops.notify import notify_poisoned
from ..telemetry import correlation_id_of

log = logging.getLogger(__name__)


def source_queue(poison_queue: str) -> str:
    if not poison_queue.endswith(POISON_SUFFIX):
        raise ValueError(f"{poison_queue!r} is not a poison queue (no {POISON_SUFFIX} suffix)")
    return poison_queue[: -len(POISON_SUFFIX)]


def record(poison_queue: str, msg: func.QueueMessage, svc: Services) -> int | None:
    """Record a poisoned message (idempotent per message id) and notify ops; return the new record id
    (None when this message was already recorded)."""
    source = source_queue(poison_queue)
    body = msg.get_body().decode("utf-8", "replace")
    row = PoisonRepository(svc.db).record_poisoned(
        source,
        msg.id,
        body,
        getattr(msg, "dequeue_count", None),
        getattr(msg, "insertion_time", None),
        correlation_id_of(body),
    )
    if row is None:
        log.info("poisoned message %s of %s was already recorded", msg.id, source)
        return None
    log.error(
        "poisoned message recorded: queue=%s message=%s record=%s error=%s",
        source,
        msg.id,
        row["id"],
        row["last_error"],
        extra={"queue": source, "message_id": msg.id, "poison_record_id": row["id"]},
    )
    notify_poisoned(svc, row)
    return row["id"]
