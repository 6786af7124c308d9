"""Metrics and traces: the named instruments record, logs carry the correlation id (and trace ids when a
span is active), TRAPALERT_OTEL_CONSOLE=1 prints spans that carry the correlation id, nothing otherwise."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from functions.localhost.services import PROJECT_ROOT
from functions.ops import metrics
from functions.telemetry import JsonFormatter, correlation
from tests.support.metrics import points as _points


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
        if hasattr(metrics, "retry"):  # the retry work (issue 13)
            metrics.retry("send-alert", "retry", 15.0)
            metrics.swept("outbox", 2)
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


# --------------------------------------------------------------------------------- one trace per email
def _scoring_stand_in():
    """A scoring service answering one person at 0.95 for every photo (MegaDetector format)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Scoring(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.dumps({
                "info": {"detector": "stand-in", "format_version": "1.4"},
                "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
                "images": [{"file": "x.jpg", "detections": [
                    {"category": "2", "conf": 0.95, "bbox": [0.2, 0.2, 0.3, 0.5]}]}],
            }).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Scoring)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _queue_message(storage, queue: str):
    """The one message on ``queue``, as the Functions host hands it to the function."""
    from azure.functions.queue import QueueMessage

    [msg] = list(storage.queue(queue).receive_messages(max_messages=32, visibility_timeout=60))
    return QueueMessage(id=msg.id, body=msg.content.encode(), dequeue_count=1, pop_receipt=msg.pop_receipt)


def test_one_trace_from_the_webhook_through_both_queues_to_each_channel_delivery(
    app_settings, clean_db, clean_queues, storage, monkeypatch
):
    """process-email (HTTP) -> process-image -> send-alert -> EarthRanger, CMORE and SendGrid, run through
    the app's own functions (the middleware chain included): every span is in the trace whose id is the
    email's correlation id; each function's span hangs from the trace's root, and each channel's HTTP
    requests from the send-alert span. Spans collected with an in-memory exporter."""
    import azure.functions as func
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    import function_app
    from functions import names
    from functions.bootstrap import reset_services
    from functions.inbound.sendgrid_payload import ImageFile, build_payload
    from functions.notify import cmore as cmore_module
    from functions.telemetry import instrument_http_clients, root_span_id, trace_id_of
    from tests.e2e import harness as e2e
    from tests.fakes import FakeCmore, FakeEarthRanger, FakeSendGrid

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first SDK provider of this process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    undo = instrument_http_clients()
    scoring = _scoring_stand_in()
    cmore_module.clear_caches()
    try:
        monkeypatch.setenv("SCORING_URL", f"http://127.0.0.1:{scoring.server_port}")
        for k, v in e2e.SECRET_ENV.items():
            monkeypatch.setenv(k, v)
        reset_services()
        with (
            FakeEarthRanger(token=e2e.ER_TOKEN) as er,
            FakeCmore(users={e2e.CMORE_USER: e2e.CMORE_PASSWORD}) as cm,
            FakeSendGrid(api_key=e2e.SG_KEY) as sg,
        ):
            e2e.Pipeline.register(clean_db, er, cm, sg, ["CAM01"])
            photo = ImageFile("IMG_0001.JPG", e2e.make_photo(e2e.T0, seed=1))
            payload = build_payload(sender=e2e.camera_sender("CAM01"), to=e2e.PARK_ADDRESS,
                                    subject="CAM01 motion", images=[photo])
            exporter.clear()

            answer = function_app.process_email_http(func.HttpRequest(
                "POST", f"http://127.0.0.1:7071/api/{names.INBOUND_ROUTE}", headers=payload.headers(),
                params={}, route_params={}, body=payload.body))
            assert answer.status_code == 200, answer.get_body()
            function_app.process_image_queue(_queue_message(storage, names.PROCESS_IMAGE_QUEUE))
            function_app.send_alert_queue(_queue_message(storage, names.SEND_ALERT_QUEUE))
            assert er.events and cm.events and sg.messages, "the three channels received the alert"
            channel_ports = {"earthranger": er.url, "cmore": cm.url, "sendgrid": sg.url}
    finally:
        undo()
        scoring.shutdown()
        cmore_module.clear_caches()
        reset_services()
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}

    cid = json.loads(answer.get_body())["correlation_id"]
    trace_id = trace_id_of(cid)
    root = root_span_id(cid)
    functions = {s.name: s for s in spans if s.name.startswith(("trapalert.http.", "trapalert.queue."))}
    assert set(functions) == {"trapalert.http.process_email_http", "trapalert.queue.process_image_queue",
                              "trapalert.queue.send_alert_queue"}, sorted(s.name for s in spans)
    # one trace: every span of the three invocations, the trace id is the correlation id. Outside it: only
    # storage calls without a parent (this test's own queue reads, and the annotated photo's cache upload,
    # which send-alert runs in a worker thread that does not inherit the invocation's context).
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    outside = [(s.name, _url_of(s)) for s in spans if s.context.trace_id != trace_id]
    assert all(s.parent is None and "devstoreaccount1" in (_url_of(s) or "") for s in spans
               if s.context.trace_id != trace_id), outside
    assert len(in_trace) > 10
    def ancestors(span):
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            yield span

    for span in functions.values():
        assert span.parent is not None and span.parent.is_remote
        assert span.attributes["trapalert.correlation_id"] == cid
    # the webhook hangs from the correlation id's root; each queue function from the span that sent its
    # message (the message's traceparent, written with it in the outbox): parent links from end to end
    webhook = functions["trapalert.http.process_email_http"]
    process_image = functions["trapalert.queue.process_image_queue"]
    assert webhook.parent.span_id == root
    assert process_image.parent.span_id in by_id and webhook in [by_id[process_image.parent.span_id],
                                                                  *ancestors(by_id[process_image.parent.span_id])]
    send_alert_parent = by_id[functions["trapalert.queue.send_alert_queue"].parent.span_id]
    assert process_image in [send_alert_parent, *ancestors(send_alert_parent)]

    send_alert = functions["trapalert.queue.send_alert_queue"]
    clients = [s for s in spans if s.kind == SpanKind.CLIENT]
    for channel, url in channel_ports.items():
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        requests_to = [s for s in clients if _port_of(s) == port]
        assert requests_to, f"no client span to {channel} ({url}): {[s.attributes for s in clients]}"
        for s in requests_to:
            assert send_alert in list(ancestors(s)), f"{channel}: {s.name} is not under send-alert"
    scoring_calls = [s for s in clients if _port_of(s) == scoring.server_port]
    assert scoring_calls and all(functions["trapalert.queue.process_image_queue"] in list(ancestors(s))
                                 for s in scoring_calls)


def _url_of(span) -> str | None:
    attrs = span.attributes or {}
    url = attrs.get("url.full") or attrs.get("http.url")
    return str(url) if url else None


def _port_of(span) -> int | None:
    attrs = span.attributes or {}
    for key in ("server.port", "net.peer.port"):
        if key in attrs:
            return int(attrs[key])
    url = attrs.get("url.full") or attrs.get("http.url")
    if url:
        from urllib.parse import urlsplit

        return urlsplit(str(url)).port
    return None


def test_a_message_that_carries_its_senders_traceparent_is_parented_to_it():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from functions.telemetry import current_traceparent, root_span_id, trace_id_of

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    cid = "0af7651b-16b4-4f0e-a1c3-1d2b3c4d5e6f"
    host = trace.get_tracer("functions-host").start_span("host invocation")  # another trace
    with trace.use_span(host, end_on_exit=True):
        with correlation(cid, span_name="trapalert.http.x"):
            sent_by = current_traceparent()
    with correlation(cid, span_name="trapalert.queue.y", traceparent=sent_by):
        pass
    elsewhere = "00-" + "f" * 32 + "-" + "1" * 16 + "-01"
    with correlation(cid, span_name="trapalert.queue.z", traceparent=elsewhere):
        pass  # a traceparent of another trace is ignored: the correlation id's trace wins
    spans = {s.name: s for s in exporter.get_finished_spans()}
    x, y, z = spans["trapalert.http.x"], spans["trapalert.queue.y"], spans["trapalert.queue.z"]
    assert x.context.trace_id == y.context.trace_id == z.context.trace_id == trace_id_of(cid)
    assert x.parent.span_id == root_span_id(cid) and z.parent.span_id == root_span_id(cid)
    assert y.parent.span_id == x.context.span_id
    assert [link.context.span_id for link in x.links] == [host.get_span_context().span_id]  # the host's span
