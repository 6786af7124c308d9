"""Reading the message: queue functions get their body parsed into the function's model; poison monitors
get the correlation id their body carries (best effort).

A message that can never be processed (not JSON, wrong schema version, unknown fields) is not retried five
times: it is recorded at once as an ``invalid`` poison record with its reason, visible to ops, and the
message completes (the handler does not run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..adapters.poison_repo import PoisonRepository
from ..messages import InvalidMessage, parse_message
from ..telemetry import correlation_id_of
from .chain import Call, Middleware

log = logging.getLogger(__name__)


class ParseMessage(Middleware):
    def around(self, call: Call, proceed: Callable[[], Any]) -> Any:
        if call.trigger == "queue" and call.model is not None:
            msg = call.input
            try:
                call.message = parse_message(call.model, msg.get_body())
            except InvalidMessage as exc:
                log.error("invalid message %s on %s: %s", msg.id, call.queue, exc)
                call.outcome = "invalid"
                PoisonRepository(call.services.db).record_invalid(
                    call.queue,
                    msg.id,
                    msg.get_body().decode("utf-8", "replace"),
                    getattr(msg, "dequeue_count", None),
                    getattr(msg, "insertion_time", None),
                    str(exc),
                )
                return None
            call.correlation_id = str(call.message.correlation_id)
        elif call.trigger == "poison":
            call.correlation_id = correlation_id_of(call.input.get_body())
        return proceed()
