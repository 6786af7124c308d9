"""The local Functions host behaves like the Azure Functions host: a real host process, real Azurite."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import azure.functions as func
import httpx
import pytest

from functions.localhost.host import HostStartupError, compile_route, read_functions
from functions.localhost.hostconfig import HostConfigError, QueueSettings, parse_timespan
from tests.support.host import FUNCTION_KEY, MASTER_KEY, wait_until

HOSTAPP = Path(__file__).resolve().parents[1] / "apps" / "hostapp"


@pytest.fixture
def state_dir(tmp_path) -> Path:
    d = tmp_path / "hostapp-state"
    d.mkdir()
    return d


@pytest.fixture
def hostapp(host_factory, state_dir, storage):
    for q in ("hostapp-out", "hostapp-flaky", "hostapp-flaky-poison", "hostapp-done", "hostapp-slow"):
        client = storage.queue(q)
        try:
            client.create_queue()
        except Exception:  # noqa: BLE001 - already there
            client.clear_messages()
    return host_factory(script_root=HOSTAPP, HOSTAPP_STATE_DIR=str(state_dir), TRAPALERT_LOCAL_LEASE_S="3")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _drain(storage, queue: str) -> list[str]:
    """All messages of a queue, decoded from base64 (the encoding the Functions host reads)."""
    return [m.content for m in storage.queue(queue).receive_messages(max_messages=32, visibility_timeout=30)]


def test_http_function_with_queue_output(hostapp, storage):
    r = httpx.post(hostapp.api("echo/rhino") + f"?code={FUNCTION_KEY}", content=b"horn")
    assert r.status_code == 201
    assert r.json() == {"hello": "rhino"}
    assert r.headers["content-type"].startswith("application/json")
    raw = storage.queue("hostapp-out", encoded=False).peek_messages(max_messages=5)
    assert len(raw) == 1
    assert json.loads(base64.b64decode(raw[0].content)) == {"name": "rhino", "body": "horn"}


def test_output_binding_not_written_when_the_function_fails(hostapp, storage):
    r = httpx.post(hostapp.api("echo/x") + f"?code={FUNCTION_KEY}&fail=1", content=b"")
    assert r.status_code == 500
    assert storage.queue("hostapp-out").peek_messages(max_messages=5) == []


def test_auth_levels(hostapp):
    url = hostapp.api("echo/a")
    assert httpx.post(url).status_code == 401
    assert httpx.post(url + "?code=wrong").status_code == 401
    assert httpx.post(url, headers={"x-functions-key": FUNCTION_KEY}).status_code == 201
    assert httpx.post(url + f"?code={MASTER_KEY}").status_code == 201  # the master key opens every level
    assert httpx.get(hostapp.api("ping")).text == "pong"  # anonymous
    assert httpx.get(hostapp.api("secret") + f"?code={FUNCTION_KEY}").status_code == 401
    assert httpx.get(hostapp.api("secret") + f"?code={MASTER_KEY}").text == "admin"
    assert httpx.get(hostapp.api("echo/a") + f"?code={FUNCTION_KEY}").status_code == 405
    assert httpx.get(hostapp.api("nowhere")).status_code == 404


def test_failing_message_goes_to_poison_after_max_dequeue_count_with_body_intact(hostapp, storage, state_dir):
    (state_dir / "fail-switch").touch()
    body = "please fail: é ✓ {\"json\": true}"
    storage.enqueue("hostapp-flaky", body)
    poison = wait_until(lambda: storage.queue("hostapp-flaky-poison").peek_messages(max_messages=5), 20,
                        message="the poison queue")
    assert [m.content for m in poison] == [body]
    attempts = [a for a in _lines(state_dir / "flaky.jsonl") if a["body"] == body]
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]  # host.json maxDequeueCount = 3
    assert len({a["id"] for a in attempts}) == 1
    assert storage.queue("hostapp-flaky").peek_messages() == []
    # no output binding was written for any failed attempt
    assert storage.queue("hostapp-done").peek_messages(max_messages=5) == []


def test_successful_message_is_processed_once_and_deleted(hostapp, storage, state_dir):
    storage.enqueue("hostapp-flaky", "fine")
    wait_until(lambda: storage.queue("hostapp-done").peek_messages(), 10, message="the output")
    time.sleep(0.5)
    assert [a["body"] for a in _lines(state_dir / "flaky.jsonl")] == ["fine"]
    assert _drain(storage, "hostapp-done") == ["done:fine"]
    assert storage.queue("hostapp-flaky").peek_messages() == []


def test_graceful_stop_finishes_the_message_in_flight(hostapp, storage, state_dir):
    storage.enqueue("hostapp-slow", json.dumps({"key": "graceful", "seconds": 1.5}))
    wait_until(lambda: _lines(state_dir / "slow-start.jsonl"), 10, message="the slow function to start")
    hostapp.stop()
    assert [d["key"] for d in _lines(state_dir / "slow-done.jsonl")] == ["graceful"]
    assert storage.queue("hostapp-slow").peek_messages() == []
    assert storage.queue_depth("hostapp-slow") == 0


def test_message_not_lost_when_the_host_dies_mid_way(hostapp, host_factory, storage, state_dir):
    storage.enqueue("hostapp-slow", json.dumps({"key": "killed", "seconds": 2}))
    wait_until(lambda: _lines(state_dir / "slow-start.jsonl"), 10, message="the slow function to start")
    hostapp.kill()
    assert _lines(state_dir / "slow-done.jsonl") == []
    # A new host picks the message up once its lease (3 s here) has run out.
    host_factory(script_root=HOSTAPP, HOSTAPP_STATE_DIR=str(state_dir), TRAPALERT_LOCAL_LEASE_S="3")
    done = wait_until(lambda: _lines(state_dir / "slow-done.jsonl"), 20, message="the retried message")
    assert done == [{"key": "killed", "dequeue_count": 2}]
    wait_until(lambda: storage.queue_depth("hostapp-slow") == 0, 5, message="the message to be deleted")


def test_timer_fires_on_its_schedule(hostapp, state_dir):
    ticks = wait_until(lambda: len(_lines(state_dir / "tick.jsonl")) >= 2, 10, message="two ticks")
    assert ticks
    times = [t["at"] for t in _lines(state_dir / "tick.jsonl")]
    assert 0.5 < times[1] - times[0] < 1.5  # every second, as "* * * * * *" says


def test_metadata_matches_what_function_app_declares():
    import function_app
    from functions import names

    specs = {s.name: s for s in read_functions(function_app.app)}
    assert set(specs) >= {"process-email", "process-image", "send-alert", "process-image-poison",
                          "send-alert-poison", "camera-health"}
    pe = specs["process-email"]
    assert pe.trigger_type == "httpTrigger"
    assert pe.trigger["route"] == names.INBOUND_ROUTE == "inbound/sendgrid"
    assert pe.trigger["methods"] == ["POST"]
    assert pe.trigger["authLevel"] == "function"
    queue_triggers = {s.trigger["queueName"]: n for n, s in specs.items() if s.trigger_type == "queueTrigger"}
    assert queue_triggers["process-image"] == "process-image"
    assert queue_triggers["send-alert"] == "send-alert"
    assert set(names.ALL_QUEUES) <= set(queue_triggers)
    assert len(specs["camera-health"].trigger["schedule"].split()) == 6


def test_unsupported_binding_is_a_start_up_error():
    app = func.FunctionApp()

    @app.function_name("blobby")
    @app.blob_trigger(arg_name="blob", path="images/{name}", connection="AzureWebJobsStorage")
    def blobby(blob: func.InputStream) -> None:  # pragma: no cover - never runs
        pass

    with pytest.raises(HostStartupError, match="blobTrigger"):
        read_functions(app)


def test_host_refuses_to_start_with_a_malformed_setting(host_factory):
    with pytest.raises(RuntimeError, match="SCORING_URL"):
        host_factory(SCORING_URL="not-a-url")


def test_route_templates():
    assert compile_route("ops/poison/{id:int}").match("ops/poison/42").groupdict() == {"id": "42"}
    assert compile_route("ops/poison/{id:int}").match("ops/poison/x") is None
    assert compile_route("files/{*rest}").match("files/a/b.jpg").groupdict() == {"rest": "a/b.jpg"}
    assert compile_route("inbound/sendgrid").match("INBOUND/sendgrid/")


def test_host_json_settings():
    qs = QueueSettings.from_host_json(json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text()))
    assert qs.max_dequeue_count == 5 and qs.message_encoding == "base64"
    assert qs.max_polling_interval_s <= 5, "real time on a quiet night: poll every few seconds at most"
    assert parse_timespan("1.02:03:04.5", "x") == 93784.5
    with pytest.raises(HostConfigError, match="batchSize"):
        QueueSettings.from_host_json({"extensions": {"queues": {"batchSize": 64}}})
    with pytest.raises(HostConfigError, match="maxPollingInterval"):
        QueueSettings.from_host_json({"extensions": {"queues": {"maxPollingInterval": "2s"}}})
