"""Named errors of the scoring service; each maps to one HTTP answer (see scoring.app).

Per-image problems are *not* HTTP errors: they become ``failure`` strings in a 200 answer, because they
are permanent (retrying the same bytes gives the same result). Their codes are stable and part of the API.
"""

from __future__ import annotations

# Stable failure codes: a failure string is "<code>: <human readable detail>".
EMPTY_IMAGE = "empty_image"  # zero bytes
UNREADABLE_IMAGE = "unreadable_image"  # not an image, unsupported format, corrupt or truncated
TOO_MANY_PIXELS = "too_many_pixels"  # width*height above SCORING_MAX_PIXELS (decompression bombs)
INFERENCE_FAILED = "inference_failed"  # the model raised on this image (logged with details)

FAILURE_CODES = (EMPTY_IMAGE, UNREADABLE_IMAGE, TOO_MANY_PIXELS, INFERENCE_FAILED)


class Failure(Exception):
    """A permanent problem with the bytes of one input; becomes ``"detections": null, "failure": "<code>:
    <detail>"``. Each kind names the stable ``codes`` it may carry."""

    codes: tuple[str, ...] = ()

    def __init__(self, code: str, detail: str):
        assert code in self.codes, code
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def failure(self) -> str:
        return f"{self.code}: {self.detail}"


class ImageFailure(Failure):
    """A permanent per-image problem (one of FAILURE_CODES)."""

    codes = FAILURE_CODES


class ModelLoadError(RuntimeError):
    """The configured model cannot be used; the message names the file and the expected signature."""


class RequestError(Exception):
    """A problem with the request as a whole (4xx). ``code`` is stable, ``status`` the HTTP status."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class Unavailable(Exception):
    """The service cannot take the work now (503 + Retry-After): overloaded or model not ready."""

    def __init__(self, code: str, detail: str, retry_after_s: int):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after_s = max(1, int(retry_after_s))
