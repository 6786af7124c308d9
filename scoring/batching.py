"""Dynamic batching: gather concurrent images into one model call, off the event loop, with a bounded queue.

* Admission: a request reserves one slot per image before its images are decoded. At most
  SCORING_QUEUE_LIMIT images may be admitted and not yet inside a model call; beyond that the request is
  refused at once with ``Unavailable("overloaded")`` (503 + Retry-After), never queued without bound.
* Gathering: the batch loop takes the oldest image, then waits until SCORING_MAX_BATCH images are there or
  SCORING_MAX_WAIT_MS have passed since that oldest image arrived (no wait at all when images piled up
  during the previous model call), and runs them in one ``backend.detect`` call.
* The model runs on one dedicated thread (the model is the bottleneck; TensorFlow and OpenCV use all
  cores inside a call). A backend without batch support gets batches of one.
* A failing batch is retried image by image, so one bad image cannot fail its neighbours.
* Two lanes (header ``X-TrapAlert-Lane``): ``live`` (default; camera photos on their way to rangers) and
  ``bulk`` (uploads, batch scoring, re-scoring). Bulk images are admitted only up to
  SCORING_BULK_QUEUE_LIMIT (so live images always find SCORING_QUEUE_LIMIT - SCORING_BULK_QUEUE_LIMIT free
  slots), wait in their own queue, and fill only the slots of a model call that no waiting live image
  takes, at most SCORING_BULK_MAX_BATCH of them per call: a live image waits for at most the one model
  call in progress, whatever the bulk backlog.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from scoring.backends.base import Backend
from scoring.errors import INFERENCE_FAILED, ImageFailure, Unavailable
from scoring.schemas import Detection

log = logging.getLogger("scoring.batching")

Lane = Literal["live", "bulk"]
LANES: tuple[Lane, ...] = ("live", "bulk")


@dataclass(slots=True)
class BatchResult:
    detections: list[Detection]
    queue_ms: float
    model_ms: float
    batch_size: int
    batch_id: int


@dataclass(slots=True)
class _Item:
    image: np.ndarray
    future: asyncio.Future
    enqueued: float
    reservation: Reservation


class Reservation:
    """Slots held by one request; each image releases its slot when it enters a model call or fails."""

    def __init__(self, batcher: Batcher, count: int, lane: Lane = "live"):
        self._batcher = batcher
        self.remaining = count
        self.lane = lane

    def release(self, count: int = 1) -> None:
        count = min(count, self.remaining)
        if count > 0:
            self.remaining -= count
            self._batcher._admitted -= count
            if self.lane == "bulk":
                self._batcher._admitted_bulk -= count

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc) -> None:
        self.release(self.remaining)


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    largest_batch: int = 0
    overloaded: int = 0
    inference_failures: int = 0
    model_ms_per_image: float = 0.0  # moving average, for Retry-After
    sizes: dict[int, int] = field(default_factory=dict)
    images_by_lane: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANES, 0))
    overloaded_by_lane: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANES, 0))

    def as_dict(self) -> dict:
        return {
            "batches": self.batches,
            "images": self.images,
            "largest_batch": self.largest_batch,
            "mean_batch_size": round(self.images / self.batches, 3) if self.batches else 0.0,
            "batch_size_histogram": {str(k): v for k, v in sorted(self.sizes.items())},
            "overloaded_requests": self.overloaded,
            "inference_failures": self.inference_failures,
            "model_ms_per_image": round(self.model_ms_per_image, 3),
            "images_by_lane": dict(self.images_by_lane),
            "overloaded_by_lane": dict(self.overloaded_by_lane),
        }


class Batcher:
    def __init__(
        self,
        backend: Backend,
        *,
        max_batch: int,
        max_wait_ms: float,
        queue_limit: int,
        bulk_queue_limit: int | None = None,
        bulk_max_batch: int | None = None,
    ):
        self.backend = backend
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.queue_limit = queue_limit
        # default: a quarter of the queue and half a model call for the bulk lane
        self.bulk_queue_limit = min(queue_limit, bulk_queue_limit or max(1, queue_limit // 4))
        self.bulk_max_batch = min(max_batch, bulk_max_batch or max(1, max_batch // 2))
        self._bulk: deque[_Item] = deque()
        self._admitted_bulk = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring-model")
        self.stats = BatchStats()
        self._queue: deque[_Item] = deque()
        self._admitted = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._next_batch_id = 0

    # -- admission ---------------------------------------------------------------------------------------
    @property
    def admitted(self) -> int:
        return self._admitted

    def retry_after_s(self) -> int:
        per_image = self.stats.model_ms_per_image or 100.0
        return max(1, min(60, math.ceil((self._admitted + 1) * per_image / 1000.0)))

    @property
    def admitted_bulk(self) -> int:
        return self._admitted_bulk

    def reserve(self, count: int, lane: Lane = "live") -> Reservation:
        if self._admitted + count > self.queue_limit:
            self.stats.overloaded += 1
            self.stats.overloaded_by_lane[lane] += 1
            raise Unavailable(
                "overloaded",
                f"{self._admitted} images are waiting for the model (limit {self.queue_limit}, "
                f"SCORING_QUEUE_LIMIT); retry later",
                self.retry_after_s(),
            )
        if lane == "bulk" and self._admitted_bulk + count > self.bulk_queue_limit:
            self.stats.overloaded += 1
            self.stats.overloaded_by_lane[lane] += 1
            raise Unavailable(
                "overloaded",
                f"{self._admitted_bulk} bulk images wait for the model (limit {self.bulk_queue_limit}, "
                f"SCORING_BULK_QUEUE_LIMIT); retry later",
                self.retry_after_s(),
            )
        self._admitted += count
        if lane == "bulk":
            self._admitted_bulk += count
        return Reservation(self, count, lane)

    # -- life cycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="scoring-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for waiting in (self._queue, self._bulk):
            while waiting:
                item = waiting.popleft()
                if not item.future.done():
                    item.future.set_exception(Unavailable("shutting_down", "the service is stopping", 1))
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- work --------------------------------------------------------------------------------------------
    async def submit(self, image: np.ndarray, reservation: Reservation) -> BatchResult:
        """Queue one prepared image (its slot is released when it enters a model call); await its result."""
        assert self._wakeup is not None, "start() first"
        future = asyncio.get_running_loop().create_future()
        lane_queue = self._bulk if reservation.lane == "bulk" else self._queue
        lane_queue.append(_Item(image, future, time.perf_counter(), reservation))
        self._wakeup.set()
        return await future

    async def _loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue and not self._bulk:
                self._wakeup.clear()
                await self._wakeup.wait()
            limit = self.max_batch if self.backend.supports_batch else 1
            oldest = min(q[0].enqueued for q in (self._queue, self._bulk) if q)
            deadline = oldest + self.max_wait_s
            while len(self._queue) + min(len(self._bulk), self.bulk_max_batch) < limit and (
                self._queue or len(self._bulk) < self.bulk_max_batch  # a full bulk share goes at once
            ):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch: list[_Item] = []
            while self._queue and len(batch) < limit:  # live images first, always
                item = self._queue.popleft()
                item.reservation.release(1)  # the slot is free once the image leaves the queue
                if not item.future.cancelled():
                    batch.append(item)
            bulk_taken = 0
            while self._bulk and len(batch) < limit and bulk_taken < self.bulk_max_batch:
                item = self._bulk.popleft()
                item.reservation.release(1)
                if not item.future.cancelled():
                    batch.append(item)
                    bulk_taken += 1
            if batch:
                self.stats.images_by_lane["live"] += len(batch) - bulk_taken
                self.stats.images_by_lane["bulk"] += bulk_taken
                await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        self._next_batch_id += 1
        batch_id = self._next_batch_id
        started = time.perf_counter()
        images = [item.image for item in batch]
        try:
            results: list = await loop.run_in_executor(self.executor, self.backend.detect, images)
        except Exception:  # isolate the culprit: rerun one by one
            log.exception("model call on a batch of %d failed", len(batch))
            results = []
            for image in images:
                try:
                    results.append(
                        (await loop.run_in_executor(self.executor, self.backend.detect, [image]))[0]
                    )
                except Exception as one_exc:  # noqa: BLE001 - reported per image
                    self.stats.inference_failures += 1
                    results.append(ImageFailure(INFERENCE_FAILED, f"{type(one_exc).__name__}: {one_exc}"))
        model_ms = (time.perf_counter() - started) * 1000.0
        size = len(batch)
        stats = self.stats
        stats.batches += 1
        stats.images += size
        stats.largest_batch = max(stats.largest_batch, size)
        stats.sizes[size] = stats.sizes.get(size, 0) + 1
        per_image = model_ms / size
        stats.model_ms_per_image = (
            per_image if stats.batches == 1 else 0.8 * stats.model_ms_per_image + 0.2 * per_image
        )
        for item, result in zip(batch, results, strict=False):
            if item.future.done():
                continue
            if isinstance(result, Exception):
                item.future.set_exception(result)
            else:
                item.future.set_result(
                    BatchResult(
                        detections=result,
                        queue_ms=(started - item.enqueued) * 1000.0,
                        model_ms=model_ms,
                        batch_size=size,
                        batch_id=batch_id,
                    )
                )
