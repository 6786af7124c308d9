"""The null backend: a fixed answer, no model. It measures the service without model time (benchmarks),
lets pipeline tests choose what the detector "sees", and simulates a slow model for overload drills.

SCORING_NULL_RESULT: "empty" (no detection), "person" (one person at 0.95), or a JSON list such as
``[{"category": "1", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4]}]``.
"""

from __future__ import annotations

import json
import time

import numpy as np

from scoring.backends.base import Backend
from scoring.schemas import DETECTION_CATEGORIES, Detection

PERSON = Detection("2", 0.95, (0.4, 0.3, 0.2, 0.5))


def parse_null_result(value: str) -> list[Detection]:
    """Parse SCORING_NULL_RESULT; raise ValueError saying what is wrong."""
    text = value.strip()
    if text == "empty":
        return []
    if text == "person":
        return [PERSON]
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError('must be "empty", "person" or a JSON list of detections') from None
    if not isinstance(items, list):
        raise ValueError("a JSON value here must be a list of detections")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"category", "conf", "bbox"}:
            raise ValueError(f"detection {i}: must be an object with category, conf, bbox")
        category = str(item.get("category"))
        if category not in DETECTION_CATEGORIES:
            raise ValueError(f"detection {i}: category must be one of {sorted(DETECTION_CATEGORIES)}")
        try:
            conf = float(item["conf"])
            x, y, w, h = (float(v) for v in item["bbox"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"detection {i}: conf must be a number and bbox 4 numbers") from None
        if not 0 <= conf <= 1:
            raise ValueError(f"detection {i}: conf must be within 0..1")
        if min(x, y, w, h) < 0 or x + w > 1.0001 or y + h > 1.0001:
            raise ValueError(f"detection {i}: bbox must be normalized [x, y, w, h] inside the image")
        out.append(Detection(category, conf, (x, y, w, h)))
    return out


class NullBackend(Backend):
    name = "null"
    supports_batch = True

    def __init__(self, settings):
        super().__init__(settings)
        self.result = parse_null_result(settings.null_result)
        self.detector = "null"
        self.detector_version = "null-1"
        self.limits = ["returns the fixed SCORING_NULL_RESULT for every readable image; no model runs"]

    def load(self) -> None:
        if self.settings.null_load_delay_s:
            time.sleep(self.settings.null_load_delay_s)

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        if self.settings.null_delay_ms:
            time.sleep(self.settings.null_delay_ms / 1000.0)
        # The fixed result is not filtered by the output threshold: it is exactly what was configured.
        return [list(self.result) for _ in images]

    def input_description(self) -> dict:
        return {"dtype": "uint8", "color": "BGR", "shape": "any", "note": "images are decoded but not used"}
