"""The API bodies: the MegaDetector batch output format (format_version 1.4) and the service's own bodies.

A detection box is ``[x_min, y_min, width, height]``, normalized to 0..1 of the image as sent (after EXIF
orientation), origin top-left. ``conf`` has 3 decimals and box coordinates 4, as MegaDetector writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = "1.4"
DETECTION_CATEGORIES: dict[str, str] = {"1": "animal", "2": "person", "3": "vehicle"}
CONF_DIGITS = 3
COORD_DIGITS = 4


@dataclass(frozen=True, slots=True)
class Detection:
    """One detection as every backend returns it (already normalized and mapped to a category)."""

    category: str
    conf: float
    bbox: tuple[float, float, float, float]  # x_min, y_min, width, height in 0..1

    def to_json(self) -> dict:
        return {
            "category": self.category,
            "conf": round(float(self.conf), CONF_DIGITS),
            "bbox": [round(float(v), COORD_DIGITS) for v in self.bbox],
        }


def clip_box_xyxy(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float] | None:
    """Clip a normalized (x0, y0, x1, y1) box to the image; return (x, y, w, h), or None if it is empty."""
    x0, x1 = max(0.0, min(1.0, x0)), max(0.0, min(1.0, x1))
    y0, y1 = max(0.0, min(1.0, y0)), max(0.0, min(1.0, y1))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


class DetectionOut(BaseModel):
    category: str = Field(description='"1" animal, "2" person, "3" vehicle', examples=["2"])
    conf: float = Field(ge=0, le=1, examples=[0.93])
    bbox: list[float] = Field(
        min_length=4, max_length=4, description="[x_min, y_min, width, height], normalized, origin top-left"
    )


class ImageOut(BaseModel):
    file: str
    detections: list[DetectionOut] | None = Field(description="null when the image failed")
    night: bool | None = Field(None, description="infrared/greyscale or low-light frame (null on failure)")
    width: int | None = None
    height: int | None = None
    failure: str | None = Field(
        None,
        description="null, or '<code>: <detail>' with code one of empty_image, unreadable_image, "
        "too_many_pixels, inference_failed; a failure is permanent for these bytes",
    )
    note: str | None = Field(
        None,
        description="only when the HOG fallback found nothing: what it cannot see and how to configure "
        "MegaDetector",
    )


class TimingMs(BaseModel):
    decode: float
    preprocess: float
    queue: float
    model: float
    total: float


class InfoOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    format_version: str = FORMAT_VERSION
    detector: str
    detector_version: str
    detection_completion_time: str = Field(description="UTC, 'YYYY-MM-DD HH:MM:SS' as MegaDetector writes it")
    detector_metadata: dict
    timing_ms: TimingMs
    batch_size: int = Field(description="largest model batch the request's images ran in (0: none ran)")


class DetectResponse(BaseModel):
    """MegaDetector output format: open it in Timelapse and the other tools of the field."""

    info: InfoOut
    detection_categories: dict[str, str] = Field(default_factory=lambda: dict(DETECTION_CATEGORIES))
    images: list[ImageOut]


class ErrorOut(BaseModel):
    """Body of every 4xx/5xx answer."""

    code: str = Field(description="stable machine-readable code, e.g. unauthorized, overloaded, not_ready")
    detail: str


class ModelOut(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    backend: str
    detector: str
    detector_version: str
    ready: bool
    fallback: bool = Field(description="true when the HOG fallback runs because no model is configured")
    detection_categories: dict[str, str]
    typical_detection_threshold: float
    conservative_detection_threshold: float
    output_threshold: float
    supports_batch: bool
    max_batch: int
    input: dict
    limits: list[str]
    model_path: str | None = None
    model_sha256: str | None = None
    stats: dict


class HealthOut(BaseModel):
    status: str
