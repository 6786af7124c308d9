"""The HTTP API of the detector service (FastAPI). Where each answer is decided:

* 200: the MegaDetector output format; a bad *image* is a per-image ``failure`` inside a 200 (permanent).
* 400/413: a bad *request* (no file part, too many files, body too large). 401: missing or wrong API key.
* 503 + Retry-After: model not loaded yet (``not_ready``) or the bounded queue is full (``overloaded``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from scoring import __version__, video
from scoring.backends import Backend, create_backend
from scoring.batching import Batcher, BatchResult, Lane
from scoring.errors import ImageFailure, RequestError, Unavailable
from scoring.preprocess import PreparedImage, prepare
from scoring.schemas import (
    DETECTION_CATEGORIES,
    FORMAT_VERSION,
    DetectResponse,
    ErrorOut,
    HealthOut,
    ModelOut,
)
from scoring.settings import ScoringSettings, load_settings

log = logging.getLogger("scoring.app")

API_KEY_HEADER = "X-API-Key"
LANE_HEADER = "X-TrapAlert-Lane"  # live (default) | bulk: see scoring/batching.py


def request_lane(request: Request) -> Lane:
    """The lane a request asks for; anything but ``bulk`` is live (an old client sends no header)."""
    value = request.headers.get(LANE_HEADER, "live").strip().lower()
    return "bulk" if value == "bulk" else "live"


_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Required on /v1/* when the service runs with SCORING_API_KEY set.",
)

_IMAGE_BODY = {"type": "string", "format": "binary"}
DETECT_BODY = {
    "requestBody": {
        "required": True,
        "description": "One image: the raw bytes (any image content type or application/octet-stream), "
        "or multipart/form-data with the image in field `file`.",
        "content": {
            "image/jpeg": {"schema": _IMAGE_BODY},
            "image/png": {"schema": _IMAGE_BODY},
            "application/octet-stream": {"schema": _IMAGE_BODY},
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"], "properties": {"file": _IMAGE_BODY}}
            },
        },
    }
}
BATCH_BODY = {
    "requestBody": {
        "required": True,
        "description": "multipart/form-data with one file part per image (any field name, e.g. `files`); "
        "results come back in the same order.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {"files": {"type": "array", "items": _IMAGE_BODY}},
                }
            }
        },
    }
}


NOT_IMAGE_TYPES = ("application/x-www-form-urlencoded", "application/json")


def _err(description: str) -> dict:
    return {"model": ErrorOut, "description": description}


_RETRY = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
DETECT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": DetectResponse,
        "description": "MegaDetector output format; a bad image is a per-image failure",
    },
    400: _err("bad request: malformed multipart body or no file part"),
    401: _err("missing or wrong X-API-Key (only when SCORING_API_KEY is set)"),
    413: _err("body larger than SCORING_MAX_BODY_BYTES, or more files than SCORING_MAX_FILES"),
    415: _err("raw body whose Content-Type is not an image (text/*, JSON, urlencoded form)"),
    503: {
        "model": ErrorOut,
        "description": "not_ready (model loading) or overloaded (queue full)",
        "headers": _RETRY,
    },
}


class Service:
    """Everything a request needs; one per app."""

    def __init__(self, settings: ScoringSettings, backend: Backend):
        self.settings = settings
        self.backend = backend
        self.batcher = Batcher(
            backend,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            queue_limit=settings.queue_limit,
            bulk_queue_limit=settings.bulk_queue_limit,
            bulk_max_batch=settings.bulk_max_batch,
        )
        self.preprocess_pool = ThreadPoolExecutor(
            settings.preprocess_threads, thread_name_prefix="scoring-decode"
        )
        # bulk-lane images decode on their own, smaller pool: a bulk backlog never holds a live decode back
        self.bulk_preprocess_pool = ThreadPoolExecutor(
            max(1, settings.preprocess_threads // 2), thread_name_prefix="scoring-decode-bulk"
        )
        self.ready = False
        self.load_error: str | None = None
        self.load_task: asyncio.Task | None = None
        self.on_fatal: Callable[[str], None] | None = None  # set by __main__ to stop the server
        self._note_logged_at = float("-inf")

    async def start(self) -> None:
        self.batcher.start()
        self.load_task = asyncio.get_running_loop().create_task(self._load(), name="scoring-load")

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            await loop.run_in_executor(self.batcher.executor, self.backend.load)
            self.backend.verify_expected_model()
            await loop.run_in_executor(self.batcher.executor, self.backend.warmup)
        except Exception as exc:  # noqa: BLE001 - every load problem is fatal and reported the same way
            self.load_error = str(exc) if str(exc) else repr(exc)
            log.critical("model failed to load: %s", self.load_error)
            if self.on_fatal is not None:
                self.on_fatal(self.load_error)
            return
        self.ready = True
        log.info(
            "ready: backend=%s detector=%s version=%s (loaded and warmed up in %.1f s)",
            self.backend.name,
            self.backend.detector,
            self.backend.detector_version,
            time.perf_counter() - started,
        )

    async def stop(self) -> None:
        if self.load_task is not None and not self.load_task.done():
            self.load_task.cancel()
        await self.batcher.stop()
        self.preprocess_pool.shutdown(wait=False, cancel_futures=True)
        self.bulk_preprocess_pool.shutdown(wait=False, cancel_futures=True)

    def require_ready(self) -> None:
        if self.load_error is not None:
            raise Unavailable("model_failed", f"the model failed to load: {self.load_error}", 30)
        if not self.ready:
            raise Unavailable("not_ready", "the model is loading; retry shortly", 2)

    def _log_note(self, note: str) -> None:
        """Log a backend's note at most once every 10 minutes (the demo's console shows it)."""
        now = time.monotonic()
        if now - self._note_logged_at >= 600:
            self._note_logged_at = now
            log.warning("%s", note)

    def _prepare(self, data: bytes, name: str) -> PreparedImage:
        """Decode, then the backend's own per-image input preparation (e.g. letterbox), in a worker thread."""
        prepared = prepare(data, name, self.settings)
        started = time.perf_counter()
        prepared.image = self.backend.prepare_input(prepared.image)
        prepared.preprocess_ms += (time.perf_counter() - started) * 1000.0
        return prepared

    # -- one request -------------------------------------------------------------------------------------
    async def detect(self, files: list[tuple[str, bytes]], lane: Lane = "live") -> dict:
        started = time.perf_counter()
        self.require_ready()
        loop = asyncio.get_running_loop()
        pool = self._pool(lane)
        with self.batcher.reserve(len(files), lane) as reservation:

            async def decode(name: str, data: bytes) -> PreparedImage | ImageFailure:
                try:
                    return await loop.run_in_executor(pool, self._prepare, data, name)
                except ImageFailure as failure:
                    reservation.release(1)
                    return failure

            # Decode all images first, then queue them together: the images of one request land in the same
            # model batch (up to SCORING_MAX_BATCH) whatever their decoding times.
            decoded = await asyncio.gather(*(decode(name, data) for name, data in files))
            ready = [p for p in decoded if isinstance(p, PreparedImage)]
            scored = iter(await asyncio.gather(*(self._score(p, reservation) for p in ready)))
            outcomes = [(None, p) if isinstance(p, ImageFailure) else (p, next(scored)) for p in decoded]

        images = []
        decode = pre = queue = 0.0
        model_by_batch: dict[int, float] = {}
        largest = 0
        for (name, _data), (prepared, outcome) in zip(files, outcomes, strict=False):
            if prepared is not None:
                decode += prepared.decode_ms
                pre += prepared.preprocess_ms
            if isinstance(outcome, ImageFailure):
                images.append(
                    {
                        "file": name,
                        "detections": None,
                        "night": prepared.night if prepared else None,
                        "width": prepared.width if prepared else None,
                        "height": prepared.height if prepared else None,
                        "failure": outcome.failure,
                    }
                )
                continue
            queue = max(queue, outcome.queue_ms)
            model_by_batch[outcome.batch_id] = outcome.model_ms
            largest = max(largest, outcome.batch_size)
            image = {
                "file": name,
                "detections": [d.to_json() for d in outcome.detections],
                "night": prepared.night,
                "width": prepared.width,
                "height": prepared.height,
                "failure": None,
            }
            note = self.backend.note_for(outcome.detections, prepared.night)
            if note is not None:
                image["note"] = note
                self._log_note(note)
            images.append(image)
        return self._answer(images, started, decode, pre, queue, model_by_batch, largest)

    async def detect_video(
        self, data: bytes, name: str, *, every_s: float, max_frames: int, lane: Lane = "live"
    ) -> dict:
        """Sample the clip (scoring/video.py), score its frames in model batches, answer in the MegaDetector
        video output format (one ``images`` entry for the clip)."""
        started = time.perf_counter()
        self.require_ready()
        loop = asyncio.get_running_loop()
        pool = self._pool(lane)
        entry: dict[str, Any] = {"file": name, "detections": None, "failure": None}
        try:
            sampled = await loop.run_in_executor(
                pool,
                lambda: video.sample(data, self.settings, every_s=every_s, max_frames=max_frames),
            )
        except video.VideoFailure as failure:
            entry["failure"] = failure.failure
            return self._answer([entry], started, 0.0, 0.0, 0.0, {}, 0)
        names = [video.frame_filename(name, f.number) for f in sampled.frames]
        prepared = list(
            await asyncio.gather(
                *(
                    loop.run_in_executor(pool, self._prepare_frame, f, n)
                    for f, n in zip(sampled.frames, names, strict=True)
                )
            )
        )
        results: list[BatchResult | ImageFailure] = []
        chunk = self.batcher.bulk_queue_limit if lane == "bulk" else self.settings.queue_limit
        for start in range(0, len(prepared), chunk):  # a clip never holds more than its lane admits
            part = prepared[start : start + chunk]
            with self.batcher.reserve(len(part), lane) as reservation:
                results += await asyncio.gather(*(self._score(p, reservation) for p in part))
        detections, frames = [], []
        queue = 0.0
        model_by_batch: dict[int, float] = {}
        largest = 0
        for frame, prep, outcome in zip(sampled.frames, prepared, results, strict=True):
            out = {"frame_number": frame.number, "time_s": frame.time_s, "night": prep.night, "jpeg": None}
            if isinstance(outcome, ImageFailure):
                out["failure"] = outcome.failure
                frames.append(out)
                continue
            queue = max(queue, outcome.queue_ms)
            model_by_batch[outcome.batch_id] = outcome.model_ms
            largest = max(largest, outcome.batch_size)
            for d in outcome.detections:
                detections.append(d.to_json() | {"frame_number": frame.number, "frame_time_s": frame.time_s})
            if outcome.detections or frame is sampled.frames[0]:
                out["jpeg"] = await loop.run_in_executor(pool, video.jpeg_b64, frame.image)
            frames.append(out)
        if all("failure" in f for f in frames):
            entry["failure"] = frames[0]["failure"]
            return self._answer([entry], started, sampled.decode_ms, 0.0, 0.0, {}, 0)
        entry |= {
            "detections": detections,
            "frame_rate": sampled.frame_rate,
            "frames_processed": [f.number for f in sampled.frames],
            "night": any(p.night for p in prepared),
            "width": sampled.width,
            "height": sampled.height,
            "frames": frames,
            "video": {
                "frame_count": sampled.frame_count,
                "frames_read": sampled.frames_read,
                "duration_s": sampled.duration_s,
                "width": sampled.width,
                "height": sampled.height,
                "codec": sampled.codec,
                "truncated": sampled.truncated,
                "notes": sampled.notes,
            },
        }
        pre = sum(p.preprocess_ms for p in prepared)
        return self._answer([entry], started, sampled.decode_ms, pre, queue, model_by_batch, largest)

    def _pool(self, lane: Lane) -> ThreadPoolExecutor:
        return self.bulk_preprocess_pool if lane == "bulk" else self.preprocess_pool

    async def _score(self, prepared: PreparedImage, reservation) -> BatchResult | ImageFailure:
        """One prepared image (a photo or a clip's frame) through the batcher, under the request's
        reservation; a per-image failure is an answer, not an error."""
        try:
            return await self.batcher.submit(prepared.image, reservation)
        except ImageFailure as failure:
            return failure

    def _prepare_frame(self, frame: video.Frame, name: str) -> PreparedImage:
        prepared = video.prepare_frame(frame, name, self.settings)
        t0 = time.perf_counter()
        prepared.image = self.backend.prepare_input(prepared.image)
        prepared.preprocess_ms += (time.perf_counter() - t0) * 1000.0
        return prepared

    def _answer(
        self,
        images: list[dict],
        started: float,
        decode: float,
        pre: float,
        queue: float,
        model_by_batch: dict[int, float],
        largest: int,
    ) -> dict:
        backend = self.backend
        return {
            "info": {
                "format_version": FORMAT_VERSION,
                "detector": backend.detector,
                "detector_version": backend.detector_version,
                "detection_completion_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "detector_metadata": backend.detector_metadata(),
                "timing_ms": {
                    "decode": round(decode, 3),
                    "preprocess": round(pre, 3),
                    "queue": round(queue, 3),
                    "model": round(sum(model_by_batch.values()), 3),
                    "total": round((time.perf_counter() - started) * 1000.0, 3),
                },
                "batch_size": largest,
            },
            "detection_categories": dict(DETECTION_CATEGORIES),
            "images": images,
        }


# -- request bodies ----------------------------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise RequestError(
                    413,
                    "body_too_large",
                    f"body of {declared} bytes exceeds {limit} (SCORING_MAX_BODY_BYTES)",
                )
        except ValueError:
            raise RequestError(400, "bad_request", "malformed Content-Length") from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, "body_too_large", f"body exceeds {limit} bytes (SCORING_MAX_BODY_BYTES)")
    return bytes(body)


def not_media(request: Request) -> str | None:
    """The Content-Type when it says the body is no image or clip (text, a form, JSON); else None."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type if content_type.startswith("text/") or content_type in NOT_IMAGE_TYPES else None


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


async def read_multipart(request: Request, body: bytes, max_files: int) -> list[tuple[str, str, bytes]]:
    """(field, filename, bytes) of every file part, in order."""

    async def stream():
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=max_files, max_fields=100)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if "too many files" in exc.message.lower():
            raise RequestError(
                413, "too_many_files", f"more than {max_files} files (SCORING_MAX_FILES)"
            ) from None
        raise RequestError(400, "bad_multipart", f"malformed multipart body: {exc.message}") from None
    parts = []
    try:
        for field, value in form.multi_items():
            if isinstance(value, UploadFile):
                parts.append((field, value.filename or "", await value.read()))
    finally:
        await form.close()
    return parts


# -- the app -----------------------------------------------------------------------------------------------
def create_app(settings: ScoringSettings | None = None, backend: Backend | None = None) -> FastAPI:
    settings = settings or load_settings()
    backend = backend or create_backend(settings)
    service = Service(settings, backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="TrapAlert scoring service",
        version=__version__,
        description="Camera-trap detector (MegaDetector output format). See docs/scoring.md.",
        lifespan=lifespan,
    )
    app.state.service = service

    async def check_api_key(key: str | None = Depends(_api_key_scheme)) -> None:
        expected = settings.api_key.get_secret_value() if settings.api_key else None
        if expected is None:
            return
        if key is None or not hmac.compare_digest(key.encode(), expected.encode()):
            raise RequestError(401, "unauthorized", f"missing or wrong {API_KEY_HEADER} header")

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, exc: RequestError):
        headers = {"WWW-Authenticate": "ApiKey"} if exc.status == 401 else None
        return JSONResponse({"code": exc.code, "detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(Unavailable)
    async def _unavailable(_request: Request, exc: Unavailable):
        return JSONResponse(
            {"code": exc.code, "detail": exc.detail},
            status_code=503,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.get("/healthz", response_model=HealthOut, tags=["health"], summary="Alive (the process answers)")
    async def healthz():
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=HealthOut,
        tags=["health"],
        summary="Model loaded and warmed up",
        responses={503: {"model": ErrorOut, "description": "not ready", "headers": _RETRY}},
    )
    async def readyz():
        service.require_ready()
        return {"status": "ready"}

    @app.get(
        "/v1/model",
        response_model=ModelOut,
        tags=["detector"],
        summary="The loaded model",
        dependencies=[Depends(check_api_key)],
        responses={401: DETECT_RESPONSES[401]},
    )
    async def model():
        out = backend.describe()
        out["ready"] = service.ready
        out["stats"] = service.batcher.stats.as_dict() | {
            "queued_images": service.batcher.admitted,
            "queue_limit": settings.queue_limit,
            "queued_bulk_images": service.batcher.admitted_bulk,
            "bulk_queue_limit": service.batcher.bulk_queue_limit,
            "max_wait_ms": settings.max_wait_ms,
        }
        return out

    @app.post(
        "/v1/detect",
        tags=["detector"],
        summary="Detect in one image",
        dependencies=[Depends(check_api_key)],
        responses=DETECT_RESPONSES,
        openapi_extra=DETECT_BODY,
        response_class=JSONResponse,
    )
    async def detect(
        request: Request,
        file: str | None = Query(
            None, description="name reported as images[0].file (default: the upload's file name, or 'image')"
        ),
    ):
        service.require_ready()
        body = await read_body(request, settings.max_body_bytes)
        if is_multipart(request):
            parts = await read_multipart(request, body, 1)
            chosen = [p for p in parts if p[0] == "file"] or parts
            if not chosen:
                raise RequestError(
                    400, "no_file", "multipart body has no file part (send the image in field 'file')"
                )
            _field, filename, data = chosen[0]
            name = file or filename or "image"
        else:
            content_type = not_media(request)
            if content_type is not None:
                raise RequestError(
                    415,
                    "unsupported_media_type",
                    f"Content-Type {content_type} is not an image; send "
                    "the image bytes (image/* or application/octet-stream) or multipart field 'file'",
                )
            data, name = body, file or "image"
        return JSONResponse(await service.detect([(name, data)], request_lane(request)))

    @app.post(
        "/v1/detect-video",
        tags=["detector"],
        summary="Detect in the sampled frames of one video clip",
        dependencies=[Depends(check_api_key)],
        responses=DETECT_RESPONSES,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "One clip (MP4, MOV, AVI): the raw bytes (video/* or "
                "application/octet-stream). Frames are sampled as scoring/video.py says.",
                "content": {
                    "video/mp4": {"schema": _IMAGE_BODY},
                    "video/quicktime": {"schema": _IMAGE_BODY},
                    "video/x-msvideo": {"schema": _IMAGE_BODY},
                    "application/octet-stream": {"schema": _IMAGE_BODY},
                },
            }
        },
        response_class=JSONResponse,
    )
    async def detect_video(
        request: Request,
        file: str = Query("video", max_length=500, description="name reported as images[0].file"),
        every_s: float | None = Query(None, gt=0, le=600, description="default SCORING_VIDEO_EVERY_S"),
        max_frames: int | None = Query(None, ge=2, description="default and cap SCORING_VIDEO_MAX_FRAMES"),
    ):
        service.require_ready()
        if not_media(request) is not None or is_multipart(request):
            raise RequestError(
                415, "unsupported_media_type", "send the clip's bytes (video/* or application/octet-stream)"
            )
        body = await read_body(request, settings.video_max_body_bytes)
        frames = min(max_frames or settings.video_max_frames, settings.video_max_frames)
        answer = await service.detect_video(
            body,
            file,
            every_s=every_s or settings.video_every_s,
            max_frames=frames,
            lane=request_lane(request),
        )
        return JSONResponse(answer)

    @app.post(
        "/v1/detect/batch",
        tags=["detector"],
        summary="Detect in several images",
        dependencies=[Depends(check_api_key)],
        responses=DETECT_RESPONSES,
        openapi_extra=BATCH_BODY,
        response_class=JSONResponse,
    )
    async def detect_batch(request: Request):
        service.require_ready()
        if not is_multipart(request):
            raise RequestError(400, "not_multipart", "send multipart/form-data with one file part per image")
        max_files = min(settings.max_files, settings.queue_limit)
        body = await read_body(request, settings.max_body_bytes)
        parts = await read_multipart(request, body, max_files)
        if not parts:
            raise RequestError(400, "no_file", "multipart body has no file part")
        if len(parts) > max_files:
            raise RequestError(413, "too_many_files", f"more than {max_files} files (SCORING_MAX_FILES)")
        files = [(filename or f"image-{i}", data) for i, (_f, filename, data) in enumerate(parts)]
        return JSONResponse(await service.detect(files, request_lane(request)))

    return app
