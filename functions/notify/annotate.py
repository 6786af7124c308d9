"""The photo rangers see: boxes, labels and confidences drawn on the original, scaled for a phone screen.

``annotate(jpeg_bytes, detections) -> jpeg_bytes``. Detections are MegaDetector-style (``category``,
``conf``, ``bbox`` = [x_min, y_min, width, height] normalized, origin top-left), as dicts or objects with
those attributes. Greyscale (infrared night) photos are drawn on in colour. EXIF orientation is applied
by OpenCV's decoder, so the boxes land where the detector saw the animal or person.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

# BGR colours per category: person red, vehicle orange, animal green; anything else yellow.
COLOURS: dict[str, tuple[int, int, int]] = {
    "person": (40, 40, 230),
    "vehicle": (0, 140, 255),
    "animal": (60, 200, 60),
}
DEFAULT_COLOUR = (0, 220, 255)
CATEGORY_NAMES = {"1": "animal", "2": "person", "3": "vehicle"}


class AnnotateError(ValueError):
    """The input is not a decodable image."""


def _field(d: Any, name: str) -> Any:
    return d[name] if isinstance(d, dict) else getattr(d, name)


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def annotate(
    jpeg: bytes,
    detections: Iterable[Any],
    *,
    max_side: int = 1280,
    quality: int = 85,
    min_conf: float = 0.0,
    label_names: dict[str, str] | None = None,
) -> bytes:
    """Draw the detections on the photo and return a JPEG no larger than ``max_side`` px on its long side."""
    data = np.frombuffer(jpeg, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # greyscale -> 3 channels
    if image is None:
        raise AnnotateError("not a decodable image")
    image = _fit(image, max_side)
    h, w = image.shape[:2]
    long_side = max(h, w)
    thickness = max(2, round(long_side / 400))
    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = max(0.5, long_side / 1600)
    font_thickness = max(1, thickness - 1)
    names = {**CATEGORY_NAMES, **(label_names or {})}

    for det in sorted(detections, key=lambda d: float(_field(d, "conf"))):  # most confident drawn last
        conf = float(_field(det, "conf"))
        if conf < min_conf:
            continue
        category = str(_field(det, "category"))
        category = names.get(category, category)
        bbox: Sequence[float] = _field(det, "bbox")
        x, y, bw, bh = (float(v) for v in bbox)
        x1, y1 = int(round(max(0.0, x) * w)), int(round(max(0.0, y) * h))
        x2, y2 = int(round(min(1.0, x + bw) * w)), int(round(min(1.0, y + bh) * h))
        x1, y1 = min(x1, w - 1), min(y1, h - 1)
        x2, y2 = max(x1 + 1, min(x2, w - 1)), max(y1 + 1, min(y2, h - 1))
        colour = COLOURS.get(category, DEFAULT_COLOUR)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)

        label = f"{category} {conf:.0%}"
        (tw, th), baseline = cv2.getTextSize(label, font, font_scale, font_thickness)
        pad = max(2, thickness)
        # label above the box, or inside it when the box touches the top edge
        ty = y1 - pad if y1 - th - baseline - 2 * pad >= 0 else min(h - 1, y1 + th + baseline + pad)
        tx = min(x1, max(0, w - tw - 2 * pad))
        cv2.rectangle(
            image, (tx, ty - th - baseline - pad), (tx + tw + 2 * pad, ty + pad), colour, cv2.FILLED
        )
        cv2.putText(
            image,
            label,
            (tx + pad, ty - baseline // 2),
            font,
            font_scale,
            (255, 255, 255),
            font_thickness,
            cv2.LINE_AA,
        )

    ok, out = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - encoding a valid BGR image does not fail
        raise AnnotateError("JPEG encoding failed")
    return out.tobytes()
