"""Model backends. ``create_backend`` picks one from the settings; all return the same Detection objects."""

from __future__ import annotations

import logging

from scoring.backends.base import Backend
from scoring.errors import ModelLoadError
from scoring.settings import ScoringSettings

log = logging.getLogger("scoring.backends")

BACKENDS = ("onnx", "hog", "frozen_graph", "saved_model", "null")


def create_backend(settings: ScoringSettings) -> Backend:
    """The configured backend, not loaded yet. Cheap; ``load()`` does the slow part."""
    name = settings.resolved_backend()
    if name == "null":
        from scoring.backends.null import NullBackend

        return NullBackend(settings)
    if name == "hog":
        from scoring.backends.hog import HogBackend

        fallback = settings.model_path is None
        if fallback:
            log.warning(
                "*** FALLBACK DETECTOR *** no model configured (SCORING_MODEL_PATH is not set): "
                "using OpenCV's "
                "HOG people detector. It finds upright full-body people in daylight only, never animals or "
                "vehicles. Configure a MegaDetector model for real use (see docs/scoring.md)."
            )
        return HogBackend(settings, fallback=fallback)
    if name == "onnx":
        from scoring.backends.onnx_yolo import OnnxBackend

        return OnnxBackend(settings)
    if name == "frozen_graph":
        from scoring.backends.tensorflow_od import FrozenGraphBackend

        return FrozenGraphBackend(settings)
    if name == "saved_model":
        from scoring.backends.tensorflow_od import SavedModelBackend

        return SavedModelBackend(settings)
    raise ModelLoadError(f"unknown SCORING_BACKEND {name!r}; one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "create_backend"]
