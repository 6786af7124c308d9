"""What every model backend provides: load once, detect on a list of BGR images, describe itself."""

from __future__ import annotations

import abc
import hashlib
import logging
from pathlib import Path

import numpy as np

from scoring import catalogue
from scoring.errors import ModelLoadError
from scoring.schemas import DETECTION_CATEGORIES, Detection
from scoring.settings import ScoringSettings

log = logging.getLogger("scoring.backends")

_UNKNOWN_THRESHOLDS = catalogue.UNKNOWN_THRESHOLDS


def guess_md_version(filename: str) -> str:
    """Canonical MegaDetector version from a file name (md_v4.1.0.pb -> v4.1.0), or 'unknown'."""
    return catalogue.guess_version(filename)


def thresholds_for(version: str) -> tuple[float, float]:
    """MegaDetector's recommended (typical, conservative) thresholds, from the one catalogue."""
    return catalogue.thresholds(version)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Backend(abc.ABC):
    """A detector. ``load`` and ``detect`` run in a worker thread, never on the event loop."""

    name: str = "?"
    supports_batch: bool = False
    fallback: bool = False

    def __init__(self, settings: ScoringSettings):
        self.settings = settings
        self.detector = self.name
        self.detector_version = "unknown"
        self.model_path: Path | None = None
        self.model_sha256: str | None = None
        self.limits: list[str] = []
        self._typical, self._conservative = _UNKNOWN_THRESHOLDS

    # -- life cycle --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def load(self) -> None:
        """Load the model (slow: seconds). Raise ModelLoadError naming the file and the expected signature."""

    def verify_expected_model(self) -> None:
        """After ``load``: the model is the release the deployment names (SCORING_EXPECTED_MODEL), if any."""
        name = self.settings.expected_model
        if not name:
            return
        expected = catalogue.release(name)
        assert expected is not None  # validated with the settings
        if self.detector_version != expected.version:
            raise ModelLoadError(
                f"model file {self.model_path} is MegaDetector {self.detector_version}, but "
                f"SCORING_EXPECTED_MODEL={name} expects {expected.version} ({expected.filename} exported to "
                f"{expected.onnx_filename if expected.backend == 'onnx' else expected.filename})"
            )

    def warmup(self) -> None:
        """One inference on a synthetic frame so that the first real request does not pay graph set-up."""
        frame = np.full((480, 640, 3), 127, dtype=np.uint8)
        self.detect([self.prepare_input(frame)])

    def prepare_input(self, image: np.ndarray):
        """Per-image work that does not need the model (e.g. a letterbox). It runs in the decode threads,
        in parallel, so that the model thread only runs the model; ``detect`` receives what it returns."""
        return image

    @abc.abstractmethod
    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Images (BGR uint8, or what ``prepare_input`` made of them) -> detections per image (normalized,
        mapped, thresholded, sorted by conf)."""

    def note_for(self, detections: list[Detection], night: bool) -> str | None:
        """A remark for the person reading an image's answer (e.g. the fallback's limits), or None."""
        return None

    # -- description -------------------------------------------------------------------------------------
    @property
    def typical_threshold(self) -> float:
        s = self.settings.typical_threshold
        return self._typical if s is None else s

    @property
    def conservative_threshold(self) -> float:
        s = self.settings.conservative_threshold
        return self._conservative if s is None else s

    def input_description(self) -> dict:
        return {
            "dtype": "uint8",
            "color": "RGB",
            "shape": "[N, H, W, 3]",
            "resize_long_side": self.settings.resize_long_side,
            "input_size": list(self.settings.input_size) if self.settings.input_size else None,
        }

    def detector_metadata(self) -> dict:
        return {
            "megadetector_version": self.detector_version,
            "typical_detection_threshold": self.typical_threshold,
            "conservative_detection_threshold": self.conservative_threshold,
            "backend": self.name,
            "output_threshold": self.settings.output_threshold,
        }

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "detector": self.detector,
            "detector_version": self.detector_version,
            "fallback": self.fallback,
            "detection_categories": dict(DETECTION_CATEGORIES),
            "typical_detection_threshold": self.typical_threshold,
            "conservative_detection_threshold": self.conservative_threshold,
            "output_threshold": self.settings.output_threshold,
            "supports_batch": self.supports_batch,
            "max_batch": self.settings.max_batch if self.supports_batch else 1,
            "input": self.input_description(),
            "limits": list(self.limits),
            "model_path": str(self.model_path) if self.model_path else None,
            "model_sha256": self.model_sha256,
        }

    # -- helpers -----------------------------------------------------------------------------------------
    def finish(self, detections: list[Detection]) -> list[Detection]:
        """Apply the output threshold, sort by confidence, cap the count."""
        kept = [d for d in detections if d.conf >= self.settings.output_threshold]
        kept.sort(key=lambda d: d.conf, reverse=True)
        return kept[: self.settings.max_detections]
