"""The correlation id of every invocation, on every log record and span inside it (functions/telemetry.py):
the message's own for queue functions and poison monitors (one id from the email to the deliveries), a new
one for each HTTP request and timer run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from ..telemetry import correlation
from .chain import Call, Middleware


class Correlation(Middleware):
    def around(self, call: Call, proceed: Callable[[], Any]) -> Any:
        if call.correlation_id is None and call.trigger in ("http", "timer"):
            call.correlation_id = str(uuid.uuid4())
        with correlation(
            call.correlation_id,
            span_name=f"trapalert.{call.trigger}.{call.function}",
            traceparent=getattr(call.message, "traceparent", None),
        ):
            return proceed()
