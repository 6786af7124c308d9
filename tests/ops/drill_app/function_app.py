"""The real function_app.py plus one drill queue whose handler delivers to a test webhook (DRILL_HOOK_URL).

The tests control the failure from outside (the fake receiver answers 500 until it is told to recover),
exactly like an outage of a downstream system: the drill message fails five times through the real host,
is moved to ops-drill-poison, recorded by the same poison monitor code, and replayed by the operator.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import azure.functions as func
import httpx

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("trapalert_function_app", ROOT / "function_app.py")
real = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = real
_spec.loader.exec_module(real)

from functions import names  # noqa: E402
from functions.bootstrap import Services  # noqa: E402
from functions.handlers import poison  # noqa: E402
from functions.messages import QueueMessageModel  # noqa: E402
from functions.middleware import chain  # noqa: E402

app = real.app
DRILL_QUEUE = "ops-drill"
DRILL_POISON = names.poison_queue(DRILL_QUEUE)


class Drill(QueueMessageModel):
    n: int
    park_id: int | None = None


def deliver(message: Drill, svc) -> None:
    r = httpx.post(
        os.environ["DRILL_HOOK_URL"],
        json={"n": message.n, "correlation_id": str(message.correlation_id)},
        timeout=5,
    )
    r.raise_for_status()


@app.function_name("ops-drill")
@app.queue_trigger(arg_name="msg", queue_name=DRILL_QUEUE, connection=real.STORAGE)
@chain.queue(DRILL_QUEUE, Drill)
def drill_queue(message: Drill, svc: Services) -> None:
    deliver(message, svc)


@app.function_name("ops-drill-poison")
@app.queue_trigger(arg_name="msg", queue_name=DRILL_POISON, connection=real.STORAGE)
@chain.poison_monitor(DRILL_POISON)
def drill_poison(msg: func.QueueMessage, svc: Services) -> int | None:
    return poison.record(DRILL_POISON, msg, svc)
