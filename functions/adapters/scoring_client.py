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

import logging
import random
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..notify.http import parse_retry_after
from ..ops import metrics

log = logging.getLogger(__name__)

PERMANENT_FAILURES = ("empty_image", "unreadable_image", "too_many_pixels")


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
        self, image: bytes, filename: str = "image.jpg", content_type: str = "image/jpeg"
    ) -> ImageScore:
        """Score one image (see the module docstring for what is retried and what is raised)."""
        deadline = time.monotonic() + self.retry_budget_s
        attempt = 0
        url = f"/v1/detect?file={quote(filename, safe='')}"
        while True:
            attempt += 1
            wait: float | None
            sent = time.monotonic()
            try:
                response = self.client.post(url, content=image, headers={"Content-Type": content_type})
            except httpx.TransportError as exc:  # connect/read timeouts, refused, reset, protocol
                problem, wait = f"{type(exc).__name__}: {exc}", None
            else:
                status = response.status_code
                took = time.monotonic() - sent
                if status == 200:
                    try:
                        score = self._parse(response, filename, attempt)
                    except ScoringError:
                        _answered(took, None, "failed")
                        raise
                    _answered(took, score.detector, "failed" if score.permanent_failure else "scored")
                    return score
                if status == 413:
                    _answered(took, None, "failed")
                    return ImageScore(
                        "unknown", None, failure=f"too_large: {_detail(response)}", attempts=attempt
                    )
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
        try:
            body = MDResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise ScoringError(
                f"scoring service answer is not the MegaDetector format: "
                f"{exc.errors()[0].get('loc')} {exc.errors()[0].get('msg')}"
            ) from None
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
        if img.failure is not None or img.detections is None:
            failure = img.failure or "unknown: detections null without a failure"
            code = failure.split(":", 1)[0].strip()
            if code not in PERMANENT_FAILURES:
                raise ScoringError(f"scoring failed for {filename}: {failure}")
            score.failure = failure
            return score
        known = set(body.detection_categories) or {"1", "2", "3"}
        score.detections = [d for d in img.detections if d.category in known]
        return score


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
