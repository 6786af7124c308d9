"""Tiny ONNX YOLO detectors built with the ``onnx`` package's helpers, in both export layouts.

``build_yolo(path, boxes, layout=...)`` writes a model with MegaDetector's ONNX signature (input float32
``[N,3,S,S]``, output ``[N,K,5+C]`` for YOLOv5 or ``[N,4+C,K]`` for YOLOv8/v9/v11) whose raw predictions are
the given ``Box`` rows, the same for every image, except that box 0's score can follow the image: with
``brightness_box=True`` its objectness (YOLOv5) or class score (YOLOv8) is the mean of the input pixels, so
a batch of images of different brightness gets different answers and the order can be checked.

``input_box(photo_w, photo_h, size, (x, y, w, h))`` is the letterbox arithmetic of YOLOv5, written
independently of the service, to place a box given in normalized photo coordinates into input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclass(frozen=True)
class Box:
    cls: int
    cx: float  # input pixels
    cy: float
    w: float
    h: float
    obj: float = 1.0  # YOLOv5 objectness (ignored by the YOLOv8 layout)
    score: float = 1.0  # class score of ``cls``


def input_box(photo_w: int, photo_h: int, size: int, box: tuple[float, float, float, float]):
    """Normalized [x, y, w, h] of the photo -> (cx, cy, w, h) in letterboxed input pixels."""
    r = min(size / photo_w, size / photo_h)
    new_w, new_h = round(photo_w * r), round(photo_h * r)
    left, top = round((size - new_w) / 2 - 0.1), round((size - new_h) / 2 - 0.1)
    sx, sy = new_w / photo_w, new_h / photo_h
    x, y, w, h = box
    x0, y0 = x * photo_w * sx + left, y * photo_h * sy + top
    bw, bh = w * photo_w * sx, h * photo_h * sy
    return x0 + bw / 2, y0 + bh / 2, bw, bh


def predictions(boxes: list[Box], layout: str, num_classes: int, candidates: int) -> np.ndarray:
    if layout == "yolov5":
        pred = np.zeros((1, candidates, 5 + num_classes), np.float32)
        for i, b in enumerate(boxes):
            pred[0, i, :5] = (b.cx, b.cy, b.w, b.h, b.obj)
            pred[0, i, 5 + b.cls] = b.score
        # the empty rows still have a plausible box (zero confidence)
        pred[0, len(boxes) :, :4] = (10.0, 10.0, 4.0, 4.0)
        return pred
    pred = np.zeros((1, 4 + num_classes, candidates), np.float32)
    for i, b in enumerate(boxes):
        pred[0, :4, i] = (b.cx, b.cy, b.w, b.h)
        pred[0, 4 + b.cls, i] = b.score
    pred[0, :4, len(boxes) :] = np.array([10.0, 10.0, 4.0, 4.0])[:, None]
    return pred


def build_yolo(
    path: Path,
    boxes: list[Box],
    *,
    layout: str = "yolov5",
    size: int | None = 640,
    batch: int | None = None,
    num_classes: int = 3,
    candidates: int = 64,
    brightness_box: bool = False,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the model; ``size=None``: dynamic spatial size; ``batch=None``: dynamic batch."""
    pred = predictions(boxes, layout, num_classes, candidates)
    mask = np.zeros_like(pred)
    if brightness_box:
        if layout == "yolov5":
            pred[0, 0, 4] = 0.0
            mask[0, 0, 4] = 1.0
        else:
            pred[0, 4 + boxes[0].cls, 0] = 0.0
            mask[0, 4 + boxes[0].cls, 0] = 1.0
    s = size if size is not None else "S"
    n = batch if batch is not None else "N"
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [n, 3, s, s])
    out_shape = [n, candidates, 5 + num_classes] if layout == "yolov5" else [n, 4 + num_classes, candidates]
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["mean", "shape3"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "mask"], ["varying"]),
        helper.make_node("Add", ["varying", "pred"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
        numpy_helper.from_array(mask, "mask"),
        numpy_helper.from_array(pred, "pred"),
    ]
    graph = helper.make_graph(nodes, "tiny_yolo", [images], [output], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_wrong_input(path: Path) -> Path:
    """An OD-API-like signature (uint8 [1,H,W,3]) in ONNX: not a YOLO export."""
    images = helper.make_tensor_value_info("image_tensor", TensorProto.UINT8, [1, 640, 640, 3])
    out = helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, [1, 640, 640, 3])
    nodes = [helper.make_node("Cast", ["image_tensor"], ["detection_scores"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "wrong_input", [images], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def build_wrong_output(path: Path, size: int = 64) -> Path:
    """Right input, but a 2-D output (a classifier), not YOLO predictions."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, size, size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    nodes = [helper.make_node("ReduceMean", ["images"], ["logits"], axes=[2, 3], keepdims=0)]
    graph = helper.make_graph(nodes, "wrong_output", [images], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
