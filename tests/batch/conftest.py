"""Batch scoring tests: one scoring service with the null backend (a person in every photo) per session, and
Services of this process pointed at the session's Azurite and PostgreSQL."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from functions import names
from functions.messages import BulkImage, parse_message
from tests.support.scoring_process import run_scoring_service


@pytest.fixture(scope="session")
def null_scoring_url():
    with run_scoring_service({"SCORING_BACKEND": "null", "SCORING_NULL_RESULT": "person"}) as url:
        yield url


@pytest.fixture
def svc(azurite, database_url, null_scoring_url, clean_db, clean_queues, monkeypatch):
    from functions.bootstrap import Services, reset_services
    from functions.settings import load_settings

    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SCORING_URL", str(null_scoring_url))
    monkeypatch.setenv("SCORING_RETRY_BUDGET_S", "3")
    reset_services()
    services = Services(load_settings())
    yield services
    services.scoring.close()
    services.db.close()
    reset_services()


class CountingScoring:
    """The real scoring client, counting the photos it was asked to score (exactly once)."""

    def __init__(self, real):
        self.real = real
        self.calls: list[str] = []
        self.lanes: set[str] = set()

    def detect(self, data, filename="image.jpg", content_type="image/jpeg", *, lane="live"):
        self.calls.append(filename)
        self.lanes.add(lane)
        return self.real.detect(data, filename=filename, content_type=content_type, lane=lane)

    def close(self) -> None:
        self.real.close()


@pytest.fixture
def counting(svc):
    counter = CountingScoring(svc.scoring)
    svc.__dict__["scoring"] = counter  # Services.scoring is a cached_property
    return counter


def jpeg(i: int, size: tuple[int, int] = (32, 24)) -> bytes:
    """A small JPEG, different for each ``i``."""
    img = Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i // 256 * 53) % 256))
    img.putpixel((0, 0), (i % 256, (i // 256) % 256, 7))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=95)
    return out.getvalue()


def drain(svc, *, max_messages: int = 100_000, redeliver_every: int = 0) -> int:
    """Run the bulk queue's messages through the handler in this process until the queue is empty; with
    ``redeliver_every`` every n-th message is handled twice (a redelivery). Returns messages handled."""
    from functions.handlers import batch

    queue = svc.storage.queue(names.BULK_IMAGE_QUEUE)
    handled = 0
    while handled < max_messages:
        got = list(queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=60))
        if not got:
            return handled
        for m in got:
            msg = parse_message(BulkImage, m.content)
            batch.handle_bulk(msg, svc)
            handled += 1
            if redeliver_every and handled % redeliver_every == 0:
                batch.handle_bulk(msg, svc)
            queue.delete_message(m)
            if handled >= max_messages:
                break
    return handled


def queued_bodies(svc) -> list[dict]:
    return [
        json.loads(m.content)
        for m in svc.storage.queue(names.BULK_IMAGE_QUEUE).peek_messages(max_messages=32)
    ]
