"""The one middleware chain (functions/middleware/): every function of function_app.py goes through it, and
what it does per kind of trigger (queue: parse, record failed attempts and re-raise, invalid messages recorded
at once; HTTP: unexpected errors answered 500 JSON with the correlation id; poison monitors and timers: logged
and re-raised), with the correlation id set around the handler. Real PostgreSQL for what the chain records."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import uuid

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from functions import names
from functions.localhost.services import PROJECT_ROOT
from functions.messages import SendAlert
from functions.middleware import chain, chain_info
from functions.ops import metrics
from functions.telemetry import correlation_id

TRIGGER_KINDS = {"httpTrigger": "http", "queueTrigger": "queue", "timerTrigger": "timer"}


def _fresh_app():
    """function_app.py loaded under another name: get_functions() may be called once per app object."""
    spec = importlib.util.spec_from_file_location(
        "function_app_chain_check", PROJECT_ROOT / "function_app.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.app


def test_every_function_of_the_app_goes_through_the_chain():
    seen = set()
    for f in _fresh_app().get_functions():
        name, user_function = f.get_function_name(), f.get_user_function()
        info = chain_info(user_function)
        assert info is not None, f"function {name} bypasses the middleware chain (functions/middleware/)"
        trigger = f.get_trigger().get_dict_repr()
        kind = TRIGGER_KINDS[trigger["type"]]
        if kind == "queue" and trigger["queueName"].endswith(names.POISON_SUFFIX):
            kind = "poison"
        assert info.trigger == kind, f"{name}: a {kind} function wrapped as {info.trigger}"
        if kind in ("queue", "poison"):
            assert info.queue == trigger["queueName"], f"{name}: the chain and the binding name other queues"
        # the host calls the chain's function with the binding's argument, by name
        assert list(inspect.signature(user_function).parameters) == [trigger["name"]], name
        seen.add(kind)
    assert seen == {"http", "queue", "poison", "timer"}


@pytest.fixture
def reader():
    reader = InMemoryMetricReader()
    metrics.use_meter_provider(MeterProvider(metric_readers=[reader]))
    yield reader
    metrics.use_meter_provider(None)


def points(reader) -> dict[str, list]:
    out: dict[str, list] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def message(body: str | bytes, dequeue_count: int = 1, message_id: str | None = None) -> QueueMessage:
    raw = body.encode() if isinstance(body, str) else body
    return QueueMessage(id=message_id or str(uuid.uuid4()), body=raw, dequeue_count=dequeue_count)


def test_queue_function_gets_the_parsed_message_and_its_correlation_id(app_settings, clean_db, reader):
    seen = []

    @chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
    def fn(msg: SendAlert, svc) -> None:
        seen.append((msg, correlation_id.get(), svc.settings))

    cid = str(uuid.uuid4())
    fn(message(SendAlert(alert_id=5, correlation_id=cid).model_dump_json()))
    [(msg, current, settings)] = seen
    assert isinstance(msg, SendAlert) and msg.alert_id == 5 and current == cid and settings is not None
    assert correlation_id.get() is None  # only inside the invocation
    [duration] = points(reader)["trapalert.function.duration"]
    assert dict(duration.attributes) == {"function": "fn", "trigger": "queue", "outcome": "ok"}


def test_a_failed_attempt_is_recorded_and_re_raised(app_settings, clean_db, reader):
    @chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
    def fn(msg: SendAlert, svc) -> None:
        raise RuntimeError("channel down")

    cid = str(uuid.uuid4())
    msg = message(SendAlert(alert_id=5, correlation_id=cid).model_dump_json(), dequeue_count=3)
    with pytest.raises(RuntimeError, match="channel down"):
        fn(msg)
    [row] = clean_db.fetchall("SELECT * FROM message_failures")
    assert (row["queue"], row["message_id"], row["dequeue_count"]) == (names.SEND_ALERT_QUEUE, msg.id, 3)
    assert row["error"] == "RuntimeError: channel down" and str(row["correlation_id"]) == cid
    got = points(reader)
    assert [dict(p.attributes) for p in got["trapalert.handler.failures"]] == [
        {"queue": names.SEND_ALERT_QUEUE}
    ]
    assert got["trapalert.function.duration"][0].attributes["outcome"] == "error"


def test_an_invalid_message_is_recorded_at_once_and_not_handled(app_settings, clean_db, reader):
    called = []

    @chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
    def fn(msg: SendAlert, svc) -> None:
        called.append(msg)

    msg = message(b'{"schema_version": 1, "alert_id": 1}\x00')  # with a NUL PostgreSQL text cannot hold
    fn(msg)  # returns: the host completes the message, nothing retries it
    fn(msg)  # a redelivery records nothing twice
    assert called == []
    [row] = clean_db.fetchall("SELECT * FROM poison_records")
    assert (
        row["status"] == "invalid" and row["queue"] == names.SEND_ALERT_QUEUE and row["message_id"] == msg.id
    )
    assert row["last_error"].startswith("invalid message: not JSON") and "\x00" not in row["body"]
    assert clean_db.fetchall("SELECT * FROM message_failures") == []
    poison = points(reader)["trapalert.poison.messages"]
    assert [(dict(p.attributes), p.value) for p in poison] == [
        ({"queue": names.SEND_ALERT_QUEUE, "status": "invalid"}, 2)
    ]


def test_http_errors_are_answered_500_with_the_correlation_id_and_chosen_answers_pass(app_settings, reader):
    seen = []

    @chain.http()
    def broken(req: func.HttpRequest, svc) -> func.HttpResponse:
        seen.append(correlation_id.get())
        raise KeyError("bug")

    @chain.http()
    def busy(req: func.HttpRequest, svc) -> func.HttpResponse:
        return func.HttpResponse("later", status_code=503)

    req = func.HttpRequest("GET", "http://127.0.0.1/api/x", body=b"")
    resp = broken(req)
    assert resp.status_code == 500 and resp.mimetype == "application/json"
    assert json.loads(resp.get_body()) == {"error": "internal error", "correlation_id": seen[0]}
    uuid.UUID(seen[0])
    assert busy(req).status_code == 503 and busy(req).get_body() == b"later"
    outcomes = {
        p.attributes["function"]: p.attributes["outcome"]
        for p in points(reader)["trapalert.function.duration"]
    }
    assert outcomes == {"broken": "error", "busy": "error"}


def test_timers_and_poison_monitors_log_and_re_raise_with_a_correlation_id(app_settings, reader):
    seen = []

    @chain.timer()
    def tick(timer, svc) -> None:
        seen.append(correlation_id.get())
        raise RuntimeError("database restarting")

    with pytest.raises(RuntimeError):
        tick(None)
    uuid.UUID(seen.pop())

    @chain.poison_monitor(names.poison_queue(names.SEND_ALERT_QUEUE))
    def monitor(msg, svc) -> int | None:
        seen.append(correlation_id.get())
        return 17 if msg.id == "new" else None

    cid = str(uuid.uuid4())
    body = json.dumps({"schema_version": 1, "correlation_id": cid, "alert_id": 1})
    monitor(message(body, message_id="new"))
    monitor(message(body, message_id="known"))
    monitor(message(b"not json", message_id="new"))
    assert seen == [cid, cid, None]
    poison = points(reader)["trapalert.poison.messages"]
    assert [(dict(p.attributes), p.value) for p in poison] == [
        ({"queue": names.SEND_ALERT_QUEUE, "status": "poisoned"}, 2)
    ]

    @chain.poison_monitor(names.poison_queue(names.SEND_ALERT_QUEUE))
    def failing(msg, svc) -> int | None:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        failing(message(body))
    assert "trapalert.handler.failures" not in points(reader)  # only queue functions count attempts


def test_the_chain_refuses_a_monitor_of_a_queue_that_is_not_a_poison_queue():
    with pytest.raises(ValueError):
        chain.poison_monitor(names.SEND_ALERT_QUEUE)
