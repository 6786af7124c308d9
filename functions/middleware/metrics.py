"""Timing and the counters only the chain sees (functions/ops/metrics.py): ``trapalert.function.duration``
for every invocation (by function, trigger and outcome), ``trapalert.handler.failures`` for each failed
attempt of a queue function, ``trapalert.poison.messages`` for each invalid message (status ``invalid``) and
each message a poison monitor recorded (status ``poisoned``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import azure.functions as func

from ..ops import metrics
from .chain import Call, Middleware


class Metrics(Middleware):
    def around(self, call: Call, proceed: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            result = proceed()
        except Exception:
            call.outcome = "error"
            if call.trigger == "queue":
                metrics.handler_failed(call.queue)
            raise
        else:
            if isinstance(result, func.HttpResponse) and result.status_code >= 500:
                call.outcome = "error"
            if call.trigger == "queue" and call.outcome in ("retry", "error"):
                metrics.handler_failed(call.queue)  # failed, and scheduled again or poisoned (retry.py)
            if call.outcome == "invalid":
                metrics.poison_recorded(call.queue, "invalid")
            elif call.trigger == "poison" and result is not None:
                metrics.poison_recorded(call.queue)
            return result
        finally:
            metrics.function_duration(
                call.function, call.trigger, call.outcome, time.perf_counter() - started
            )
