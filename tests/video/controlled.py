"""The controlled detector of tests/support/tiny_models.py, read with OpenCV/numpy instead of TensorFlow, as
a scoring backend for the in-process scoring app: the video tests need a detector that sees *which* frame
carries a detection, and TensorFlow (3 s import, 700 MB) is more than these tests need. The decoding is the
one of tiny_models._decode_graph (area resize to the cell grid, central sub-cells, marker row, slots)."""

from __future__ import annotations

import cv2
import numpy as np

from scoring.backends.null import NullBackend
from scoring.schemas import Detection, clip_box_xyxy
from tests.support.tiny_models import (
    CAT_STEP,
    COLS,
    LOW,
    MARKER,
    MARKER_TOLERANCE,
    ROWS,
    SLOTS,
    SPAN,
    SUB,
    encode_detections,
)


def read_code(img: np.ndarray) -> list[Detection]:
    grey = img.astype(np.float32).mean(axis=2)
    grid = cv2.resize(grey, (COLS * SUB, ROWS * SUB), interpolation=cv2.INTER_AREA)
    cells = grid.reshape(ROWS, SUB, COLS, SUB)[:, 1:3, :, 1:3].mean(axis=(1, 3))
    if not np.all(np.abs(cells[ROWS - 1] - np.array(MARKER)) < MARKER_TOLERANCE):
        return []
    out = []
    for slot in cells[:SLOTS]:
        category = int(np.clip(round((slot[0] - LOW) / CAT_STEP), 0, 3))
        if category < 1:
            continue
        conf, x, y, w, h = (float(np.clip((v - LOW) / SPAN, 0.0, 1.0)) for v in slot[1:])
        box = clip_box_xyxy(x, y, x + w, y + h)
        if box is not None:
            out.append(Detection(str(category), conf, box))
    return sorted(out, key=lambda d: -d.conf)


class ControlledBackend(NullBackend):
    name = "controlled"

    def __init__(self, settings):
        super().__init__(settings)
        self.detector, self.detector_version = "controlled", "controlled-1"

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        return [read_code(img) for img in images]


def write_clip(path, fourcc: str, frames: list[np.ndarray], fps: float) -> bytes:
    """A clip of ``frames`` (BGR, all the same size) written by OpenCV; its bytes."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for f in frames:
        writer.write(f)
    writer.release()
    return path.read_bytes()


def blank_frame(size=(320, 240), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 200, size=(size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)


def clip_frames(seconds: float, fps: float, coded: dict[int, list], size=(320, 240)) -> list[np.ndarray]:
    """``seconds`` of frames; the frames numbered in ``coded`` carry those detections, the others none."""
    blank = blank_frame(size)
    return [
        encode_detections(coded[i], size) if i in coded else blank for i in range(int(round(seconds * fps)))
    ]
