"""The one middleware chain around every function of function_app.py (as dramatiq's middleware): HTTP,
queue, poison-monitor and timer functions alike. Each concern lives in one module:

    metrics.py      Metrics          timing of every invocation; handler failures; poison/invalid counts
    messages.py     ParseMessage     queue body -> its pydantic model (invalid: recorded at once, not retried)
    correlation.py  Correlation      the correlation id (the message's, or a new one) on logs and spans
    retry.py        Retry            queue: a failed message again later (backoff, Retry-After, horizon)
    failures.py     RecordFailures   queue: record, re-raise; HTTP: 500 JSON; others: log, re-raise

In function_app.py each function is declared with its Azure binding and one decorator of ``chain``; the
decorated function receives what its trigger brought (an HTTP request, the *parsed* queue message, the
poisoned message, the timer) and the typed :class:`~functions.bootstrap.Services`::

    @app.function_name("send-alert")
    @app.queue_trigger(arg_name="msg", queue_name=names.SEND_ALERT_QUEUE, connection=STORAGE)
    @chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
    def send_alert_queue(message: SendAlert, svc: Services) -> None:
        send_alert.handle(message, svc)

Every function the chain builds carries a :class:`ChainInfo` (``chain_info(fn)``); a test checks that every
function of the app has one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.functions as func

from .. import bootstrap
from ..messages import QueueMessageModel
from .chain import CHAIN_ATTR, Call, Chain, ChainInfo, Middleware, chain_info
from .correlation import Correlation
from .failures import RecordFailures
from .messages import ParseMessage
from .metrics import Metrics
from .retry import Retry

__all__ = [
    "CHAIN_ATTR",
    "Call",
    "Chain",
    "ChainInfo",
    "Correlation",
    "Metrics",
    "Middleware",
    "ParseMessage",
    "RecordFailures",
    "Retry",
    "chain",
    "chain_info",
    "run_queue_handler",
]

chain = Chain(
    [Metrics(), ParseMessage(), Correlation(), Retry(), RecordFailures()],
    services=lambda: bootstrap.services(),
)


def run_queue_handler(
    queue: str, msg: func.QueueMessage, model: type[QueueMessageModel], handler: Callable[[Any, Any], Any]
) -> None:
    """Run ``handler`` on ``msg`` of ``queue`` through the chain, as ``@chain.queue(queue, model)`` does."""
    chain.queue(queue, model)(handler)(msg)
