"""Retries sized for real outages: the one place where a failed queue message is scheduled again.

Azure Functions has no retry policy for storage-queue triggers, and the host's own (visibilityTimeout x
maxDequeueCount, about half a minute) is shorter than a channel outage, a PostgreSQL failover or a throttle.
So, for queue functions, a failed attempt (already recorded by RecordFailures, inside this one):

* is tried again later: a copy of the message with ``attempt + 1`` goes to the same queue, visible after the
  delay that ``functions/domain/retry.py`` decides (the schedule ``RETRY_SCHEDULE_S``, never shorter than a
  remote's ``Retry-After``), through the outbox (``Outbox.send_later``: straight to the queue while the
  database is unreachable); the original message completes;
* or, past the horizon (``RETRY_HORIZON_<QUEUE>_S``, counted from the first attempt) or for a
  :class:`~functions.domain.retry.PermanentError`, its body goes to ``<queue>-poison`` at once, where the
  poison monitor records it for ops;
* if neither the outbox nor the queue takes it, the exception propagates and the host's own retries apply.

Poison monitors: a monitor that cannot record because the database or storage is down puts its message back
on its own poison queue, visible after ``POISON_MONITOR_RETRY_S``, instead of failing into
``<queue>-poison-poison``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .. import names
from ..adapters.outbox import OutboxMessage
from ..adapters.storage import StorageUnavailable
from ..db import DatabaseUnavailable
from ..domain.retry import PermanentError, decide_retry
from ..ops import metrics
from .chain import Call, Middleware

log = logging.getLogger(__name__)

POISON_MONITOR_RETRY_S = 30


class Retry(Middleware):
    def around(self, call: Call, proceed: Callable[[], Any]) -> Any:
        if call.trigger == "poison":
            return self._poison_monitor(call, proceed)
        if call.trigger != "queue" or call.message is None:
            return proceed()
        try:
            return proceed()
        except Exception as exc:
            try:
                self._schedule(call, exc)
            except Exception as sched_exc:  # noqa: BLE001 - neither outbox nor queue: the host retries
                log.error(
                    "could not schedule a retry of message %s on %s (%s): the host retries it",
                    call.input.id,
                    call.queue,
                    sched_exc,
                )
                raise exc from None
            return None

    def _schedule(self, call: Call, exc: Exception) -> None:
        settings = call.services.settings
        msg, raw = call.message, call.input
        assert msg is not None and call.queue is not None
        now = datetime.now(UTC)
        first = msg.first_attempt_at or getattr(raw, "insertion_time", None) or now
        failures = msg.attempt + 1
        horizon = (
            settings.retry_horizon_send_alert_s
            if call.queue == names.SEND_ALERT_QUEUE
            else settings.retry_horizon_process_image_s
        )
        decision = decide_retry(
            failures=failures,
            first_attempt_at=first,
            now=now,
            horizon_s=horizon,
            schedule=settings.retry_schedule,
            permanent=isinstance(exc, PermanentError),
            retry_after_s=getattr(exc, "retry_after", None),
            retry_after_max_s=settings.retry_after_max_s,
        )
        outbox = call.services.outbox
        if decision.action == "retry":
            copy = msg.model_copy(update={"attempt": failures, "first_attempt_at": first})
            how = outbox.send_later(
                OutboxMessage(
                    call.queue,
                    copy,
                    key=f"retry:{call.queue}:{raw.id}",
                    scope=f"retry:{call.queue}",
                    delay_s=decision.delay_s,
                )
            )
            metrics.retry(call.queue, "retry", decision.delay_s)
            call.outcome = "retry"
            log.warning(
                "message %s on %s failed (attempt %d): %s; %s (%s)",
                raw.id,
                call.queue,
                failures,
                exc,
                decision.reason,
                how,
                extra={"queue": call.queue, "attempt": failures, "delay_s": decision.delay_s},
            )
            return
        poison = names.poison_queue(call.queue)
        outbox.send_later(
            OutboxMessage(
                poison,
                first_sent_body(raw.get_body()),
                key=f"poison:{call.queue}:{raw.id}",
                scope=f"poison-move:{call.queue}",
            )
        )
        metrics.retry(call.queue, "poison", 0.0)
        call.outcome = "error"
        log.error(
            "message %s on %s moved to %s: %s (%s)",
            raw.id,
            call.queue,
            poison,
            decision.reason,
            exc,
            extra={"queue": call.queue, "attempt": failures},
        )

    def _poison_monitor(self, call: Call, proceed: Callable[[], Any]) -> Any:
        try:
            return proceed()
        except (DatabaseUnavailable, StorageUnavailable) as exc:
            poison = names.poison_queue(call.queue or "")
            body = call.input.get_body().decode("utf-8", "replace")
            call.services.storage.enqueue(poison, body, visibility_timeout=POISON_MONITOR_RETRY_S)
            call.outcome = "retry"
            log.warning(
                "poison monitor of %s cannot record message %s (%s): put back, visible again in %d s",
                call.queue,
                call.input.id,
                exc,
                POISON_MONITOR_RETRY_S,
            )
            return None


def first_sent_body(body: bytes) -> str:
    """The message as it was first sent: without the retry bookkeeping (``attempt``, ``first_attempt_at``) and
    the sender's ``traceparent``, so that ops see the original and a replay starts a fresh retry window."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text
    bookkeeping = {"attempt", "first_attempt_at", "traceparent"}
    if not isinstance(data, dict) or not (bookkeeping & data.keys()):
        return text
    for key in bookkeeping:
        data.pop(key, None)
    return json.dumps(data)
