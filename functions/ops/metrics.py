"""Named metrics of the pipeline (OpenTelemetry instruments). Call these functions; never create instruments
elsewhere, so that names, units and attributes stay the same across modules.

Without a configured MeterProvider (see functions/telemetry.configure_telemetry) every call is a cheap no-op.
Attributes are low-cardinality on purpose (queue, channel kind, status, park slug): never ids.

    from functions.ops import metrics
    metrics.image_received(park="park-x")
    metrics.image_scored(model="md_v5a", status="scored", seconds=0.41)
    metrics.alert_raised(kind="detection", reason="new")
    metrics.delivery(channel_kind="earthranger", status="delivered", seconds=0.8)
    metrics.end_to_end_latency(seconds=7.2, channel_kind="earthranger")
    metrics.poison_recorded(queue="send-alert")
    metrics.handler_failed(queue="process-image")
    metrics.ops_notification(status="sent")
    metrics.health_transition(condition="silent", transition="raised")
    metrics.function_duration(function="process_image_queue", trigger="queue", outcome="ok", seconds=0.2)

Where each is emitted: images.received in functions/handlers/process_email.py; images.scored and
scoring.duration in functions/adapters/scoring_client.py (where the detector's answer arrives); alerts and
health.transitions where alerts are raised; deliveries, delivery.duration and alert.latency in
functions/handlers/send_alert.py; poison.messages, handler.failures and function.duration in the middleware
chain (functions/middleware/); ops.notifications in functions/ops/notify.py.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import metrics as otel_metrics

METER_NAME = "trapalert"

# name -> (kind, unit, description)
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "trapalert.images.received": ("counter", "{image}", "images stored from inbound emails"),
    "trapalert.images.scored": ("counter", "{image}", "images the detector answered for, by status"),
    "trapalert.scoring.duration": ("histogram", "s", "time the scoring service took per image"),
    "trapalert.alerts": ("counter", "{alert}", "alerts raised or updated, by kind and reason"),
    "trapalert.deliveries": ("counter", "{delivery}", "deliveries by channel kind and status"),
    "trapalert.delivery.duration": ("histogram", "s", "time one delivery to a channel took"),
    "trapalert.alert.latency": ("histogram", "s", "end to end: email received -> alert delivered"),
    "trapalert.poison.messages": ("counter", "{message}", "messages recorded from poison queues"),
    "trapalert.handler.failures": ("counter", "{attempt}", "queue handler attempts that raised"),
    "trapalert.retries": ("counter", "{message}", "failed messages scheduled again (retry) or poisoned"),
    "trapalert.retry.delay": ("histogram", "s", "the delay before a failed message is tried again"),
    "trapalert.sweeps": ("counter", "{item}", "work the sweeper re-drove, by kind"),
    "trapalert.ops.notifications": ("counter", "{notification}", "ops notifications sent or suppressed"),
    "trapalert.health.transitions": ("counter", "{transition}", "camera health conditions raised/cleared"),
    "trapalert.function.duration": ("histogram", "s", "one function invocation, by trigger and outcome"),
}

_lock = threading.Lock()
_provider: Any = None  # None: the global MeterProvider
_instruments: dict[str, Any] = {}


def use_meter_provider(provider: Any | None) -> None:
    """Record into ``provider`` instead of the global one (tests: an SDK MeterProvider with an
    InMemoryMetricReader). ``None`` goes back to the global provider."""
    global _provider
    with _lock:
        _provider = provider
        _instruments.clear()


def _instrument(name: str) -> Any:
    inst = _instruments.get(name)
    if inst is not None:
        return inst
    with _lock:
        inst = _instruments.get(name)
        if inst is None:
            kind, unit, description = INSTRUMENTS[name]
            meter = (_provider or otel_metrics.get_meter_provider()).get_meter(METER_NAME)
            if kind == "counter":
                inst = meter.create_counter(name, unit=unit, description=description)
            else:
                inst = meter.create_histogram(name, unit=unit, description=description)
            _instruments[name] = inst
        return inst


def _attrs(**kwargs: Any) -> dict[str, str]:
    return {k: str(v) for k, v in kwargs.items() if v is not None}


def _add(name: str, value: float = 1, **attrs: Any) -> None:
    try:
        _instrument(name).add(value, _attrs(**attrs))
    except Exception:  # noqa: BLE001 - metrics never break the pipeline
        pass


def _record(name: str, value: float, **attrs: Any) -> None:
    try:
        _instrument(name).record(max(0.0, float(value)), _attrs(**attrs))
    except Exception:  # noqa: BLE001
        pass


# ------------------------------------------------------------------------------------ the named functions
def image_received(park: str | None = None, count: int = 1) -> None:
    """process-email: ``count`` images stored and queued for scoring."""
    _add("trapalert.images.received", count, park=park)


def image_scored(model: str | None = None, status: str = "scored", seconds: float | None = None) -> None:
    """The scoring client got the detector's answer for one image (status scored|failed)."""
    _add("trapalert.images.scored", 1, model=model, status=status)
    if seconds is not None:
        _record("trapalert.scoring.duration", seconds, model=model)


def alert_raised(kind: str = "detection", reason: str = "new") -> None:
    """An alert was created (reason new|health|ops) or updated (update|health_cleared)."""
    _add("trapalert.alerts", 1, kind=kind, reason=reason)


def delivery(channel_kind: str, status: str, seconds: float | None = None) -> None:
    """send-alert: one delivery attempt to a channel (status delivered|failed|transient|skipped)."""
    _add("trapalert.deliveries", 1, channel_kind=channel_kind, status=status)
    if seconds is not None:
        _record("trapalert.delivery.duration", seconds, channel_kind=channel_kind, status=status)


def end_to_end_latency(seconds: float, channel_kind: str | None = None) -> None:
    """send-alert: from inbound_emails.received_at of the alert's first image to its delivery."""
    _record("trapalert.alert.latency", seconds, channel_kind=channel_kind)


def poison_recorded(queue: str, status: str = "poisoned") -> None:
    """A poison monitor (or the middleware, status invalid) recorded a message of ``queue``."""
    _add("trapalert.poison.messages", 1, queue=queue, status=status)


def function_duration(function: str, trigger: str, outcome: str, seconds: float) -> None:
    """The middleware chain: one invocation of a function (trigger http|queue|poison|timer, outcome
    ok|error|invalid)."""
    _record("trapalert.function.duration", seconds, function=function, trigger=trigger, outcome=outcome)


def retry(queue: str, action: str, delay_s: float) -> None:
    """A failed queue message was scheduled again (action retry, after ``delay_s``) or poisoned."""
    _add("trapalert.retries", 1, queue=queue, action=action)
    if action == "retry":
        _record("trapalert.retry.delay", delay_s, queue=queue)


def swept(kind: str, count: int) -> None:
    """The sweeper re-drove ``count`` items of ``kind`` (outbox, images, alerts); 0 too, so that the series
    shows the sweeper runs."""
    _add("trapalert.sweeps", count, kind=kind)


def handler_failed(queue: str) -> None:
    """A queue handler attempt raised (the host will retry or poison the message)."""
    _add("trapalert.handler.failures", 1, queue=queue)


def ops_notification(status: str) -> None:
    """An ops notification was sent, suppressed by the rate limit, or failed."""
    _add("trapalert.ops.notifications", 1, status=status)


def health_transition(condition: str, transition: str) -> None:
    """Camera health: ``condition`` was raised or cleared."""
    _add("trapalert.health.transitions", 1, condition=condition, transition=transition)
