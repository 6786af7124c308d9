"""Poison monitors: record each message the host moved to <queue>-poison, with its last error."""

from __future__ import annotations

import logging

import azure.functions as func

from ..bootstrap import Services
from ..messages import InvalidMessage, QueueMessageModel, parse_message
from ..names import POISON_SUFFIX

log = logging.getLogger(__name__)


def record(poison_queue: str, msg: func.QueueMessage, svc: Services) -> int | None:
    """Record a poisoned message (idempotent per message id); return the record id."""
    source = poison_queue[: -len(POISON_SUFFIX)]
    body = msg.get_body().decode("utf-8", "replace")
    correlation_id = None
    try:
        correlation_id = str(parse_message(_AnyMessage, body).correlation_id)
    except InvalidMessage:
        pass
    # The host gives the poisoned copy a new id; the last error is found through the failures recorded
    # for the same body on the source queue.
    row = svc.db.fetchone(
        """
        WITH last_error AS (
            SELECT f.error FROM message_failures f
            WHERE f.queue = %(source)s AND (f.correlation_id = %(cid)s::uuid OR %(cid)s IS NULL)
            ORDER BY f.failed_at DESC LIMIT 1)
        INSERT INTO poison_records (queue, message_id, body, dequeue_count, inserted_at, last_error,
                                    correlation_id)
        VALUES (%(source)s, %(mid)s, %(body)s, %(dc)s, %(ins)s, (SELECT error FROM last_error), %(cid)s::uuid)
        ON CONFLICT (queue, message_id) DO NOTHING
        RETURNING id""",
        {"source": source, "mid": msg.id, "body": body, "dc": getattr(msg, "dequeue_count", None),
         "ins": getattr(msg, "insertion_time", None), "cid": correlation_id})
    log.error("poisoned message recorded: queue=%s message=%s", source, msg.id)
    return row["id"] if row else None


class _AnyMessage(QueueMessageModel):
    model_config = {"extra": "allow", "frozen": True}
