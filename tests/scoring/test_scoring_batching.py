"""Dynamic batching on the real batcher with the null backend (whose model time is configurable)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from scoring.backends.null import NullBackend
from scoring.batching import Batcher
from scoring.errors import ImageFailure, Unavailable
from tests.scoring.helpers import make_settings

IMG = np.zeros((8, 8, 3), np.uint8)


def batcher_for(delay_ms=0.0, max_batch=8, max_wait_ms=20.0, queue_limit=64, backend=None) -> Batcher:
    settings = make_settings(
        backend="null",
        null_result="person",
        null_delay_ms=delay_ms,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        queue_limit=queue_limit,
    )
    backend = backend or NullBackend(settings)
    backend.load()
    return Batcher(backend, max_batch=max_batch, max_wait_ms=max_wait_ms, queue_limit=queue_limit)


async def submit_many(batcher: Batcher, n: int, image=IMG):
    async def one():
        with batcher.reserve(1) as reservation:
            return await batcher.submit(image, reservation)

    return await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)


def run(coro_fn):
    async def main():
        return await coro_fn()

    return asyncio.run(main())


def test_concurrent_images_share_one_model_call():
    async def scenario():
        batcher = batcher_for(delay_ms=50, max_batch=8, max_wait_ms=50)
        batcher.start()
        try:
            results = await submit_many(batcher, 8)
        finally:
            await batcher.stop()
        return batcher, results

    batcher, results = run(scenario)
    assert {r.batch_size for r in results} == {8} and len({r.batch_id for r in results}) == 1
    assert batcher.stats.batches == 1 and batcher.stats.as_dict()["batch_size_histogram"] == {"8": 1}
    assert all(r.detections[0].category == "2" for r in results)
    assert all(45 <= r.model_ms < 500 for r in results)


def test_batches_are_capped_and_later_images_wait_for_the_model():
    async def scenario():
        batcher = batcher_for(delay_ms=30, max_batch=4, max_wait_ms=5)
        batcher.start()
        try:
            return batcher, await submit_many(batcher, 10)
        finally:
            await batcher.stop()

    batcher, results = run(scenario)
    assert max(r.batch_size for r in results) == 4
    assert sum(batcher.stats.sizes.values()) == batcher.stats.batches and batcher.stats.images == 10
    assert max(r.queue_ms for r in results) >= 25  # queued behind a running model call


def test_a_lone_image_waits_at_most_max_wait():
    async def scenario():
        batcher = batcher_for(max_batch=8, max_wait_ms=100)
        batcher.start()
        try:
            t0 = time.perf_counter()
            (result,) = await submit_many(batcher, 1)
            return result, (time.perf_counter() - t0) * 1000
        finally:
            await batcher.stop()

    result, elapsed_ms = run(scenario)
    assert result.batch_size == 1 and 90 <= result.queue_ms <= 400 and elapsed_ms < 600


def test_zero_wait_runs_at_once():
    async def scenario():
        batcher = batcher_for(max_batch=8, max_wait_ms=0)
        batcher.start()
        try:
            return await submit_many(batcher, 1)
        finally:
            await batcher.stop()

    (result,) = run(scenario)
    assert result.queue_ms < 50


def test_queue_limit_refuses_with_retry_after():
    async def scenario():
        batcher = batcher_for(delay_ms=200, max_batch=1, max_wait_ms=0, queue_limit=2)
        batcher.start()
        try:
            results = await submit_many(batcher, 6)
            after = await submit_many(batcher, 1)  # slots come back once images reach the model
            return batcher, results, after
        finally:
            await batcher.stop()

    batcher, results, after = run(scenario)
    refused = [r for r in results if isinstance(r, Unavailable)]
    assert len(refused) >= 3 and all(r.code == "overloaded" and r.retry_after_s >= 1 for r in refused)
    assert batcher.stats.overloaded == len(refused)
    assert not isinstance(after[0], Exception) and batcher.admitted == 0


def test_reservations_are_all_or_nothing_and_released():
    batcher = batcher_for(queue_limit=8, max_batch=8)
    with batcher.reserve(5) as r:
        assert batcher.admitted == 5
        with pytest.raises(Unavailable):
            batcher.reserve(4)
        r.release(2)
        assert batcher.admitted == 3
    assert batcher.admitted == 0


class PickyBackend(NullBackend):
    """Real null backend that cannot process all-white images (to test failure isolation)."""

    def detect(self, images):
        if any(int(img.min()) == 255 for img in images):
            raise RuntimeError("white image")
        return super().detect(images)


def test_one_failing_image_does_not_fail_its_batch():
    settings = make_settings(backend="null", null_result="person")

    async def scenario():
        batcher = batcher_for(max_batch=8, max_wait_ms=50, backend=PickyBackend(settings))
        batcher.start()
        try:
            images = [IMG, np.full((8, 8, 3), 255, np.uint8), IMG]

            async def one(img):
                with batcher.reserve(1) as reservation:
                    return await batcher.submit(img, reservation)

            return batcher, await asyncio.gather(*(one(i) for i in images), return_exceptions=True)
        finally:
            await batcher.stop()

    batcher, (ok1, bad, ok2) = run(scenario)
    assert ok1.detections and ok2.detections
    assert isinstance(bad, ImageFailure) and bad.failure.startswith(
        "inference_failed: RuntimeError: white image"
    )
    assert batcher.stats.inference_failures == 1
