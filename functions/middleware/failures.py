"""What a failure means, per kind of trigger (the one place where it is decided):

- queue functions: the failed attempt is recorded in ``message_failures`` (best effort: the database may be
  what is down) with its correlation id, and the exception is re-raised: the host retries the message and
  after maxDequeueCount moves it to <queue>-poison, whose monitor finds these failures by correlation id;
- HTTP functions: an exception the handler did not answer itself is logged with the correlation id and
  answered 500 ``{"error": "internal error", "correlation_id": ...}`` (the caller, e.g. SendGrid, retries);
  answers the handler chose (401, 403, 404, 503, ...) pass unchanged;
- poison monitors and timers: logged and re-raised (the host retries the monitor's message; a timer run is
  reported failed and the next run starts afresh).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from ..adapters.poison_repo import PoisonRepository
from .chain import Call, Middleware

log = logging.getLogger(__name__)


class RecordFailures(Middleware):
    def around(self, call: Call, proceed: Callable[[], Any]) -> Any:
        try:
            return proceed()
        except Exception as exc:
            call.outcome = "error"
            if call.trigger == "http":
                log.exception("%s failed unexpectedly", call.function)
                return func.HttpResponse(
                    json.dumps({"error": "internal error", "correlation_id": call.correlation_id}),
                    status_code=500,
                    mimetype="application/json",
                )
            if call.trigger == "queue":
                msg = call.input
                log.warning(
                    "handler for %s failed on message %s (attempt %s): %s",
                    call.queue,
                    msg.id,
                    getattr(msg, "dequeue_count", None),
                    exc,
                )
                record_failure(call, exc)
            else:
                log.exception("%s (%s) failed", call.function, call.trigger)
            raise


def record_failure(call: Call, exc: BaseException) -> None:
    """Best effort: the database may be the thing that is down."""
    msg = call.input
    try:
        PoisonRepository(call.services.db).record_failure(
            call.queue,
            msg.id,
            getattr(msg, "dequeue_count", None),
            f"{type(exc).__name__}: {exc}",
            call.correlation_id,
        )
    except Exception as db_exc:  # noqa: BLE001 - the original error is what matters
        log.warning("could not record the failure of message %s: %s", msg.id, db_exc)
