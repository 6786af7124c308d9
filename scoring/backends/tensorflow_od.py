"""TensorFlow Object Detection API models: MegaDetector v4.1 frozen graph (TF1 .pb) and TF2 SavedModels.

Both speak the OD API output convention:
``detection_boxes`` [N, K, 4] normalized ``[ymin, xmin, ymax, xmax]``, ``detection_scores`` [N, K],
``detection_classes`` [N, K] (1-based class ids, float), ``num_detections`` [N] (float). Input: uint8 RGB
[N, H, W, 3]. Images of a model batch are grouped by shape (one model call per distinct shape): camera traps
send same-sized photos, so a batch is normally one call. TensorFlow is imported only when such a backend
is configured.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from scoring.backends.base import Backend, guess_md_version, sha256_of, thresholds_for
from scoring.errors import ModelLoadError
from scoring.schemas import Detection, clip_box_xyxy

log = logging.getLogger("scoring.backends.tensorflow")

OUTPUT_KEYS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
FROZEN_SIGNATURE = (
    "a TF1 frozen graph (GraphDef .pb) with input image_tensor:0 (uint8 [N,H,W,3]) and outputs "
    "detection_boxes:0 ([N,K,4] ymin,xmin,ymax,xmax normalized), detection_scores:0 ([N,K]), "
    "detection_classes:0 ([N,K]) and num_detections:0 ([N]), as exported by the TF Object Detection API "
    "(MegaDetector v4.1 md_v4.1.0.pb)"
)
SAVED_MODEL_SIGNATURE = (
    "a TF2 SavedModel directory whose signature {sig} takes one uint8 image tensor [N,H,W,3] and returns "
    "detection_boxes ([N,K,4] ymin,xmin,ymax,xmax normalized), detection_scores ([N,K]), "
    "detection_classes ([N,K]) and optionally num_detections ([N]), as exported by the TF Object "
    "Detection API"
)
DEFAULT_CLASS_MAP = {"1": "1", "2": "2", "3": "3"}


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the image
        raise ModelLoadError(
            f"TensorFlow is not installed ({exc}): install scoring/requirements.txt (tensorflow-cpu) or use "
            "the GPU image"
        ) from None
    return tf


def decode_od_outputs(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    num: np.ndarray | None,
    class_map: dict[str, str],
) -> list[list[Detection]]:
    """OD API arrays -> per-image detections with [x, y, w, h] boxes and MegaDetector categories."""
    out: list[list[Detection]] = []
    for i in range(boxes.shape[0]):
        n = boxes.shape[1] if num is None else int(round(float(num[i])))
        dets = []
        for j in range(min(n, boxes.shape[1])):
            category = class_map.get(str(int(round(float(classes[i, j])))))
            if category is None:
                continue
            ymin, xmin, ymax, xmax = (float(v) for v in boxes[i, j])
            box = clip_box_xyxy(xmin, ymin, xmax, ymax)
            if box is None:
                continue
            dets.append(Detection(category, float(scores[i, j]), box))
        out.append(dets)
    return out


class _TfBackend(Backend):
    """Grouping by shape, RGB conversion, batch fallback, output decoding."""

    supports_batch = True

    def __init__(self, settings):
        super().__init__(settings)
        if settings.model_path is None:
            raise ModelLoadError(f"SCORING_BACKEND={self.name} needs SCORING_MODEL_PATH ({self.expected()})")
        self.model_path = Path(settings.model_path)
        self.class_map = dict(settings.class_map or DEFAULT_CLASS_MAP)
        self.detector = self.model_path.name
        self.detector_version = settings.model_version or guess_md_version(self.model_path.name)
        self._typical, self._conservative = thresholds_for(self.detector_version)
        self._batch_ok = True

    def expected(self) -> str:
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _call(self, rgb: list[np.ndarray]) -> list[list[Detection]]:
        if len(rgb) > 1 and not self._batch_ok:
            return [d for img in rgb for d in self._call([img])]
        try:
            arrays = self._run(np.stack(rgb))
        except Exception as exc:
            if len(rgb) == 1:
                raise
            # Some exports only accept batches of 1 (e.g. a fixed batch dimension): remember and go on.
            log.warning(
                "%s: batch of %d failed (%s); running one image per call from now on",
                self.model_path,
                len(rgb),
                exc,
            )
            self._batch_ok = False
            self.supports_batch = False
            return [d for img in rgb for d in self._call([img])]
        return decode_od_outputs(*arrays, class_map=self.class_map)

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            groups[img.shape].append(i)
        results: list[list[Detection]] = [[] for _ in images]
        for indices in groups.values():
            rgb = [cv2.cvtColor(images[i], cv2.COLOR_BGR2RGB) for i in indices]
            for i, dets in zip(indices, self._call(rgb), strict=False):
                results[i] = self.finish(dets)
        return results


class FrozenGraphBackend(_TfBackend):
    """MegaDetector v4.1 (and v2/v3): a TF1 frozen graph run in TF2 through wrap_function(...).prune."""

    name = "frozen_graph"

    def expected(self) -> str:
        return FROZEN_SIGNATURE

    def load(self) -> None:
        path = self.model_path
        if not path.is_file():
            raise ModelLoadError(
                f"model file {path} does not exist or is not a file; expected {FROZEN_SIGNATURE}"
            )
        tf = import_tensorflow()
        from google.protobuf.message import DecodeError

        data = path.read_bytes()
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise ModelLoadError(
                f"model file {path} is not a TensorFlow GraphDef ({exc}); expected {FROZEN_SIGNATURE}"
            ) from None
        nodes = {node.name: node for node in graph_def.node}
        if not nodes:
            raise ModelLoadError(f"model file {path} holds an empty graph; expected {FROZEN_SIGNATURE}")
        missing = [n for n in ("image_tensor",) + OUTPUT_KEYS if n not in nodes]
        if missing:
            raise ModelLoadError(
                f"model file {path} lacks tensor(s) {', '.join(m + ':0' for m in missing)}; "
                f"expected {FROZEN_SIGNATURE}"
            )
        dtype = nodes["image_tensor"].attr["dtype"].type
        if dtype != tf.uint8.as_datatype_enum:
            raise ModelLoadError(
                f"model file {path}: image_tensor:0 is {tf.dtypes.as_dtype(dtype).name}, not uint8; "
                f"expected {FROZEN_SIGNATURE}"
            )

        def _import():
            tf.compat.v1.import_graph_def(graph_def, name="")

        try:
            wrapped = tf.compat.v1.wrap_function(_import, [])
            self._fn = wrapped.prune(
                feeds=wrapped.graph.get_tensor_by_name("image_tensor:0"),
                fetches=[wrapped.graph.get_tensor_by_name(f"{k}:0") for k in OUTPUT_KEYS],
            )
        except Exception as exc:
            raise ModelLoadError(
                f"model file {path} cannot be imported into TensorFlow ({type(exc).__name__}: "
                f"{exc}); expected {FROZEN_SIGNATURE}"
            ) from None
        self._tf = tf
        self.model_sha256 = sha256_of(path)

    def _run(self, batch):
        boxes, scores, classes, num = self._fn(self._tf.constant(batch))
        return boxes.numpy(), scores.numpy(), classes.numpy(), num.numpy()


class SavedModelBackend(_TfBackend):
    """A TF2 SavedModel with the OD API serving signature (MegaDetector exports, other detectors)."""

    name = "saved_model"

    def expected(self) -> str:
        return SAVED_MODEL_SIGNATURE.format(sig=self.settings.saved_model_signature)

    def load(self) -> None:
        path = self.model_path
        expected = self.expected()
        if not (path.is_dir() and (path / "saved_model.pb").is_file()):
            raise ModelLoadError(
                f"model {path} is not a SavedModel directory (no saved_model.pb); expected {expected}"
            )
        tf = import_tensorflow()
        try:
            model = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ModelLoadError(
                f"model {path} cannot be loaded ({type(exc).__name__}: {exc}); expected {expected}"
            ) from None
        sig_name = self.settings.saved_model_signature
        signatures = getattr(model, "signatures", {}) or {}
        if sig_name not in signatures:
            raise ModelLoadError(
                f"model {path} has no signature {sig_name!r} (it has {sorted(signatures) or 'none'}); "
                f"expected {expected}"
            )
        fn = signatures[sig_name]
        _args, kwargs = fn.structured_input_signature
        if len(kwargs) != 1:
            raise ModelLoadError(
                f"model {path}: signature {sig_name!r} takes inputs {sorted(kwargs)}, not exactly one "
                f"image; expected {expected}"
            )
        ((input_name, spec),) = kwargs.items()
        if spec.dtype != tf.uint8 or spec.shape.rank not in (None, 4):
            raise ModelLoadError(
                f"model {path}: input {input_name!r} is {spec.dtype.name} {spec.shape}, not uint8 "
                f"[N,H,W,3]; expected {expected}"
            )
        outputs = set(fn.structured_outputs)
        missing = [k for k in OUTPUT_KEYS[:3] if k not in outputs]
        if missing:
            raise ModelLoadError(
                f"model {path}: signature {sig_name!r} lacks output(s) {', '.join(missing)} (it has "
                f"{sorted(outputs)}); expected {expected}"
            )
        if spec.shape.rank == 4 and spec.shape[0] == 1:
            self.supports_batch = False
            self._batch_ok = False
        self._model = model  # keep the object (and its variables) alive
        self._fn = fn
        self._input_name = input_name
        self._has_num = "num_detections" in outputs
        self._tf = tf
        self.model_sha256 = sha256_of(path / "saved_model.pb")

    def _run(self, batch):
        out = self._fn(**{self._input_name: self._tf.constant(batch)})
        num = out["num_detections"].numpy() if self._has_num else None
        return (
            out["detection_boxes"].numpy(),
            out["detection_scores"].numpy(),
            out["detection_classes"].numpy(),
            num,
        )
