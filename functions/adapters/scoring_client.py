"""HTTP client of the scoring service (``POST /v1/detect``, MegaDetector output format).

Where each outcome is decided:

* **Transient** (the service may answer later): connection refused/reset, timeouts, 429/503 (Retry-After is
  honoured, capped at ``retry_after_max_s``), other 5xx. Retried here with exponential backoff and full
  jitter within ``retry_budget_s`` in total; after that :class:`ScoringUnavailable` is raised so the queue
  message fails and the Functions host retries it (and finally moves it to the poison queue).
* **Permanent for this image**: the answer's ``failure`` (``unreadable_image: ...``, ``empty_image``,
  ``too_many_pixels``) or 413 (too large): returned as ``ImageScore.failure`` with ``permanent = True``.
* ``inference_failed`` (the model raised on the image) is raised as :class:`ScoringError`: it may be a GPU
  hiccup, so the message is retried by the host and lands in the poison queue for ops rather than being
  dropped silently.
* Other 4xx (401 wrong key, 400 bad request) and malformed answers: :class:`ScoringError`, not retried here.

Metrics (functions/ops/metrics.py), where the answer arrives: ``trapalert.images.scored`` (status ``scored``,
or ``failed`` for every answer that is not a scoring of the image) and ``trapalert.scoring.duration`` (the
answered request's round trip). Transient answers that are retried are not counted.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..domain.rules import CATEGORY_NAMES
from ..notify.http import parse_retry_after
from ..ops import metrics

log = logging.getLogger(__name__)
_Answer = TypeVar("_Answer", bound=BaseModel)

PERMANENT_FAILURES = ("empty_image", "unreadable_image", "too_many_pixels")
LANE_HEADER = "X-TrapAlert-Lane"  # the scoring service's lanes: live (default) | bulk


class ScoringError(RuntimeError):
    """The scoring call failed in a way retrying right now will not fix (the queue message fails)."""


class ScoringUnavailable(ScoringError):
    """The service stayed unreachable or overloaded for the whole retry budget."""


# -- response models (MegaDetector batch output format) --------------------------------------------------
class MDDetection(BaseModel):
    model_config = ConfigDict(extra="ignore")

    category: str
    conf: float = Field(ge=0, le=1)
    bbox: tuple[float, float, float, float]


class MDImage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file: str = ""
    detections: list[MDDetection] | None = None
    night: bool | None = None
    width: int | None = None
    height: int | None = None
    failure: str | None = None


class MDInfo(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    detector: str = "unknown"
    detector_version: str | None = None
    format_version: str | None = None
    timing_ms: dict[str, float] | None = None


class MDResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    info: MDInfo
    detection_categories: dict[str, str] = Field(default_factory=dict)
    images: list[MDImage] = Field(min_length=1)


@dataclass
class ImageScore:
    """The result for one image. ``failure`` set: the detector cannot read these bytes (permanent)."""

    detector: str
    detector_version: str | None
    detections: list[MDDetection] = field(default_factory=list)
    night: bool | None = None
    failure: str | None = None
    model_ms: float | None = None
    service_ms: float | None = None  # the service's own time for the request (info.timing_ms.total)
    attempts: int = 1

    @property
    def permanent_failure(self) -> bool:
        return self.failure is not None


@dataclass
class ScoringClient:
    base_url: str
    api_key: str | None = None
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 30.0
    retry_budget_s: float = 20.0
    backoff_base_s: float = 0.25
    backoff_max_s: float = 4.0
    retry_after_max_s: float = 10.0
    transport: httpx.BaseTransport | None = None
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            headers = {"X-API-Key": self.api_key} if self.api_key else {}
            self._client = httpx.Client(
                base_url=self.base_url.rstrip("/"),
                headers=headers,
                transport=self.transport,
                timeout=httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def detect(
        self,
        image: bytes,
        filename: str = "image.jpg",
        content_type: str = "image/jpeg",
        *,
        lane: str = "live",
    ) -> ImageScore:
        """Score one image (see the module docstring for what is retried and what is raised). ``lane="bulk"``
        (uploads, batch scoring, re-scoring) asks the service to serve it after every waiting live photo
        (header ``X-TrapAlert-Lane``, scoring/batching.py)."""
        url = f"/v1/detect?file={quote(filename, safe='')}"
        return self._post(url, image, content_type, lambda r, a: self._parse(r, filename, a), lane)

    def detect_video(
        self,
        clip: bytes,
        filename: str = "clip.mp4",
        content_type: str = "video/mp4",
        *,
        every_s: float | None = None,
        max_frames: int | None = None,
        lane: str = "live",
    ) -> VideoScore:
        """Score the sampled frames of one clip (``POST /v1/detect-video``, scoring/video.py); retried and
        raised as :meth:`detect`. A clip the service cannot use comes back as ``failure`` (permanent)."""
        params = [f"file={quote(filename, safe='')}"]
        if every_s is not None:
            params.append(f"every_s={every_s:g}")
        if max_frames is not None:
            params.append(f"max_frames={int(max_frames)}")
        url = "/v1/detect-video?" + "&".join(params)
        return self._post(url, clip, content_type, lambda r, a: _parse_video(r, filename, a), lane)

    def _post(self, url: str, content: bytes, content_type: str, parse, lane: str = "live"):
        deadline = time.monotonic() + self.retry_budget_s
        attempt = 0
        while True:
            attempt += 1
            wait: float | None
            sent = time.monotonic()
            try:
                response = self.client.post(
                    url, content=content, headers={"Content-Type": content_type, LANE_HEADER: lane}
                )
            except httpx.TransportError as exc:  # connect/read timeouts, refused, reset, protocol
                problem, wait = f"{type(exc).__name__}: {exc}", None
            else:
                status = response.status_code
                took = time.monotonic() - sent
                if status == 200:
                    try:
                        score = parse(response, attempt)
                    except ScoringError:
                        _answered(took, None, "failed")
                        raise
                    _answered(took, score.detector, "failed" if score.permanent_failure else "scored")
                    return score
                if status == 413:
                    _answered(took, None, "failed")
                    failure = f"too_large: {_detail(response)}"
                    if url.startswith("/v1/detect-video"):
                        return VideoScore("unknown", None, failure=failure, attempts=attempt)
                    return ImageScore("unknown", None, failure=failure, attempts=attempt)
                if status in (429, 503) or status >= 500:
                    problem = f"HTTP {status}: {_detail(response)}"
                    wait = _retry_after(response, self.retry_after_max_s) if status in (429, 503) else None
                else:
                    _answered(took, None, "failed")
                    raise ScoringError(f"scoring service answered HTTP {status}: {_detail(response)}")
            if wait is None:
                cap = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
                wait = random.uniform(cap / 2, cap)  # jitter: workers that failed together retry apart
            else:
                wait = wait + random.uniform(0, min(0.25, wait / 4))
            remaining = deadline - time.monotonic()
            if wait > remaining:
                raise ScoringUnavailable(
                    f"scoring service unavailable after {attempt} attempt(s) in "
                    f"{self.retry_budget_s:g} s: {problem}"
                )
            log.warning("scoring attempt %d failed (%s); retrying in %.2f s", attempt, problem, wait)
            time.sleep(wait)

    def _parse(self, response: httpx.Response, filename: str, attempts: int) -> ImageScore:
        body = _validated(MDResponse, response, "format")
        img = body.images[0]
        timing = body.info.timing_ms or {}
        score = ImageScore(
            body.info.detector,
            body.info.detector_version,
            night=img.night,
            model_ms=timing.get("model"),
            service_ms=timing.get("total"),
            attempts=attempts,
        )
        score.failure = _failure(img, PERMANENT_FAILURES, filename)
        if score.failure is not None:
            return score
        known = _known(body.detection_categories)
        score.detections = [d for d in img.detections if d.category in known]
        return score


# -- video clips (POST /v1/detect-video: MegaDetector's video output format plus per-frame records) -------
VIDEO_PERMANENT_FAILURES = ("empty_video", "unreadable_video", "video_too_long", "too_many_pixels")


class MDVideoDetection(MDDetection):
    frame_number: int = Field(ge=0)
    frame_time_s: float | None = Field(None, ge=0)


class MDFrame(BaseModel):
    model_config = ConfigDict(extra="ignore")

    frame_number: int = Field(ge=0)
    time_s: float = Field(ge=0)
    night: bool | None = None
    jpeg: str | None = None  # base64 JPEG of the frame (the first frame, and every frame with a detection)
    failure: str | None = None


class MDVideo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file: str = ""
    detections: list[MDVideoDetection] | None = None
    failure: str | None = None
    frame_rate: float | None = None
    frames_processed: list[int] = Field(default_factory=list)
    frames: list[MDFrame] = Field(default_factory=list)
    video: dict = Field(default_factory=dict)


class MDVideoResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    info: MDInfo
    detection_categories: dict[str, str] = Field(default_factory=dict)
    images: list[MDVideo] = Field(min_length=1, max_length=1)


@dataclass
class FrameScore:
    """One sampled frame: its number and time in the clip, its detections, its JPEG when the service sent
    one (the first frame and every frame with a detection)."""

    frame_number: int
    time_s: float
    detections: list[MDDetection] = field(default_factory=list)
    night: bool | None = None
    jpeg: bytes | None = None

    def as_image_score(self, clip: VideoScore) -> ImageScore:
        return ImageScore(clip.detector, clip.detector_version, list(self.detections), self.night)


@dataclass
class VideoScore:
    """The result for one clip. ``failure`` set: the service cannot use the clip (permanent)."""

    detector: str
    detector_version: str | None
    frames: list[FrameScore] = field(default_factory=list)
    frame_rate: float | None = None
    video: dict = field(default_factory=dict)
    failure: str | None = None
    service_ms: float | None = None
    attempts: int = 1

    @property
    def permanent_failure(self) -> bool:
        return self.failure is not None

    @property
    def night(self) -> bool | None:
        nights = [f.night for f in self.frames if f.night is not None]
        return any(nights) if nights else None


def _parse_video(response: httpx.Response, filename: str, attempts: int) -> VideoScore:
    body = _validated(MDVideoResponse, response, "video format")
    clip = body.images[0]
    score = VideoScore(
        body.info.detector,
        body.info.detector_version,
        frame_rate=clip.frame_rate,
        video=clip.video,
        service_ms=(body.info.timing_ms or {}).get("total"),
        attempts=attempts,
    )
    score.failure = _failure(clip, VIDEO_PERMANENT_FAILURES, filename)
    if score.failure is not None:
        return score
    known = _known(body.detection_categories)
    frames = {f.frame_number: FrameScore(f.frame_number, f.time_s, night=f.night) for f in clip.frames}
    for f in clip.frames:
        if f.jpeg:
            try:
                frames[f.frame_number].jpeg = base64.b64decode(f.jpeg, validate=True)
            except ValueError:
                raise ScoringError(f"frame {f.frame_number} of {filename}: JPEG is not base64") from None
    for d in clip.detections:
        if d.category not in known:
            continue
        frame = frames.get(d.frame_number)
        if frame is None:
            frame = frames[d.frame_number] = FrameScore(d.frame_number, d.frame_time_s or 0.0)
        frame.detections.append(MDDetection(category=d.category, conf=d.conf, bbox=d.bbox))
    score.frames = sorted(frames.values(), key=lambda f: f.frame_number)
    return score


def _validated(model: type[_Answer], response: httpx.Response, what: str) -> _Answer:
    """The service's 200 answer as ``model`` (ScoringError when it is not that format)."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ScoringError(
            f"scoring service answer is not the MegaDetector {what}: "
            f"{exc.errors()[0].get('loc')} {exc.errors()[0].get('msg')}"
        ) from None


def _failure(entry: MDImage | MDVideo, permanent: tuple[str, ...], filename: str) -> str | None:
    """The entry's failure when it is one of the ``permanent`` codes (None: it was scored); any other
    failure raises ScoringError (the message fails and is retried)."""
    if entry.failure is None and entry.detections is not None:
        return None
    failure = entry.failure or "unknown: detections null without a failure"
    if failure.split(":", 1)[0].strip() not in permanent:
        raise ScoringError(f"scoring failed for {filename}: {failure}")
    return failure


def _known(detection_categories: dict[str, str]) -> set[str]:
    """The categories the answer declares, else MegaDetector's own."""
    return set(detection_categories) or set(CATEGORY_NAMES)


def _answered(seconds: float, model: str | None, status: str) -> None:
    """Count the detector's answer for one image (trapalert.images.scored, trapalert.scoring.duration)."""
    metrics.image_scored(model=model, status=status, seconds=seconds)


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
        if isinstance(data, dict):
            return str(data.get("detail") or data.get("code") or data)[:300]
    except ValueError:
        pass
    return response.text[:300]


def _retry_after(response: httpx.Response, cap: float) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"), cap=cap)
