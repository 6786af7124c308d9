"""Logs, traces and the correlation id: structured JSON logs, one correlation id from the email to the
deliveries, OpenTelemetry traces and metrics.

``correlation_id`` is a context variable set by the middleware chain around every function
(functions/middleware/: the message's id for queue functions and poison monitors, a new one per HTTP
request or timer run); every log
record carries it, and so does every span opened inside ``correlation()`` (attribute
``trapalert.correlation_id``; the log records also carry the trace and span ids when a span is active).
Secrets never reach the logs: settings hold them as SecretStr and handlers log ids only.

One trace per email. The correlation id is a UUID, and it *is* the trace id: ``correlation()`` opens each
invocation's span under a remote parent whose trace id is the correlation id (and whose span id is derived
from it, ``root_span_id``). The HTTP trigger, both queue functions (in any process, on any instance) and
everything inside them -- the scoring call, each channel delivery's HTTP requests -- are one trace, found in
Application Insights by the correlation id rangers see in an alert ("ref ...") as its operation id. The span
the Functions host opened for the invocation (host.json ``"telemetryMode": "OpenTelemetry"``) is kept as a
link. A message that carries a W3C ``traceparent`` of the span that sent it (``current_traceparent()``) is
parented to that span instead, so the trace also shows which invocation caused which.

OpenTelemetry (``configure_telemetry``, once per process, from bootstrap.services()):
- APPLICATIONINSIGHTS_CONNECTION_STRING set: ``azure.monitor.opentelemetry.configure_azure_monitor``
  (traces, metrics and logs to Application Insights; the HTTP clients, psycopg2 and the Azure SDK
  instrumented). With APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD (set in Bicep) the
  exporter ingests with the app's managed identity (Entra) instead of the instrumentation key;
- else TRAPALERT_OTEL_CONSOLE=1: console exporters (spans and metrics printed as JSON to stdout), HTTP
  clients instrumented;
- else nothing: the OpenTelemetry API stays a no-op.
Metrics are the named functions of functions/ops/metrics.py.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation_id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = getattr(record, "correlation_id", None) or correlation_id.get()
        if cid:
            data["correlation_id"] = str(cid)
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            data["trace_id"] = format(ctx.trace_id, "032x")
            data["span_id"] = format(ctx.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in data and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        cid = correlation_id.get()
        base = super().format(record)
        return f"{base} [cid={cid}]" if cid else base


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("azure.core.pipeline.policies.http_logging_policy", "azure.identity", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def correlation(cid: str | None, span_name: str = "trapalert.work", *,
                traceparent: str | None = None) -> Iterator[None]:
    """Set the correlation id for the block and open a span carrying it (a no-op span without an SDK).

    The span's parent: the span that sent the message (``traceparent``, W3C) when given, else the remote
    root of the correlation id's trace (``root_span_id``); the span current before (the Functions host's
    invocation span) is linked. Without a UUID correlation id, the current span is the parent."""
    token = correlation_id.set(str(cid) if cid else None)
    try:
        parent, links = _parent_of(cid, traceparent)
        with tracer().start_as_current_span(span_name, context=parent, links=links) as current:
            if cid:
                current.set_attribute("trapalert.correlation_id", str(cid))
            yield
    finally:
        correlation_id.reset(token)


def trace_id_of(cid: str | None) -> int | None:
    """The trace id of a correlation id (the UUID's 128 bits), or None when it is not a UUID."""
    try:
        value = uuid.UUID(str(cid)).int if cid else 0
    except ValueError:
        return None
    return value or None


def root_span_id(cid: str) -> int:
    """The span id of the (never exported) remote root of a correlation id's trace: its last 64 bits, or 1."""
    trace_id = trace_id_of(cid) or 0
    return (trace_id & 0xFFFF_FFFF_FFFF_FFFF) or 1


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (to carry in a message it sends), or None without one."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def _parent_of(cid: str | None, traceparent: str | None):
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None, None  # no SDK: spans are no-ops, logs carry no trace ids
    current = trace.get_current_span().get_span_context()
    trace_id = trace_id_of(cid)
    if traceparent:
        ctx = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        sent_by = trace.get_current_span(ctx).get_span_context()
        if sent_by.is_valid and (trace_id is None or sent_by.trace_id == trace_id):
            return ctx, _link(current, sent_by.trace_id)
    if trace_id is None:
        return None, None  # the current context
    if current.is_valid and current.trace_id == trace_id:
        return None, None  # already inside this correlation id's trace (a nested correlation())
    root = trace.SpanContext(trace_id=trace_id, span_id=root_span_id(str(cid)), is_remote=True,
                             trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    parent = trace.set_span_in_context(trace.NonRecordingSpan(root), otel_context.Context())
    return parent, _link(current, trace_id)


def _link(span_context: trace.SpanContext, trace_id: int) -> list[trace.Link] | None:
    if span_context.is_valid and span_context.trace_id != trace_id:
        return [trace.Link(span_context, {"trapalert.link": "functions-host-invocation"})]
    return None


def correlation_id_of(body: bytes | str | dict) -> str | None:
    """The correlation id a queue message body (JSON text, or already parsed) carries (a UUID), or None: best
    effort, never raises."""
    try:
        data = body if isinstance(body, dict) else json.loads(body)
        return str(uuid.UUID(str(data["correlation_id"])))
    except (ValueError, TypeError, KeyError, RecursionError):
        return None


def tracer() -> trace.Tracer:
    return trace.get_tracer("trapalert")


@contextlib.contextmanager
def span(name: str, **attributes) -> Iterator[trace.Span]:
    """A span named ``name`` with ``attributes`` (None values left out) and the current correlation id."""
    with tracer().start_as_current_span(name) as current:
        cid = correlation_id.get()
        if cid:
            current.set_attribute("trapalert.correlation_id", cid)
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(
                    key, value if isinstance(value, bool | int | float | str) else str(value)
                )
        yield current


_configured: str | None = None


def configure_telemetry(
    connection_string: str | None = None,
    *,
    console: bool | None = None,
    service_name: str = "trapalert-functions",
) -> str:
    """Set up OpenTelemetry once per process; return what was configured: 'azure', 'console' or 'none'.

    ``connection_string`` defaults to APPLICATIONINSIGHTS_CONNECTION_STRING, ``console`` to
    TRAPALERT_OTEL_CONSOLE=1. A failure to configure is logged, never raised: telemetry must not stop the
    pipeline.
    """
    global _configured
    if _configured is not None:
        return _configured
    import os

    connection_string = connection_string or os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or None
    if console is None:
        console = os.environ.get("TRAPALERT_OTEL_CONSOLE", "") in ("1", "true", "yes")
    os.environ.setdefault("OTEL_SERVICE_NAME", service_name)
    try:
        if connection_string:
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_azure_monitor(connection_string=connection_string, logger_name="functions")
            _configured = "azure"
        elif console:
            from opentelemetry import metrics
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

            resource = Resource.create({"service.name": service_name})
            provider = TracerProvider(resource=resource)
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
            trace.set_tracer_provider(provider)
            reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
            metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
            instrument_http_clients()
            _configured = "console"
        else:
            _configured = "none"
    except Exception as exc:  # noqa: BLE001
        logging.getLogger(__name__).warning("OpenTelemetry not configured: %s", exc)
        _configured = "none"
    return _configured


def instrument_http_clients() -> Callable[[], None]:
    """Trace the outgoing HTTP requests of httpx (scoring, CMORE, webhooks), requests (EarthRanger) and
    urllib (SendGrid): each channel delivery's requests become client spans of the send-alert invocation.
    (configure_azure_monitor does the same in Azure.) Returns a function that undoes it (tests)."""
    done: list[Callable[[], None]] = []
    for module, name in (("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
                         ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
                         ("opentelemetry.instrumentation.urllib", "URLLibInstrumentor")):
        try:
            instrumentor = getattr(__import__(module, fromlist=[name]), name)()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()
                done.append(instrumentor.uninstrument)
        except Exception as exc:  # noqa: BLE001 - tracing is a nicety; never stop the app for it
            logging.getLogger(__name__).warning("%s not instrumented: %s", module, exc)

    def undo() -> None:
        for uninstrument in done:
            uninstrument()

    return undo
