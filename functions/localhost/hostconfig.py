"""host.json, read the way the Azure Functions host reads it (queue extension settings only)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


class HostConfigError(ValueError):
    """host.json is malformed; the message names the setting."""


def parse_timespan(value: str, setting: str) -> float:
    """A .NET TimeSpan ("00:00:02", "1.00:00:00", "00:00:00.5") in seconds."""
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise HostConfigError(f"host.json {setting}: {value!r} is not a timespan like 00:00:02")
    days, hours, minutes, seconds, frac = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    if frac:
        total += float(f"0.{frac}")
    return float(total)


@dataclass(frozen=True)
class QueueSettings:
    """extensions.queues of host.json; defaults are those of the storage extension v5."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout_s: float = 0.0
    max_polling_interval_s: float = 60.0
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, data: dict) -> QueueSettings:
        queues = (data.get("extensions") or {}).get("queues") or {}
        batch = int(queues.get("batchSize", 16))
        if not 1 <= batch <= 32:
            raise HostConfigError(f"host.json extensions.queues.batchSize: {batch} is not in 1..32")
        threshold = int(queues.get("newBatchThreshold", batch // 2))
        max_dequeue = int(queues.get("maxDequeueCount", 5))
        if max_dequeue < 1:
            raise HostConfigError("host.json extensions.queues.maxDequeueCount must be at least 1")
        encoding = str(queues.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise HostConfigError(f"host.json extensions.queues.messageEncoding: {encoding!r} (base64 or none)")
        polling = parse_timespan(queues.get("maxPollingInterval", "00:01:00"),
                                 "extensions.queues.maxPollingInterval")
        if polling < 0.1:
            raise HostConfigError("host.json extensions.queues.maxPollingInterval must be at least 100 ms")
        return cls(
            batch_size=batch,
            new_batch_threshold=threshold,
            max_dequeue_count=max_dequeue,
            visibility_timeout_s=parse_timespan(queues.get("visibilityTimeout", "00:00:00"),
                                                "extensions.queues.visibilityTimeout"),
            max_polling_interval_s=polling,
            message_encoding=encoding,
        )


def load_host_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HostConfigError(f"{path} not found") from None
    except json.JSONDecodeError as exc:
        raise HostConfigError(f"{path}: not valid JSON ({exc})") from None
    if data.get("version") != "2.0":
        raise HostConfigError(f"{path}: version must be \"2.0\"")
    return data
