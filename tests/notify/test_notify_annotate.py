"""The annotated photo: boxes and labels drawn with OpenCV, scaled for a phone, JPEG out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from functions.notify import DetectionRef
from functions.notify.annotate import AnnotateError, annotate
from tests.notify.helpers import make_jpeg


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_large_photo_is_scaled_and_boxes_drawn_where_detected():
    src = make_jpeg(2560, 1920)
    det = DetectionRef(category="person", conf=0.91, bbox=(0.25, 0.25, 0.5, 0.5))
    out = annotate(src, [det])
    img = decode(out)
    assert img.shape == (960, 1280, 3)
    plain = cv2.resize(decode(src), (1280, 960), interpolation=cv2.INTER_AREA)
    diff = np.abs(img.astype(int) - plain.astype(int)).sum(axis=2)
    # the box outline (x=320..960, y=240..720) changed; a corner far from any box did not (beyond JPEG noise)
    assert diff[240:720, 318:323].mean() > 100  # left edge of the box
    assert diff[900:950, 1200:1270].mean() < 15
    # person boxes are red (BGR): the left edge is reddish
    edge = img[300:700, 319:322].reshape(-1, 3).mean(axis=0)
    assert edge[2] > 150 and edge[2] > edge[0] + 60


def test_small_photo_keeps_its_size_and_several_categories_are_drawn():
    src = make_jpeg(640, 480)
    dets = [
        {"category": "vehicle", "conf": 0.8, "bbox": [0.05, 0.1, 0.3, 0.3]},
        {"category": "3", "conf": 0.6, "bbox": [0.6, 0.6, 0.35, 0.35]},  # MegaDetector numeric category
        {"category": "animal", "conf": 0.95, "bbox": [0.0, 0.0, 1.2, 1.2]},  # clipped to the frame
    ]
    img = decode(annotate(src, dets))
    assert img.shape == (480, 640, 3)
    assert not np.array_equal(img, decode(src))


def test_greyscale_night_photo_gets_colour_boxes():
    src = make_jpeg(1600, 1200, grey=True)
    assert decode(src)[..., 0].tolist() == decode(src)[..., 2].tolist()  # grey
    img = decode(annotate(src, [DetectionRef(category="person", conf=0.7, bbox=(0.3, 0.3, 0.3, 0.3))]))
    assert img.shape == (960, 1280, 3)
    b, g, r = (img[..., i].astype(int) for i in range(3))
    assert ((r - b) > 80).sum() > 500  # red pixels exist now


def test_no_detections_only_rescales():
    src = make_jpeg(1920, 1080)
    img = decode(annotate(src, [], max_side=960))
    assert img.shape == (540, 960, 3)


def test_not_an_image():
    with pytest.raises(AnnotateError):
        annotate(b"not a jpeg", [])
    with pytest.raises(AnnotateError):
        annotate(b"", [])
