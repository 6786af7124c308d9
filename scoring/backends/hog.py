"""The fallback detector: OpenCV's built-in HOG + linear SVM people detector (Dalal & Triggs).

It needs no download, so the stack runs anywhere, but it is *not* a camera-trap detector: it finds upright,
full-body people of at least ~64x128 pixels (after downscaling to SCORING_HOG_MAX_SIDE), mostly in daylight.
It never reports animals or vehicles. Its SVM margin is mapped to a confidence with a logistic function,
``conf = 1 / (1 + exp(-2 (margin - 0.5)))`` (margin 0.5 -> 0.5, 1.0 -> 0.73, 1.5 -> 0.88).
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from scoring.backends.base import Backend
from scoring.schemas import Detection, clip_box_xyxy

log = logging.getLogger("scoring.backends.hog")

HOG_LIMITS = [
    "fallback detector: OpenCV HOG people detector, not MegaDetector; "
    "configure SCORING_MODEL_PATH for real use",
    "finds people only (category 2): never animals or vehicles",
    "upright, full-body, mostly unoccluded people; misses crouching, partial, or lying people",
    "people must be at least about 64x128 pixels after downscaling to SCORING_HOG_MAX_SIDE",
    "daylight contrast; weak on infrared night frames and in vegetation",
    "confidence is a logistic mapping of the SVM margin, not a calibrated probability",
]


def margin_to_conf(margin: float) -> float:
    return 1.0 / (1.0 + math.exp(-2.0 * (float(margin) - 0.5)))


class HogBackend(Backend):
    name = "hog"
    supports_batch = False

    def __init__(self, settings, *, fallback: bool = False):
        super().__init__(settings)
        self.fallback = fallback
        self.detector = "opencv-hog-people"
        self.detector_version = f"opencv-{cv2.__version__}"
        self.limits = list(HOG_LIMITS)
        self._typical, self._conservative = 0.7, 0.5
        self._hog: cv2.HOGDescriptor | None = None

    def load(self) -> None:
        if not hasattr(cv2, "HOGDescriptor"):
            from scoring.errors import ModelLoadError

            raise ModelLoadError(
                f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 removed it): install "
                "opencv-python-headless<5 or configure SCORING_MODEL_PATH"
            )
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self._hog = hog

    def _detect_one(self, img: np.ndarray) -> list[Detection]:
        assert self._hog is not None, "load() first"
        h, w = img.shape[:2]
        scale = min(1.0, self.settings.hog_max_side / max(h, w))
        small = (
            img
            if scale >= 1.0
            else cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        )
        sh, sw = small.shape[:2]
        if sh < 128 or sw < 64:
            return []
        stride = self.settings.hog_win_stride
        rects, weights = self._hog.detectMultiScale(
            small,
            hitThreshold=self.settings.hog_hit_threshold,
            winStride=(stride, stride),
            padding=(8, 8),
            scale=self.settings.hog_scale,
        )
        out = []
        for (x, y, bw, bh), margin in zip(np.asarray(rects).reshape(-1, 4), np.ravel(weights), strict=False):
            box = clip_box_xyxy(x / sw, y / sh, (x + bw) / sw, (y + bh) / sh)
            if box is not None:
                out.append(Detection("2", margin_to_conf(margin), box))
        return self.finish(out)

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        return [self._detect_one(img) for img in images]

    def note_for(self, detections: list[Detection], night: bool) -> str | None:
        """Nothing found by the fallback says little: say so, and how to run MegaDetector instead."""
        if not self.fallback or detections:
            return None
        seen = "a night (infrared or dark) photo" if night else "this photo"
        return (
            f"The default detector found nothing in {seen}, but it is OpenCV's HOG people detector, not "
            "MegaDetector: it sees only upright, full-body people in daylight, never animals or vehicles, "
            "and misses most camera-trap and night photos. Configure MegaDetector: `trapalert model download "
            "mdv1000-cedar`, `trapalert model export mdv1000-cedar`, then SCORING_MODEL_PATH="
            "models/md_v1000.0.0-cedar.onnx (docs/scoring.md)."
        )

    def input_description(self) -> dict:
        return {
            "dtype": "uint8",
            "color": "BGR",
            "shape": "[H, W, 3], one image per call",
            "hog_max_side": self.settings.hog_max_side,
            "window": [64, 128],
            "scale": self.settings.hog_scale,
            "win_stride": self.settings.hog_win_stride,
        }
