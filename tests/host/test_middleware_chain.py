"""The one middleware chain (functions/middleware/): every function of function_app.py goes through it, and
what it does per kind of trigger (queue: parse, record failed attempts and schedule them again with backoff
or poison them, invalid messages recorded at once; HTTP: unexpected errors answered 500 JSON with the
correlation id; poison monitors: put back while the database is down; timers: logged and re-raised), with
the correlation id set around the handler. Real PostgreSQL and Azurite for what the chain records."""

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
from functions.messages import ProcessImage, SendAlert
from functions.middleware import chain, chain_info
from functions.ops import metrics
from functions.telemetry import correlation_id
from tests.support.metrics import points

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


def _queued(storage, queue: str) -> list[dict]:
    return [json.loads(m.content) for m in storage.queue(queue).peek_messages(max_messages=32)]


def test_a_failed_attempt_is_recorded_and_scheduled_again_with_backoff(
    app_settings, clean_db, clean_queues, storage, reader
):
    @chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
    def fn(msg: SendAlert, svc) -> None:
        raise RuntimeError("channel down")

    cid = str(uuid.uuid4())
    msg = message(SendAlert(alert_id=5, correlation_id=cid).model_dump_json(), dequeue_count=1)
    fn(msg)  # returns: the original completes, a copy waits on the queue (middleware/retry.py)
    fn(msg)  # the host delivering the same message again schedules nothing twice
    [row, _] = clean_db.fetchall("SELECT * FROM message_failures ORDER BY id")
    assert (row["queue"], row["message_id"], row["dequeue_count"]) == (names.SEND_ALERT_QUEUE, msg.id, 1)
    assert row["error"] == "RuntimeError: channel down" and str(row["correlation_id"]) == cid
    [retry] = clean_db.fetchall("SELECT * FROM outbox")
    assert retry["key"] == f"retry:{names.SEND_ALERT_QUEUE}:{msg.id}" and retry["sent_at"] is not None
    assert 5 <= retry["delay_s"] <= 6  # the first step of RETRY_SCHEDULE_S (5 s, +-10 %, whole seconds up)
    assert retry["body"]["attempt"] == 1 and retry["body"]["first_attempt_at"]
    assert storage.queue_depth(names.SEND_ALERT_QUEUE) == 1  # invisible for now, but there
    got = points(reader)
    assert sum(p.value for p in got["trapalert.handler.failures"]) == 2
    assert {p.attributes["outcome"] for p in got["trapalert.function.duration"]} == {"retry"}
    assert [dict(p.attributes) for p in got["trapalert.retries"]] == [
        {"queue": names.SEND_ALERT_QUEUE, "action": "retry"}
    ]


def test_a_later_attempt_waits_longer_and_honours_retry_after(app_settings, clean_db, clean_queues, reader):
    class Throttled(RuntimeError):
        retry_after = 90.0

    @chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
    def fn(msg: SendAlert, svc) -> None:
        raise Throttled("429")

    from datetime import UTC, datetime

    second = SendAlert(alert_id=5, attempt=1, first_attempt_at=datetime.now(UTC)).model_dump_json()
    fn(message(second))
    [retry] = clean_db.fetchall("SELECT delay_s, body FROM outbox")
    assert retry["body"]["attempt"] == 2 and retry["delay_s"] == 90  # the 15 s step, but Retry-After 90
    fourth = SendAlert(alert_id=6, attempt=3, first_attempt_at=datetime.now(UTC)).model_dump_json()
    fn(message(fourth))
    [later] = clean_db.fetchall("SELECT delay_s, body FROM outbox WHERE body->>'alert_id' = '6'")
    assert 270 <= later["delay_s"] <= 330  # the 300 s step: longer than Retry-After


def test_past_the_horizon_the_message_goes_to_poison_as_first_sent(
    app_settings, clean_db, clean_queues, storage, monkeypatch
):
    from datetime import UTC, datetime, timedelta

    @chain.queue(names.PROCESS_IMAGE_QUEUE, ProcessImage)
    def fn(msg, svc) -> None:
        raise RuntimeError("detector down")

    old = datetime.now(UTC) - timedelta(hours=6)
    body = ProcessImage(image_id=1, blob_name="b", park_id=1, camera_id=1, attempt=9, first_attempt_at=old)
    fn(message(body.model_dump_json()))
    [moved] = _queued(storage, names.poison_queue(names.PROCESS_IMAGE_QUEUE))
    assert moved["image_id"] == 1 and "attempt" not in moved and "first_attempt_at" not in moved
    assert storage.queue_depth(names.PROCESS_IMAGE_QUEUE) == 0


def test_a_permanent_error_goes_to_poison_at_once(app_settings, clean_db, clean_queues, storage):
    from functions.domain.retry import PermanentError

    @chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
    def fn(msg, svc) -> None:
        raise PermanentError("this can never work")

    fn(message(SendAlert(alert_id=7).model_dump_json()))
    [moved] = _queued(storage, names.poison_queue(names.SEND_ALERT_QUEUE))
    assert moved["alert_id"] == 7


def test_with_the_database_down_the_retry_goes_straight_to_the_queue(
    app_settings, clean_db, clean_queues, storage, monkeypatch
):
    from functions.bootstrap import services
    from functions.db import DatabaseUnavailable

    @chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
    def fn(msg, svc) -> None:
        raise DatabaseUnavailable("failover")

    def down(*a, **k):
        raise DatabaseUnavailable("failover in progress")

    monkeypatch.setattr(services().db, "transaction", down)
    monkeypatch.setattr(services().db, "execute", down)
    fn(message(SendAlert(alert_id=8).model_dump_json()))
    monkeypatch.undo()
    props = storage.queue(names.SEND_ALERT_QUEUE).peek_messages()
    assert props == []  # not visible yet: it waits out the delay
    assert storage.queue_depth(names.SEND_ALERT_QUEUE) == 1


def test_when_nothing_can_take_the_retry_the_host_retries(app_settings, clean_db, monkeypatch):
    from functions.adapters.storage import StorageUnavailable
    from functions.bootstrap import services
    from functions.db import DatabaseUnavailable

    @chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
    def fn(msg, svc) -> None:
        raise RuntimeError("channel down")

    def db_down(*a, **k):
        raise DatabaseUnavailable("down")

    def queue_down(*a, **k):
        raise StorageUnavailable("down")

    monkeypatch.setattr(services().db, "transaction", db_down)
    monkeypatch.setattr(services().db, "execute", db_down)
    monkeypatch.setattr(services().storage, "enqueue", queue_down)
    with pytest.raises(RuntimeError, match="channel down"):
        fn(message(SendAlert(alert_id=9).model_dump_json()))


def test_a_poison_monitor_puts_its_message_back_while_the_database_is_down(
    app_settings, clean_db, clean_queues, storage, monkeypatch
):
    from functions.db import DatabaseUnavailable

    poison_q = names.poison_queue(names.SEND_ALERT_QUEUE)

    @chain.poison_monitor(poison_q)
    def monitor(msg, svc):
        raise DatabaseUnavailable("failover")

    monitor(message(SendAlert(alert_id=3).model_dump_json()))  # returns: nothing goes to -poison-poison
    assert storage.queue_depth(poison_q) == 1  # back on its own queue, visible again later
    assert storage.queue_depth(names.poison_queue(poison_q)) == 0


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
