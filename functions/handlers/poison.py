"""Poison monitors: record each message the host moved to <queue>-poison, with its last error, and tell ops.

One record per poisoned message (idempotent on the poisoned copy's message id: a monitor that dies after
the insert and runs again records nothing twice and notifies nobody twice). What is recorded: the source
queue, the poisoned message id, the original body (as the handler received it), the number of attempts
(the highest dequeue count among the recorded failures, else the poison copy's), when it was inserted and
recorded, the last error and the correlation id (from the body; the failures recorded by the middleware are
found through it). The monitor consumes the poison queue: the records are the source of truth for ops.

Notifying ops is best effort and rate limited (functions/ops/notify.py); it never fails the monitor.
"""

from __future__ import annotations

import logging

import azure.functions as func

from ..bootstrap import Services
from ..messages import InvalidMessage, QueueMessageModel, parse_message
from ..names import POISON_SUFFIX
from ..ops import metrics
from ..ops.notify import notify_poisoned
from ..telemetry import correlation

log = logging.getLogger(__name__)


def source_queue(poison_queue: str) -> str:
    if not poison_queue.endswith(POISON_SUFFIX):
        raise ValueError(f"{poison_queue!r} is not a poison queue (no {POISON_SUFFIX} suffix)")
    return poison_queue[: -len(POISON_SUFFIX)]


def record(poison_queue: str, msg: func.QueueMessage, svc: Services) -> int | None:
    """Record a poisoned message (idempotent per message id) and notify ops; return the new record id
    (None when this message was already recorded)."""
    source = source_queue(poison_queue)
    body = msg.get_body().decode("utf-8", "replace").replace("\x00", "")  # PostgreSQL text cannot hold NUL
    correlation_id = None
    try:
        correlation_id = str(parse_message(_AnyMessage, body).correlation_id)
    except InvalidMessage:
        pass
    with correlation(correlation_id, span_name="trapalert.poison.record"):
        row = svc.db.fetchone(
            """
            WITH failures AS (
                SELECT f.error, f.dequeue_count, f.failed_at FROM message_failures f
                WHERE %(cid)s::uuid IS NOT NULL AND f.correlation_id = %(cid)s::uuid AND f.queue = %(source)s
                  AND f.failed_at > now() - interval '7 days'),
            last_error AS (SELECT error FROM failures ORDER BY failed_at DESC LIMIT 1)
            INSERT INTO poison_records (queue, message_id, body, dequeue_count, inserted_at, last_error,
                                        correlation_id)
            VALUES (%(source)s, %(mid)s, %(body)s,
                    coalesce((SELECT max(dequeue_count) FROM failures), %(dc)s), %(ins)s,
                    coalesce((SELECT error FROM last_error),
                             CASE WHEN %(cid)s::uuid IS NULL
                                  THEN 'no failure recorded: the message did not parse; see the host logs'
                                  ELSE 'no failure recorded for this correlation id; see the host logs' END),
                    %(cid)s::uuid)
            ON CONFLICT (queue, message_id) DO NOTHING
            RETURNING *""",
            {
                "source": source,
                "mid": msg.id,
                "body": body,
                "dc": getattr(msg, "dequeue_count", None),
                "ins": getattr(msg, "insertion_time", None),
                "cid": correlation_id,
            },
        )
        if row is None:
            log.info("poisoned message %s of %s was already recorded", msg.id, source)
            return None
        metrics.poison_recorded(source)
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


class _AnyMessage(QueueMessageModel):
    model_config = {"extra": "allow", "frozen": True}
