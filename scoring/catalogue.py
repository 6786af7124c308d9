"""The one catalogue of MegaDetector releases: where each file is, its pinned checksum, how to serve it.

Everything version-specific is decided here and nowhere else: the download URL and checksum
(``scoring.download``), the architecture and input size (``scoring.export``), the output layout the ONNX
backend expects, and the recommended thresholds (``scoring.backends.base.thresholds_for``).

Sources (public facts, see ../shared/ARCHITECTURE.md "MegaDetector model family"): MegaDetector's
``megadetector/detection/run_detector.py`` ``known_models`` (URLs, MD5 checksums, thresholds, relative
speeds) and ``docs/release-notes/mdv1000-release.md`` (architectures, input sizes, accuracies). The
maintainer publishes MD5 only, so MD5 is what is pinned; v4.1 has no published checksum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RELEASES_URL = "https://github.com/agentmorris/MegaDetector/releases/download"

# ONNX output layouts (scoring.backends.onnx_yolo decodes both):
YOLOV5 = "yolov5"  # [N, K, 5+C]: cx, cy, w, h (input pixels), objectness, class scores
YOLOV8 = "yolov8"  # [N, 4+C, K]: cx, cy, w, h (input pixels), class scores (no objectness); v8/v9/v11


@dataclass(frozen=True)
class ModelRelease:
    name: str  # what `trapalert model download NAME` takes
    version: str  # MegaDetector's canonical version string (detector_version in answers)
    filename: str
    url: str
    md5: str | None  # published by the maintainer; None: not published (trust on first use)
    backend: str  # the backend that serves it after `trapalert model export` (or as downloaded)
    framework: str | None  # the PyTorch code the checkpoint needs to be loaded: yolov5, yolov9, ultralytics
    architecture: str
    image_size: int | None  # the size it was trained at (square letterbox), None: any
    layout: str | None  # ONNX output layout after export
    typical_threshold: float
    conservative_threshold: float
    gflops: float | None  # at 640 px, as the YOLO model cards publish them
    relative_accuracy: float | None  # normalized animal AP vs MDv5a (release notes)
    relative_speed: float | None  # images/s relative to MDv5a on the same GPU (known_models)
    note: str = ""

    @property
    def onnx_filename(self) -> str:
        stem = self.filename.rsplit(".", 1)[0]
        return f"{stem}.onnx"


def _pt(name, version, folder, file, md5, framework, arch, size, layout, typical, conservative, gflops,
        accuracy, speed, note=""):
    return ModelRelease(
        name=name,
        version=version,
        filename=file,
        url=f"{RELEASES_URL}/{folder}/{file}",
        md5=md5,
        backend="onnx",
        framework=framework,
        architecture=arch,
        image_size=size,
        layout=layout,
        typical_threshold=typical,
        conservative_threshold=conservative,
        gflops=gflops,
        relative_accuracy=accuracy,
        relative_speed=speed,
        note=note,
    )


_V5 = (0.2, 0.05)  # MegaDetector's typical / conservative thresholds for v5
# v1000: typical 0.3 (release notes: "up to 0.4"). No conservative value is published: half the typical one.
_V1000 = (0.3, 0.15)

RELEASES: tuple[ModelRelease, ...] = (
    _pt("mdv5a", "v5a.0.0", "v5.0", "md_v5a.0.0.pt", "ec1d7603ec8cf642d6e0cd008ba2be8c", "yolov5",
        "YOLOv5x6", 1280, YOLOV5, *_V5, 209.8, 1.000, 1.0, "the field's reference model since 2022"),
    _pt("mdv5b", "v5b.0.0", "v5.0", "md_v5b.0.0.pt", "bc235e73f53c5c95e66ea0d1b2cbf542", "yolov5",
        "YOLOv5x6", 1280, YOLOV5, *_V5, 209.8, 0.986, 1.0),
    _pt("mdv5a.0.1", "v5a.0.1", "v5.0", "md_v5a.0.1.pt", "60f8e7ec1308554df258ed1f4040bc4f", "yolov5",
        "YOLOv5x6", 1280, YOLOV5, *_V5, 209.8, 1.000, 1.0, "v5a re-released with metadata (same weights)"),
    _pt("mdv5b.0.1", "v5b.0.1", "v5.0", "md_v5b.0.1.pt", "f17ed6fedfac2e403606a08c89984905", "yolov5",
        "YOLOv5x6", 1280, YOLOV5, *_V5, 209.8, 0.986, 1.0),
    _pt("mdv1000-redwood", "v1000.0.0-redwood", "v1000.0", "md_v1000.0.0-redwood.pt",
        "74474b3aec9cf1a990da38b37ddf9197", "yolov5", "YOLOv5x6", 1280, YOLOV5, *_V1000, 209.8, 1.009, 1.0,
        "most accurate; the maintainer's choice when accuracy matters most"),
    _pt("mdv1000-cedar", "v1000.0.0-cedar", "v1000.0", "md_v1000.0.0-cedar.pt",
        "3d6472c9b95ba687b59ebe255f7c576b", "yolov9", "YOLOv9c", 640, YOLOV8, *_V1000, 102.1, 0.991, 2.0,
        "near v5a accuracy at twice its speed: the CPU choice when accuracy matters"),
    _pt("mdv1000-larch", "v1000.0.0-larch", "v1000.0", "md_v1000.0.0-larch.pt",
        "cab94ebd190c2278e12fb70ffd548b6d", "ultralytics", "YOLOv11L", 640, YOLOV8, *_V1000, 86.9, 0.969,
        2.4),
    _pt("mdv1000-sorrel", "v1000.0.0-sorrel", "v1000.0", "md_v1000.0.0-sorrel.pt",
        "4339a2c8af7a381f18ded7ac2a4df03e", "ultralytics", "YOLOv11s", 960, YOLOV8, *_V1000, 30.0, 0.967,
        7.0),
    _pt("mdv1000-spruce", "v1000.0.0-spruce", "v1000.0", "md_v1000.0.0-spruce.pt",
        "1c9d1d2b3ba54931881471fdd508e6f2", "yolov5", "YOLOv5s", 640, YOLOV5, *_V1000, 16.5, 0.864, 12.7,
        "built for edge devices: fastest, least accurate"),
    ModelRelease(
        name="mdv4.1",
        version="v4.1.0",
        filename="md_v4.1.0.pb",
        url=f"{RELEASES_URL}/v4.1/md_v4.1.0.pb",
        md5=None,
        backend="frozen_graph",
        framework=None,
        architecture="TF OD API Faster R-CNN (TF1 frozen graph)",
        image_size=None,
        layout=None,
        typical_threshold=0.8,
        conservative_threshold=0.3,
        gflops=None,
        relative_accuracy=None,
        relative_speed=1 / 3.5,
        note="2020 model, served by TensorFlow as downloaded; no checksum published",
    ),
)

CATALOGUE: dict[str, ModelRelease] = {r.name: r for r in RELEASES}
# Names accepted as well (the earlier catalogue's names).
ALIASES = {"megadetector-v4.1": "mdv4.1", "megadetector-v5a": "mdv5a", "megadetector-v5b": "mdv5b"}
# What `model download` offers first; the others stay available by name.
SERVABLE = ("mdv5a", "mdv5b", "mdv1000-redwood", "mdv1000-cedar", "mdv1000-larch", "mdv1000-sorrel",
            "mdv1000-spruce")

UNKNOWN_THRESHOLDS = (0.5, 0.25)
_OLD_TF = {"v2.0.0": (0.8, 0.3), "v3.0.0": (0.8, 0.3)}


def release(name: str) -> ModelRelease | None:
    """The release called ``name`` (or one of its aliases), or None."""
    key = name.strip().lower()
    return CATALOGUE.get(ALIASES.get(key, key))


def by_version(version: str) -> ModelRelease | None:
    for r in RELEASES:
        if r.version == version:
            return r
    return None


# File-name patterns -> canonical version; order matters (specific before general).
_VERSION_PATTERNS = (
    (r"v1000(\.0\.0)?-redwood|redwood", "v1000.0.0-redwood"),
    (r"v1000(\.0\.0)?-cedar|cedar", "v1000.0.0-cedar"),
    (r"v1000(\.0\.0)?-larch|larch", "v1000.0.0-larch"),
    (r"v1000(\.0\.0)?-sorrel|sorrel", "v1000.0.0-sorrel"),
    (r"v1000(\.0\.0)?-spruce|spruce", "v1000.0.0-spruce"),
    (r"v5a\.0\.1", "v5a.0.1"),
    (r"v5b\.0\.1", "v5b.0.1"),
    (r"v5a", "v5a.0.0"),
    (r"v5b", "v5b.0.0"),
    (r"v4\.1|mdv4|md_v4|megadetector_v4", "v4.1.0"),
    (r"megadetector_v3|mdv3|md_v3", "v3.0.0"),
    (r"megadetector_v2|mdv2|md_v2", "v2.0.0"),
)


def guess_version(filename: str) -> str:
    """Canonical MegaDetector version from a file name (md_v5a.0.0.onnx -> v5a.0.0), or 'unknown'."""
    name = filename.lower()
    for pattern, version in _VERSION_PATTERNS:
        if re.search(pattern, name):
            return version
    return "unknown"


def thresholds(version: str) -> tuple[float, float]:
    """(typical, conservative) detection thresholds that MegaDetector recommends for ``version``."""
    found = by_version(version)
    if found is not None:
        return found.typical_threshold, found.conservative_threshold
    return _OLD_TF.get(version, UNKNOWN_THRESHOLDS)
