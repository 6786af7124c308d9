"""Logs and the correlation id: structured JSON logs, one correlation id from the email to the deliveries.

``correlation_id`` is a context variable set by the entry points (webhook, queue middleware); every log
record carries it. Secrets never reach the logs: settings hold them as SecretStr and handlers log ids only.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation_id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = getattr(record, "correlation_id", None) or correlation_id.get()
        if cid:
            data["correlation_id"] = str(cid)
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
def correlation(cid: str | None) -> Iterator[None]:
    token = correlation_id.set(str(cid) if cid else None)
    try:
        yield
    finally:
        correlation_id.reset(token)
