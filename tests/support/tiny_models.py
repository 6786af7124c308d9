"""Tiny, *controllable* detectors with MegaDetector's exact signatures, and photos that tell them what to see.

Real weights cannot be downloaded here, so the tests build small TensorFlow models whose output is decoded
from the image content. A test crafts a photo with ``make_detection_image("2", 0.93, (0.1, 0.2, 0.3, 0.4))``
and the controlled detector (frozen graph or SavedModel) reports exactly that detection, through the real
loading code, the real preprocessing and the real service.

Signatures (identical to the TF Object Detection API exports MegaDetector uses):

* frozen graph (``build_controlled_frozen_graph``): input ``image_tensor:0`` uint8 [N,H,W,3]; outputs
  ``detection_boxes:0`` [N,K,4] normalized ``[ymin, xmin, ymax, xmax]``, ``detection_scores:0`` [N,K],
  ``detection_classes:0`` [N,K] (float, 1-based), ``num_detections:0`` [N] (float). K = 3.
* SavedModel (``build_controlled_saved_model``): signature ``serving_default``, input ``input_tensor``
  uint8 [N,H,W,3] (or [1,H,W,3] with ``batch_size=1``, as many OD API exports have), same four outputs.
  Detections are sorted by score, padding entries have score 0, as the OD API does.

The encoding (survives JPEG compression, resizing and greyscale conversion):

* The image is a grid of ``ROWS`` x ``COLS`` (4 x 6) flat cells, in coordinates relative to the image size.
* The model reads each cell as the mean over R, G, B of the central half of the cell (an area resize to a
  16 x 24 grid, then the 2 x 2 central sub-cells of every 4 x 4 block), so block edges, chroma subsampling
  and JPEG ringing do not matter; a flat block's mean survives JPEG to about +-1 grey level.
* Rows 0, 1, 2 are detection slots. Cells of a slot: ``[category, conf, x, y, w, h]``. A value f in 0..1
  is the grey level ``16 + 224 f`` (1 level = 0.0045); the category c in 0..3 is the level ``16 + 56 c``
  (0 = empty slot). Measured: at JPEG quality >= 80 (default 90) the cell means come back exact, so conf
  and the [x, y, w, h] the service reports are within +-0.005; at quality 70 within +-0.01.
* Row 3 is a marker ``[40, 216, 40, 216, 40, 216]``. Without it (any ordinary photo) the detector sees
  nothing, so "blank" test photos are simply images without the code (e.g. ``make_blank_image()``).
* Day photos have colour: a cell of level v is painted (R, G, B) = (v + 12, v, v - 12), which keeps the
  channel mean v but makes the frame colour (the service reports ``night: false``). ``night=True`` paints
  pure grey, which the service's night detection reports as ``night: true`` (infrared frames are greyscale).

The code does not survive CLAHE (``SCORING_CLAHE`` must stay ``off``, the default) or crops.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

ROWS, COLS = 4, 6
SLOTS = 3  # K: detections per image
SUB = 4  # sub-cells per cell side in the model's area resize
MARKER = (40.0, 216.0, 40.0, 216.0, 40.0, 216.0)
MARKER_TOLERANCE = 24.0
LOW, SPAN = 16.0, 224.0  # value f -> LOW + SPAN * f
CAT_STEP = 56.0  # category c -> LOW + CAT_STEP * c
DAY_TINT = 12

Box = tuple[float, float, float, float]
DetectionSpec = tuple[str, float, Box]  # (category "1".."3", conf, (x, y, w, h))


# -- photos ------------------------------------------------------------------------------------------------
def _level(f: float) -> float:
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"value {f} outside 0..1")
    return LOW + SPAN * f


def code_levels(detections: Sequence[DetectionSpec]) -> np.ndarray:
    """The ROWS x COLS grey levels that encode ``detections`` (at most SLOTS)."""
    if len(detections) > SLOTS:
        raise ValueError(f"at most {SLOTS} detections fit in one image")
    levels = np.full((ROWS, COLS), 128.0)
    levels[:SLOTS, 0] = LOW  # empty slots
    for row, (category, conf, (x, y, w, h)) in enumerate(detections):
        if category not in ("1", "2", "3"):
            raise ValueError(f"category must be '1', '2' or '3', not {category!r}")
        if x + w > 1.0 + 1e-9 or y + h > 1.0 + 1e-9:
            raise ValueError(f"box {(x, y, w, h)} leaves the image")
        levels[row] = [
            LOW + CAT_STEP * int(category),
            _level(conf),
            _level(x),
            _level(y),
            _level(w),
            _level(h),
        ]
    levels[ROWS - 1] = MARKER
    return levels


def encode_detections(
    detections: Sequence[DetectionSpec], size: tuple[int, int] = (640, 480), night: bool = False
) -> np.ndarray:
    """A BGR uint8 image of ``size`` (width, height) that the controlled detectors read as ``detections``."""
    width, height = size
    if width < 6 * COLS * SUB or height < 6 * ROWS * SUB:
        raise ValueError(f"image {size} too small for the code (at least {6 * COLS * SUB}x{6 * ROWS * SUB})")
    levels = code_levels(detections)
    img = np.zeros((height, width, 3), dtype=np.uint8)
    ys = np.linspace(0, height, ROWS + 1).round().astype(int)
    xs = np.linspace(0, width, COLS + 1).round().astype(int)
    for r in range(ROWS):
        for c in range(COLS):
            v = int(round(levels[r, c]))
            tint = 0 if night else DAY_TINT * (1 if (r + c) % 2 == 0 else -1)
            # BGR order: (B, G, R) = (v - tint, v, v + tint); the channel mean stays v
            img[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = (v - tint, v, v + tint)
    return img


def to_jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return buf.tobytes()


def make_detection_image(
    category: str,
    conf: float,
    bbox: Box = (0.25, 0.25, 0.5, 0.5),
    size: tuple[int, int] = (640, 480),
    night: bool = False,
    quality: int = 90,
) -> bytes:
    """JPEG bytes of a photo in which the controlled detectors find ``category`` at ``conf`` in ``bbox``."""
    return to_jpeg(encode_detections([(category, conf, bbox)], size, night), quality)


def make_detections_image(
    detections: Sequence[DetectionSpec],
    size: tuple[int, int] = (640, 480),
    night: bool = False,
    quality: int = 90,
) -> bytes:
    """JPEG bytes encoding up to SLOTS detections (an empty list gives a photo with no detection)."""
    return to_jpeg(encode_detections(detections, size, night), quality)


def make_blank_image(
    size: tuple[int, int] = (640, 480), night: bool = False, quality: int = 90, seed: int = 0
) -> bytes:
    """JPEG bytes of a textured photo without the code: every controlled detector sees nothing in it."""
    rng = np.random.default_rng(seed)
    width, height = size
    small = rng.integers(30, 220, size=(max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    if night:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return to_jpeg(img, quality)


# -- models ------------------------------------------------------------------------------------------------
def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _decode_graph(tf, image):
    """TF ops: uint8 [N,H,W,3] -> OD API outputs (boxes, scores, classes, num), see the module docstring."""
    x = tf.reduce_mean(tf.cast(image, tf.float32), axis=3, keepdims=True)
    grid = tf.image.resize(x, [ROWS * SUB, COLS * SUB], method=tf.image.ResizeMethod.AREA)
    grid = tf.reshape(grid, [-1, ROWS, SUB, COLS, SUB])
    cells = tf.reduce_mean(grid[:, :, 1:3, :, 1:3], axis=[2, 4])  # [N, ROWS, COLS]
    marker = cells[:, ROWS - 1, :]
    valid = tf.reduce_all(tf.abs(marker - tf.constant(MARKER, tf.float32)) < MARKER_TOLERANCE, axis=1)
    slots = cells[:, :SLOTS, :]
    category = tf.clip_by_value(tf.round((slots[:, :, 0] - LOW) / CAT_STEP), 0.0, 3.0)

    def value(i):
        return tf.clip_by_value((slots[:, :, i] - LOW) / SPAN, 0.0, 1.0)

    conf, bx, by, bw, bh = value(1), value(2), value(3), value(4), value(5)
    present = tf.logical_and(category >= 1.0, valid[:, None])
    zeros = tf.zeros_like(conf)
    scores = tf.where(present, conf, zeros)
    classes = tf.where(present, category, zeros)
    boxes = tf.stack(
        [by, bx, tf.minimum(by + bh, 1.0), tf.minimum(bx + bw, 1.0)], axis=-1
    )  # [ymin, xmin, ymax, xmax]
    boxes = tf.where(present[:, :, None], boxes, tf.zeros_like(boxes))
    order = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)
    boxes = tf.gather(boxes, order, batch_dims=1)
    scores = tf.gather(scores, order, batch_dims=1)
    classes = tf.gather(classes, order, batch_dims=1)
    num = tf.reduce_sum(tf.cast(present, tf.float32), axis=1)
    return boxes, scores, classes, num


def build_controlled_frozen_graph(path: str | os.PathLike) -> Path:
    """Write a TF1 frozen graph (.pb) with MegaDetector v4.1's signature; return its path."""
    tf = _tf()
    path = Path(path)
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.uint8, [None, None, None, 3], name="image_tensor")
        boxes, scores, classes, num = _decode_graph(tf, image)
        tf.identity(boxes, name="detection_boxes")
        tf.identity(scores, name="detection_scores")
        tf.identity(classes, name="detection_classes")
        tf.identity(num, name="num_detections")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def build_controlled_saved_model(path: str | os.PathLike, batch_size: int | None = None) -> Path:
    """Write a TF2 SavedModel with the OD API ``serving_default`` signature; return its directory."""
    tf = _tf()
    path = Path(path)

    class Controlled(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([batch_size, None, None, 3], tf.uint8, name="input_tensor")]
        )
        def serve(self, input_tensor):
            boxes, scores, classes, num = _decode_graph(tf, input_tensor)
            return {
                "detection_boxes": boxes,
                "detection_scores": scores,
                "detection_classes": classes,
                "num_detections": num,
            }

    module = Controlled()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def build_wrong_frozen_graph(path: str | os.PathLike) -> Path:
    """A valid GraphDef *without* MegaDetector's tensors (for the mismatched-model start-up error)."""
    tf = _tf()
    path = Path(path)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name="input")
        tf.identity(tf.reduce_mean(x, axis=[1, 2]), name="logits")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def build_standin_saved_model(
    path: str | os.PathLike, input_side: int = 640, width: int = 32, seed: int = 0
) -> Path:
    """A convolutional stand-in with random weights and the OD API signature, for throughput benchmarks.

    The image is resized to ``input_side`` square and goes through a small ResNet-like stack (``width``
    channels at the first stage, doubling at each of 4 stages); the detections are the code of
    ``_decode_graph`` (so results stay meaningful) and the network's output only adds compute. It is not a
    MegaDetector-sized model (about 1/50 of its compute at the defaults): it shows what batching does for a
    convolutional network on this machine.
    """
    tf = _tf()
    path = Path(path)
    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    inputs = tf.keras.Input((input_side, input_side, 3))
    h = layers.Conv2D(width, 7, strides=2, padding="same", activation="relu")(inputs)
    h = layers.MaxPool2D(3, strides=2, padding="same")(h)
    for stage in range(4):
        channels = width * 2**stage
        stride = 1 if stage == 0 else 2
        shortcut = layers.Conv2D(channels, 1, strides=stride)(h)
        h = layers.Conv2D(channels, 3, strides=stride, padding="same", activation="relu")(h)
        h = layers.Conv2D(channels, 3, padding="same")(h)
        h = layers.ReLU()(layers.Add()([h, shortcut]))
    h = layers.GlobalAveragePooling2D()(h)
    backbone = tf.keras.Model(inputs, layers.Dense(1)(h))

    class StandIn(tf.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor")])
        def serve(self, input_tensor):
            x = tf.image.resize(tf.cast(input_tensor, tf.float32) / 255.0, [input_side, input_side])
            feature = self.backbone(x)  # [N, 1]
            boxes, scores, classes, num = _decode_graph(tf, input_tensor)
            scores = scores + 0.0 * tf.reduce_sum(feature)  # keeps the network in the graph
            return {
                "detection_boxes": boxes,
                "detection_scores": scores,
                "detection_classes": classes,
                "num_detections": num,
            }

    module = StandIn()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path
