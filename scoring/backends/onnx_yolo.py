"""YOLO detectors exported to ONNX, run by ONNX Runtime: MegaDetector v5 (YOLOv5) and v1000 (v5/v9/v11).

Input: ``float32 [N, 3, S, S]``, RGB scaled 0..1, letterboxed as YOLOv5 does (aspect kept, resized so that
the long side is S, padded with grey 114, centred). S is read from the model; a dynamic S comes from
SCORING_MODEL_IMAGE_SIZE, the model's metadata (``imgsz``, as Ultralytics and ``scoring.export`` write it)
or the catalogue's size for its version. The batch dimension is either 1 (called once per image) or
dynamic (the service's dynamic batching fills it).

Output, either layout (SCORING_ONNX_LAYOUT, auto-detected from the shape):

* ``yolov5`` ``[N, K, 5+C]``: cx, cy, w, h in input pixels, objectness, C class scores;
  confidence = objectness x class score (MDv5, MDv1000-redwood and -spruce).
* ``yolov8`` ``[N, 4+C, K]``: cx, cy, w, h in input pixels, C class scores; no objectness
  (YOLOv8/v9/v11: MDv1000-cedar, -larch, -sorrel).

Then class-aware NMS (SCORING_NMS_IOU, 0.45), boxes mapped back through the letterbox to MegaDetector's
``[x, y, w, h]`` normalized to the photo, and classes 0, 1, 2 to categories "1" animal, "2" person,
"3" vehicle (SCORING_CLASS_MAP overrides). The letterbox runs in the decode threads
(``prepare_input``), not on the model thread.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from scoring import catalogue
from scoring.backends.base import Backend, guess_md_version, sha256_of, thresholds_for
from scoring.errors import ModelLoadError
from scoring.schemas import Detection, clip_box_xyxy

log = logging.getLogger("scoring.backends.onnx")

ONNX_SIGNATURE = (
    "an ONNX YOLO detector with one input float32 [N,3,S,S] (RGB 0..1, letterboxed; N 1 or dynamic, S static "
    "or dynamic) and a first output [N,K,5+C] (YOLOv5: cx,cy,w,h in input pixels, objectness, class scores) "
    "or [N,4+C,K] (YOLOv8/v9/v11: cx,cy,w,h, class scores), as `trapalert model export` writes MegaDetector "
    "v5 and v1000"
)
DEFAULT_CLASS_MAP = {"0": "1", "1": "2", "2": "3"}  # YOLO class ids of MegaDetector -> its categories
PAD_VALUE = 114
MAX_NMS_CANDIDATES = 3000  # as YOLOv5's non_max_suppression: keep the best 3000 before NMS
PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


# -- letterbox ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where a photo of ``width`` x ``height`` sits inside the S x S model input."""

    width: int
    height: int
    scale_x: float  # resized width / width
    scale_y: float
    pad_x: int  # left padding, pixels of the model input
    pad_y: int


def letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio so that the long side is ``size``, pad to ``size`` x ``size`` with
    grey 114, centred (YOLOv5's ``letterbox(auto=False, scaleup=True)``)."""
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    new_w, new_h = max(1, int(round(w * r))), max(1, int(round(h * r)))
    if (new_w, new_h) != (w, h):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)  # as YOLOv5's letterbox
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))  # YOLOv5's rounding; the far side takes the rest
    bottom, right = size - new_h - top, size - new_w - left
    canvas = cv2.copyMakeBorder(
        img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE, PAD_VALUE, PAD_VALUE)
    )
    return canvas, Letterbox(w, h, new_w / w, new_h / h, left, top)


def unletterbox(xyxy: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Boxes [x0, y0, x1, y1] in model-input pixels -> normalized to the photo (not clipped)."""
    out = np.empty_like(xyxy, dtype=np.float64)
    out[:, [0, 2]] = (xyxy[:, [0, 2]] - lb.pad_x) / lb.scale_x / lb.width
    out[:, [1, 3]] = (xyxy[:, [1, 3]] - lb.pad_y) / lb.scale_y / lb.height
    return out


# -- decoding -----------------------------------------------------------------------------------------------
def detect_layout(shape: tuple[int, ...]) -> str:
    """YOLOv5 ``[N, K, 5+C]`` or YOLOv8 ``[N, 4+C, K]``: K (candidates) is far larger than 5+C."""
    _, a, b = shape
    return catalogue.YOLOV8 if a < b else catalogue.YOLOV5


def candidates(
    pred: np.ndarray, layout: str, conf_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw output -> (xyxy boxes in input pixels, confidences, class ids) above the threshold."""
    if layout == catalogue.YOLOV8:
        pred = pred.T  # [K, 4+C]
        scores = pred[:, 4:]
    else:
        pred = pred[pred[:, 4] > conf_threshold]  # objectness first, as YOLOv5 does
        scores = pred[:, 5:] * pred[:, 4:5]
    if scores.shape[1] == 0 or pred.shape[0] == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    cls = scores.argmax(axis=1)
    conf = scores[np.arange(scores.shape[0]), cls]
    keep = conf > conf_threshold
    pred, conf, cls = pred[keep], conf[keep], cls[keep]
    if conf.shape[0] > MAX_NMS_CANDIDATES:
        top = np.argsort(-conf)[:MAX_NMS_CANDIDATES]
        pred, conf, cls = pred[top], conf[top], cls[top]
    cx, cy, w, h = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return xyxy, conf, cls


def nms(xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, iou: float) -> np.ndarray:
    """Class-aware greedy NMS; indices of the kept boxes, best first. Boxes of different classes never
    suppress each other (offset per class, as YOLOv5 does)."""
    if conf.shape[0] == 0:
        return np.zeros(0, np.int64)
    offset = cls.astype(np.float64)[:, None] * (float(np.abs(xyxy).max()) + 4096.0)
    boxes = xyxy.astype(np.float64) + offset
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    order = np.argsort(-conf, kind="stable")
    kept = []
    while order.size:
        i = order[0]
        kept.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(kept, np.int64)


# -- the backend --------------------------------------------------------------------------------------------
def import_onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - depends on the image
        raise ModelLoadError(
            f"ONNX Runtime is not installed ({exc}): install scoring/requirements.txt (onnxruntime) or use "
            "the GPU image (onnxruntime-gpu)"
        ) from None
    return ort


def choose_providers(setting: str, available: list[str]) -> list[str]:
    """Execution providers to ask for, in order; unknown names are an error naming SCORING_ONNX_PROVIDERS."""
    text = setting.strip().lower()
    if text in ("", "auto"):
        wanted = [PROVIDER_NAMES[k] for k in ("tensorrt", "cuda", "cpu")]
        return [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    out = []
    for part in (p.strip() for p in setting.split(",") if p.strip()):
        name = PROVIDER_NAMES.get(part.lower(), part)
        if name not in available:
            raise ModelLoadError(
                f"SCORING_ONNX_PROVIDERS asks for {part!r} but this ONNX Runtime offers only "
                f"{', '.join(available)} (the GPU image has onnxruntime-gpu; TensorRT needs its libraries)"
            )
        out.append(name)
    return out


def _metadata_image_size(meta: dict[str, str]) -> int | None:
    for key in ("imgsz", "image_size", "megadetector.image_size"):
        raw = meta.get(key)
        if not raw:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
            if len(set(value)) == 1:
                return value[0]
    return None


class OnnxBackend(Backend):
    name = "onnx"
    supports_batch = True  # decided at load: False for a model whose batch dimension is fixed to 1

    def __init__(self, settings):
        super().__init__(settings)
        if settings.model_path is None:
            raise ModelLoadError(f"SCORING_BACKEND=onnx needs SCORING_MODEL_PATH ({ONNX_SIGNATURE})")
        self.model_path = Path(settings.model_path)
        self.class_map = dict(settings.class_map or DEFAULT_CLASS_MAP)
        self.detector = self.model_path.name
        self.detector_version = settings.model_version or guess_md_version(self.model_path.name)
        self._typical, self._conservative = thresholds_for(self.detector_version)
        self.image_size: int | None = None
        self.fixed_batch: int | None = None
        self.layout: str | None = None
        self.num_classes: int | None = None
        self.providers: list[str] = []
        self._session = None
        self._input_name = ""

    def expected(self) -> str:
        return ONNX_SIGNATURE

    def _fail(self, what: str) -> ModelLoadError:
        return ModelLoadError(f"model file {self.model_path} {what}; expected {ONNX_SIGNATURE}")

    # -- load ------------------------------------------------------------------------------------------------
    def load(self) -> None:
        path = self.model_path
        if not path.is_file():
            raise self._fail("does not exist or is not a file")
        ort = import_onnxruntime()
        providers = choose_providers(self.settings.onnx_providers, ort.get_available_providers())
        if "CUDAExecutionProvider" in providers and hasattr(ort, "preload_dlls"):
            try:  # CUDA/cuDNN from pip's nvidia-* packages (as in the TensorFlow GPU base image)
                ort.preload_dlls()
            except Exception as exc:  # noqa: BLE001 - the session below reports what is really missing
                log.warning("onnxruntime.preload_dlls() failed: %s", exc)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.settings.onnx_threads:
            options.intra_op_num_threads = self.settings.onnx_threads
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for every kind of bad file
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            raise self._fail(f"cannot be loaded by ONNX Runtime ({reason})") from None

        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise self._fail(f"has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}), not one image")
        inp = inputs[0]
        shape = list(inp.shape)
        if inp.type != "tensor(float)" or len(shape) != 4:
            raise self._fail(f"has input {inp.name!r} {inp.type} {shape}, not float32 [N,3,S,S]")
        n, c, h, w = shape
        if c != 3:
            raise self._fail(f"has input {inp.name!r} {shape}: {c} channels, not 3 (RGB)")
        static_h, static_w = isinstance(h, int), isinstance(w, int)
        if static_h and static_w and h != w:
            raise self._fail(f"has input {inp.name!r} {shape}: not square ({w}x{h})")
        size = h if static_h else (w if static_w else None)
        meta = dict(session.get_modelmeta().custom_metadata_map or {})
        if self.detector_version == "unknown" and meta.get("megadetector.version"):
            # `scoring.export` records the version: a renamed file keeps its thresholds
            self.detector_version = meta["megadetector.version"]
            self._typical, self._conservative = thresholds_for(self.detector_version)
        configured = self.settings.model_image_size
        if size is not None and configured is not None and configured != size:
            raise self._fail(
                f"has a static input size {size}, but SCORING_MODEL_IMAGE_SIZE is {configured}"
            )
        if size is None:
            known = catalogue.by_version(self.detector_version)
            size = configured or _metadata_image_size(meta) or (known.image_size if known else None)
            if size is None:
                raise self._fail(
                    f"has a dynamic input size {shape} and neither metadata nor a known version gives it: "
                    "set SCORING_MODEL_IMAGE_SIZE"
                )
        self.image_size = int(size)
        self.fixed_batch = n if isinstance(n, int) else None
        if self.fixed_batch is not None and self.fixed_batch < 1:
            self.fixed_batch = None
        self.supports_batch = self.fixed_batch != 1

        outputs = session.get_outputs()
        out_shape = list(outputs[0].shape) if outputs else []
        if not outputs or len(out_shape) != 3:
            raise self._fail(
                f"has first output {outputs[0].name + ' ' + str(out_shape) if outputs else 'none'}, "
                "not [N,K,5+C] or [N,4+C,K]"
            )

        # One inference on a grey frame: checks that the model runs and gives the layout's real sizes.
        probe = np.full((self.fixed_batch or 1, 3, self.image_size, self.image_size), PAD_VALUE / 255.0,
                        dtype=np.float32)
        try:
            (raw,) = session.run([outputs[0].name], {inp.name: probe})
        except Exception as exc:
            raise self._fail(
                f"fails on a {list(probe.shape)} input ({type(exc).__name__}: {str(exc)[:300]})"
            ) from None
        raw = np.asarray(raw)
        if raw.ndim != 3 or raw.shape[0] != probe.shape[0]:
            raise self._fail(f"returns {list(raw.shape)} for a {list(probe.shape)} input")
        layout = self.settings.onnx_layout
        if layout == "auto":
            layout = detect_layout(raw.shape)
        channels = raw.shape[1] if layout == catalogue.YOLOV8 else raw.shape[2]
        num_classes = channels - (4 if layout == catalogue.YOLOV8 else 5)
        if num_classes < 1:
            raise self._fail(
                f"returns {list(raw.shape)}: too few values per box for the {layout} layout "
                f"({'4+C' if layout == catalogue.YOLOV8 else '5+C'} with C >= 1)"
            )
        mapped = [k for k in self.class_map if k.isdigit() and int(k) < num_classes]
        if not mapped:
            raise self._fail(
                f"has {num_classes} classes, none of which SCORING_CLASS_MAP {self.class_map} maps to a "
                "MegaDetector category"
            )
        self.layout, self.num_classes = layout, num_classes
        self.providers = session.get_providers()
        self._session, self._input_name, self._output_name = session, inp.name, outputs[0].name
        self.model_sha256 = sha256_of(path)
        self.limits = [] if self.detector_version != "unknown" else [
            "unknown model version (not a MegaDetector file name): thresholds are generic; set "
            "SCORING_MODEL_VERSION"
        ]
        log.info(
            "onnx model %s: input %s (size %d, batch %s), output %s layout %s with %d classes, providers %s",
            path, shape, self.image_size, self.fixed_batch or "dynamic", list(raw.shape), layout,
            num_classes, ",".join(self.providers),
        )

    # -- inference -------------------------------------------------------------------------------------------
    def prepare_input(self, image: np.ndarray):
        """Letterbox in the decode threads; the model thread only stacks and runs."""
        assert self.image_size is not None, "load() first"
        return letterbox(image, self.image_size)

    def _run(self, canvases: list[np.ndarray]) -> np.ndarray:
        # BGR uint8 HWC -> RGB float32 NCHW 0..1 in one OpenCV call
        blob = cv2.dnn.blobFromImages(canvases, scalefactor=1.0 / 255.0, swapRB=True)
        if self.fixed_batch and blob.shape[0] < self.fixed_batch:
            pad = np.zeros((self.fixed_batch - blob.shape[0], *blob.shape[1:]), np.float32)
            blob = np.concatenate([blob, pad])
        (raw,) = self._session.run([self._output_name], {self._input_name: blob})
        return np.asarray(raw)[: len(canvases)]

    def detect(self, images: list) -> list[list[Detection]]:
        assert self._session is not None, "load() first"
        prepared = [item if isinstance(item, tuple) else self.prepare_input(item) for item in images]
        step = self.fixed_batch or max(1, len(prepared))
        results: list[list[Detection]] = []
        for start in range(0, len(prepared), step):
            chunk = prepared[start : start + step]
            raw = self._run([canvas for canvas, _lb in chunk])
            for pred, (_canvas, lb) in zip(raw, chunk, strict=True):
                results.append(self.finish(self._decode(pred, lb)))
        return results

    def _decode(self, pred: np.ndarray, lb: Letterbox) -> list[Detection]:
        xyxy, conf, cls = candidates(pred, self.layout, self.settings.output_threshold)
        kept = nms(xyxy, conf, cls, self.settings.nms_iou)
        if kept.size == 0:
            return []
        boxes = unletterbox(xyxy[kept], lb)
        out = []
        rows = zip(boxes.tolist(), conf[kept].tolist(), cls[kept].tolist(), strict=True)
        for (x0, y0, x1, y1), c, k in rows:
            category = self.class_map.get(str(int(k)))
            if category is None:
                continue
            box = clip_box_xyxy(x0, y0, x1, y1)
            if box is not None:
                out.append(Detection(category, float(c), box))
        return out

    # -- description -----------------------------------------------------------------------------------------
    def input_description(self) -> dict:
        return {
            "dtype": "float32",
            "color": "RGB",
            "scale": "0..1",
            "shape": f"[{self.fixed_batch or 'N'}, 3, {self.image_size}, {self.image_size}]",
            "letterbox": {"size": self.image_size, "pad_value": PAD_VALUE, "centred": True},
            "resize_long_side": self.settings.resize_long_side,
        }

    def describe(self) -> dict:
        out = super().describe()
        out["max_batch"] = (self.settings.max_batch if self.supports_batch else 1)
        out["onnx"] = {
            "providers": list(self.providers),
            "available_providers": _available_providers(),
            "layout": self.layout,
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "batch": self.fixed_batch or "dynamic",
            "nms_iou": self.settings.nms_iou,
            "class_map": dict(self.class_map),
        }
        out["execution_provider"] = self.providers[0] if self.providers else None
        return out


def _available_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover
        return []
    return list(ort.get_available_providers())

