"""The one mechanism around every queue handler (as dramatiq's middleware): parse the message into its
model, set the correlation id, run the handler, and on failure record the error for ops and re-raise so that
the Functions host retries and finally moves the message to <queue>-poison.

A message that can never be processed (not JSON, wrong schema version, unknown fields) is not retried five
times: it is recorded at once as an ``invalid`` poison record with its reason, visible to ops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import azure.functions as func

from .bootstrap import Services, services
from .ops import metrics
from .messages import InvalidMessage, QueueMessageModel, parse_message
from .telemetry import correlation

log = logging.getLogger(__name__)
M = TypeVar("M", bound=QueueMessageModel)


def run_queue_handler(queue: str, msg: func.QueueMessage, model: type[M],
                      handler: Callable[[M, Services], None]) -> None:
    svc = services()
    body = msg.get_body()
    try:
        parsed = parse_message(model, body)
    except InvalidMessage as exc:
        log.error("invalid message %s on %s: %s", msg.id, queue, exc)
        record_invalid(svc, queue, msg, str(exc))
        return
    with correlation(str(parsed.correlation_id)):
        try:
            handler(parsed, svc)
        except Exception as exc:
            log.warning("handler for %s failed on message %s (attempt %s): %s", queue, msg.id,
                        getattr(msg, "dequeue_count", None), exc)
            record_failure(svc, queue, msg, exc, str(parsed.correlation_id))
            raise


def record_failure(svc: Services, queue: str, msg: func.QueueMessage, exc: BaseException,
                   correlation_id: str | None) -> None:
    """Best effort: the database may be the thing that is down."""
    metrics.handler_failed(queue)
    try:
        svc.db.execute(
            "INSERT INTO message_failures (queue, message_id, dequeue_count, error, correlation_id) "
            "VALUES (%s, %s, %s, %s, %s)",
            (queue, msg.id, getattr(msg, "dequeue_count", None), f"{type(exc).__name__}: {exc}"[:4000],
             correlation_id))
    except Exception as db_exc:  # noqa: BLE001 - the original error is what matters
        log.warning("could not record the failure of message %s: %s", msg.id, db_exc)


def record_invalid(svc: Services, queue: str, msg: func.QueueMessage, reason: str) -> None:
    metrics.poison_recorded(queue, "invalid")
    body = msg.get_body().decode("utf-8", "replace").replace("\x00", "")  # PostgreSQL text cannot hold NUL
    reason = reason.replace("\x00", "")
    svc.db.execute(
        "INSERT INTO poison_records (queue, message_id, body, dequeue_count, inserted_at, last_error, status) "
        "VALUES (%s, %s, %s, %s, %s, %s, 'invalid') ON CONFLICT (queue, message_id) DO NOTHING",
        (queue, msg.id, body, getattr(msg, "dequeue_count", None), getattr(msg, "insertion_time", None),
         f"invalid message: {reason}"))
