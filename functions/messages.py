"""Queue messages: small JSON documents with a schema version (ids, blob names, correlation id), never
image bytes. A message that does not parse raises InvalidMessage, which the queue middleware records for
ops instead of retrying it."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1


class InvalidMessage(ValueError):
    """A queue message that can never be processed (not JSON, wrong schema, wrong version)."""


class QueueMessageModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    correlation_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    # Retries (functions/middleware/retry.py): how many attempts failed before this copy was put on the
    # queue, and when the first attempt began (the retry horizon counts from it).
    attempt: int = Field(0, ge=0, le=10_000)
    first_attempt_at: datetime | None = None
    # W3C traceparent of the span that produced the message (functions/telemetry.py): one trace from the
    # webhook through both queues to each channel delivery.
    traceparent: str | None = Field(None, max_length=128)


class ProcessImage(QueueMessageModel):
    """Score one stored image."""

    image_id: int
    blob_name: str
    park_id: int
    camera_id: int


class BulkImage(QueueMessageModel):
    """One photo on the bulk lane (queue ``process-image-bulk``, names.BULK_IMAGE_QUEUE), which never delays
    a live photo (see names.py).

    * ``purpose="upload"``: ``image_id`` is an image row (console upload, ``trapalert upload``): the SAME
      decision path as a live photo (dedup, scoring, rules, alerts); ``alert`` is ignored.
    * ``purpose="batch"``: ``item_id`` is a ``batch_items`` row of batch ``batch_id`` (``image_id`` 0: a
      batch photo is no image row): scored, its detections stored with the model version, never alerting.
    * ``purpose="rescore"``: ``item_id`` is a ``batch_items`` row of re-scoring run ``batch_id`` and
      ``image_id`` the stored photo: scored by the current model and stored beside the old detections;
      never alerting itself (with ``alert``, ``trapalert rescore --alert``, the finished run opens one
      re-scoring alert per event that would have fired and did not: functions/handlers/batch.py).

    Producers write it to the outbox (functions/adapters/outbox.py) with key ``bulk:<purpose>:<id>``.
    """

    image_id: int
    blob_name: str
    park_id: int
    camera_id: int | None = None
    purpose: Literal["upload", "batch", "rescore"]
    batch_id: int | None = None
    item_id: int | None = None
    alert: bool = True


class SendAlert(QueueMessageModel):
    """Deliver one alert (``version`` is the alert version to bring every channel to)."""

    alert_id: int
    version: int = 1
    # rescore: a re-scoring alert about the past (`trapalert rescore --alert`): delivered as a new alert, but
    # not counted in the end-to-end alert latency
    reason: Literal["new", "update", "health", "health_cleared", "rescore"] = "new"


M = TypeVar("M", bound=QueueMessageModel)


def parse_message(model: type[M], body: bytes | str) -> M:
    """Parse a queue message body into ``model`` or raise InvalidMessage saying why."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidMessage("not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidMessage("not a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidMessage(f"unsupported schema_version {version!r} (this app reads {SCHEMA_VERSION})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidMessage(f"{model.__name__}: {first.get('loc')} {first.get('msg')}") from None
