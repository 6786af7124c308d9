"""Metrics and traces: the named instruments record, logs carry the correlation id (and trace ids when a
span is active), TRAPALERT_OTEL_CONSOLE=1 prints spans that carry the correlation id, nothing otherwise."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from functions.localhost.services import PROJECT_ROOT
from functions.ops import metrics
from functions.telemetry import JsonFormatter, correlation


def _points(reader) -> dict[str, list]:
    out: dict[str, list] = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_named_metrics_record_with_low_cardinality_attributes():
    reader = InMemoryMetricReader()
    metrics.use_meter_provider(MeterProvider(metric_readers=[reader]))
    try:
        metrics.image_received(park="park-x", count=3)
        metrics.image_scored(model="md", status="scored", seconds=0.4)
        metrics.alert_raised(kind="detection", reason="new")
        metrics.delivery("earthranger", "delivered", seconds=0.2)
        metrics.delivery("email", "failed")
        metrics.end_to_end_latency(6.5, channel_kind="earthranger")
        metrics.poison_recorded("send-alert")
        metrics.poison_recorded("send-alert")
        metrics.handler_failed("process-image")
        metrics.ops_notification("suppressed")
        metrics.health_transition("silent", "raised")
        metrics.function_duration("send_alert_queue", "queue", "ok", 0.1)
        points = _points(reader)
    finally:
        metrics.use_meter_provider(None)
    assert set(metrics.INSTRUMENTS) == set(points)
    assert points["trapalert.images.received"][0].value == 3
    assert points["trapalert.poison.messages"][0].value == 2
    assert dict(points["trapalert.poison.messages"][0].attributes) == {
        "queue": "send-alert",
        "status": "poisoned",
    }
    deliveries = {
        (p.attributes["channel_kind"], p.attributes["status"]): p.value
        for p in points["trapalert.deliveries"]
    }
    assert deliveries == {("earthranger", "delivered"): 1, ("email", "failed"): 1}
    assert points["trapalert.alert.latency"][0].sum == 6.5


def test_json_logs_carry_the_correlation_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.ops.telemetry")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with correlation("11111111-2222-3333-4444-555555555555"):
            log.info("inside")
        log.info("outside")
    finally:
        log.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (
        inside["correlation_id"] == "11111111-2222-3333-4444-555555555555" and inside["message"] == "inside"
    )
    assert "correlation_id" not in outside


_SCRIPT = """
import logging
from functions.telemetry import configure_telemetry, correlation, configure_logging
print("MODE", configure_telemetry())
configure_logging("json")
with correlation("99999999-2222-3333-4444-555555555555", span_name="test.work"):
    logging.getLogger("x").warning("hello")
from opentelemetry import trace
trace.get_tracer_provider().force_flush() if hasattr(trace.get_tracer_provider(), "force_flush") else None
"""


def _run(env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "TRAPALERT_OTEL_CONSOLE")
    }
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_console_exporter_when_asked_and_nothing_otherwise():
    console = _run({"TRAPALERT_OTEL_CONSOLE": "1"})
    assert "MODE console" in console.stdout, console.stderr
    assert '"name": "test.work"' in console.stdout
    assert '"trapalert.correlation_id": "99999999-2222-3333-4444-555555555555"' in console.stdout
    log_line = json.loads([ln for ln in console.stderr.splitlines() if '"hello"' in ln][0])
    assert log_line["correlation_id"] == "99999999-2222-3333-4444-555555555555"
    assert len(log_line["trace_id"]) == 32  # logs and traces join on the trace id

    quiet = _run({})
    assert "MODE none" in quiet.stdout and "test.work" not in quiet.stdout
    assert "trace_id" not in quiet.stderr


def test_application_insights_when_its_connection_string_is_set():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[str] = []

    class Ingestion(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length") or 0))
            received.append(self.path)
            body = b'{"itemsReceived": 1, "itemsAccepted": 1, "errors": []}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingestion)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = (
            f"InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            f"IngestionEndpoint=http://127.0.0.1:{server.server_port}/"
        )
        result = _run({"APPLICATIONINSIGHTS_CONNECTION_STRING": conn})
    finally:
        server.shutdown()
    assert "MODE azure" in result.stdout, result.stderr[-2000:]
    assert any("track" in p for p in received), received
