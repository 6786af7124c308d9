"""The scoring service's two lanes (scoring/batching.py): a live image never waits behind the bulk backlog."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from scoring.backends.null import NullBackend
from scoring.batching import Batcher
from scoring.errors import Unavailable
from tests.scoring.helpers import make_settings

IMG = np.zeros((8, 8, 3), np.uint8)


class RecordingBackend(NullBackend):
    """The null backend, recording which images (by their first pixel) each model call got."""

    def __init__(self, settings):
        super().__init__(settings)
        self.calls: list[list[int]] = []

    def detect(self, images):
        self.calls.append([int(i[0, 0, 0]) for i in images])
        return super().detect(images)


def make(max_batch=4, queue_limit=64, bulk_queue_limit=None, bulk_max_batch=None, delay_ms=5.0):
    settings = make_settings(
        backend="null", null_result="person", null_delay_ms=delay_ms, max_batch=max_batch
    )
    backend = RecordingBackend(settings)
    backend.load()
    return Batcher(
        backend,
        max_batch=max_batch,
        max_wait_ms=1.0,
        queue_limit=queue_limit,
        bulk_queue_limit=bulk_queue_limit,
        bulk_max_batch=bulk_max_batch,
    )


def image(mark: int) -> np.ndarray:
    out = IMG.copy()
    out[0, 0, 0] = mark
    return out


async def one(batcher: Batcher, mark: int, lane: str):
    with batcher.reserve(1, lane) as reservation:
        return await batcher.submit(image(mark), reservation)


def test_a_live_image_goes_into_the_next_model_call_ahead_of_the_bulk_backlog():
    async def scenario():
        batcher = make(max_batch=4, bulk_max_batch=2, bulk_queue_limit=32)
        batcher.start()
        try:
            bulk = [asyncio.create_task(one(batcher, 1, "bulk")) for _ in range(20)]
            await asyncio.sleep(0.002)  # the first bulk call is running
            await one(batcher, 200, "live")
            await asyncio.gather(*bulk)
        finally:
            await batcher.stop()
        return batcher

    batcher = asyncio.run(scenario())
    calls = batcher.backend.calls
    live_call = next(i for i, c in enumerate(calls) if 200 in c)
    assert live_call <= 1, calls  # the call in progress, then the live image's
    assert all(c.count(1) <= 2 for c in calls), calls  # bulk never takes more than its share of a call
    assert batcher.stats.images_by_lane == {"live": 1, "bulk": 20}


def test_bulk_admission_is_bounded_and_leaves_room_for_live_images():
    batcher = make(queue_limit=8, bulk_queue_limit=2)
    held = batcher.reserve(2, "bulk")
    with pytest.raises(Unavailable) as refused:
        batcher.reserve(1, "bulk")
    assert refused.value.code == "overloaded" and "SCORING_BULK_QUEUE_LIMIT" in refused.value.detail
    live = batcher.reserve(6, "live")  # the live lane still has its slots
    held.release(2)
    batcher.reserve(1, "bulk").release(1)
    live.release(6)
    assert batcher.admitted == 0 and batcher.admitted_bulk == 0
    assert batcher.stats.overloaded_by_lane == {"live": 0, "bulk": 1}


def test_defaults_give_bulk_a_quarter_of_the_queue_and_half_a_call():
    batcher = make(max_batch=8, queue_limit=64)
    assert (batcher.bulk_queue_limit, batcher.bulk_max_batch) == (16, 4)
