"""Settings of the scoring service: environment variables named ``SCORING_*``, read once at start.

A bad value fails at start with an error naming the variable (``ScoringSettingsError``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as _EnvParseError

ENV_PREFIX = "SCORING_"

Backend = Literal["auto", "onnx", "hog", "frozen_graph", "saved_model", "null"]
OnnxLayout = Literal["auto", "yolov5", "yolov8"]
ClaheMode = Literal["off", "night", "always"]


class ScoringSettingsError(RuntimeError):
    """A SCORING_* setting is missing or malformed; the message names it."""


class ScoringSettings(BaseSettings):
    """Every knob of the service. Each field ``x`` is read from the environment variable ``SCORING_X``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore")

    # --- model -------------------------------------------------------------------------------------------
    backend: Backend = Field(
        "auto",
        description="onnx | hog | frozen_graph | saved_model | null; auto = onnx for a .onnx file, "
        "frozen_graph for a .pb file, saved_model for a directory, hog (the fallback) when "
        "SCORING_MODEL_PATH is not set",
    )
    model_path: Path | None = Field(
        None, description="MegaDetector .onnx file (v5, v1000), .pb file (v4.1) or SavedModel directory"
    )
    model_version: str | None = Field(
        None,
        description="detector version reported in info (default: guessed from the file name, e.g. v4.1.0)",
    )
    typical_threshold: float | None = Field(
        None, ge=0, le=1, description="override the recommended threshold"
    )
    conservative_threshold: float | None = Field(None, ge=0, le=1)
    output_threshold: float = Field(
        0.1, ge=0, le=1, description="detections below this confidence are not returned at all"
    )
    max_detections: int = Field(100, ge=1, le=1000, description="at most this many detections per image")
    class_map: Annotated[dict[str, str] | None, NoDecode] = Field(
        None,
        description="JSON object: model class id -> MegaDetector category, "
        'e.g. {"1":"1","2":"2","3":"3"} (the '
        "default); classes not in the map are dropped",
    )
    saved_model_signature: str = Field("serving_default", description="signature of a SavedModel to call")

    expected_model: str | None = Field(
        None,
        description="catalogue release the deployment expects (e.g. mdv1000-redwood); a loaded model of "
        "another version fails the start",
    )

    # --- ONNX (YOLO exports: MegaDetector v5, v1000) ---------------------------------------------------
    model_image_size: int | None = Field(
        None,
        ge=32,
        le=4096,
        description="letterbox size of an ONNX model whose input size is dynamic (default: the model's "
        "metadata, else the catalogue's size for its version); must equal a static input size",
    )
    nms_iou: float = Field(0.45, gt=0, le=1, description="IoU above which NMS drops a box of the same class")
    onnx_layout: OnnxLayout = Field(
        "auto",
        description="output layout: yolov5 [N,K,5+C] | yolov8 [N,4+C,K] (v8/v9/v11) | auto (from the shape)",
    )
    onnx_providers: str = Field(
        "auto",
        description="ONNX Runtime execution providers in order of preference, comma-separated: "
        "tensorrt, cuda, cpu (or full names); auto = TensorRT, CUDA, CPU, whichever are available",
    )
    onnx_threads: int | None = Field(
        None, ge=1, le=256, description="intra-op threads of ONNX Runtime on CPU (default: all cores)"
    )

    # --- preprocessing -----------------------------------------------------------------------------------
    max_pixels: int = Field(50_000_000, gt=0, description="larger images fail with too_many_pixels")
    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0, description="larger request bodies answer 413")
    max_files: int = Field(32, ge=1, le=1024, description="most images in one /v1/detect/batch request")
    resize_long_side: int | None = Field(
        None, gt=0, description="downscale so that the long side is at most this (keeps aspect)"
    )
    input_size: Annotated[tuple[int, int] | None, NoDecode] = Field(
        None,
        description='resize every image to exactly "WxH" before the model (stretch; boxes stay normalized)',
    )
    night_chroma_max: float = Field(
        6.0, ge=0, description="mean max-min channel spread at or below which a frame is greyscale (infrared)"
    )
    night_luma_max: float = Field(
        40.0, ge=0, le=255, description="mean luma at or below which a frame is dark"
    )
    clahe: ClaheMode = Field("off", description="apply CLAHE: off | night (night frames only) | always")
    clahe_clip_limit: float = Field(2.0, gt=0)
    clahe_tile: int = Field(8, ge=1, le=64)

    # --- video clips (POST /v1/detect-video; scoring/video.py) ------------------------------------------
    video_every_s: float = Field(1.0, gt=0, le=600, description="sample one frame every this many seconds")
    video_max_frames: int = Field(
        20, ge=2, le=256, description="most frames scored per clip (the first and the last included)"
    )
    video_max_duration_s: float = Field(
        300.0, gt=0, description="longer clips fail with video_too_long (the clip is kept by the caller)"
    )
    video_max_body_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="larger clips answer 413 (SCORING_MAX_BODY_BYTES is for photos)"
    )

    # --- batching ----------------------------------------------------------------------------------------
    max_batch: int = Field(8, ge=1, le=256, description="most images in one model call")
    max_wait_ms: float = Field(10.0, ge=0, le=10_000, description="longest wait for a batch to fill")
    queue_limit: int = Field(64, ge=1, description="images admitted and not yet in a model call; more -> 503")
    # --- lanes (header X-TrapAlert-Lane: live | bulk; scoring/batching.py) ------------------------------
    bulk_queue_limit: int | None = Field(
        None, ge=1, description="most bulk-lane images admitted at once (default: a quarter of queue_limit)"
    )
    bulk_max_batch: int | None = Field(
        None, ge=1, description="most bulk-lane images in one model call (default: half of max_batch)"
    )
    preprocess_threads: int = Field(
        max(1, min(8, os.cpu_count() or 1)), ge=1, le=64, description="threads that decode images"
    )

    # --- security ----------------------------------------------------------------------------------------
    api_key: SecretStr | None = Field(None, description="when set, /v1/* requires header X-API-Key")

    # --- HOG fallback ------------------------------------------------------------------------------------
    hog_max_side: int = Field(960, ge=128, description="HOG runs on a copy downscaled to this long side")
    hog_scale: float = Field(1.05, gt=1.0, le=2.0, description="HOG image pyramid step")
    hog_win_stride: int = Field(8, ge=1, le=64)
    hog_hit_threshold: float = Field(0.0, description="HOG SVM margin below which a window is ignored")

    # --- null backend (benchmarks, pipeline tests, fault drills) ----------------------------------------
    null_result: str = Field("empty", description='"empty", "person", or a JSON list of detections')
    null_delay_ms: float = Field(0.0, ge=0, description="simulated model time per model call")
    null_load_delay_s: float = Field(0.0, ge=0, description="simulated model load time")

    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")

    @field_validator("input_size", mode="before")
    @classmethod
    def _parse_size(cls, value):
        if isinstance(value, str):
            text = value.strip().lower()
            if not text:
                return None
            try:
                w, h = (int(part) for part in text.split("x"))
            except ValueError:
                raise ValueError('must look like "1280x960"') from None
            if w <= 0 or h <= 0:
                raise ValueError("width and height must be positive")
            return (w, h)
        return value

    @field_validator("model_path", mode="before")
    @classmethod
    def _empty_path(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("class_map", mode="before")
    @classmethod
    def _parse_class_map(cls, value):
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else None
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        out = {str(k): str(v) for k, v in value.items()}
        for category in out.values():
            if category not in ("1", "2", "3"):
                raise ValueError(f'category {category!r} is not a MegaDetector category ("1", "2" or "3")')
        return out

    @field_validator("expected_model", mode="before")
    @classmethod
    def _known_model(cls, value):
        if isinstance(value, str) and not value.strip():
            return None
        if value is not None:
            from scoring.catalogue import CATALOGUE, release

            if release(value) is None:
                raise ValueError(f"unknown release {value!r}; one of {', '.join(sorted(CATALOGUE))}")
        return value

    @field_validator("null_result")
    @classmethod
    def _check_null_result(cls, value: str) -> str:
        from scoring.backends.null import parse_null_result

        parse_null_result(value)  # raises ValueError with the reason
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.queue_limit < self.max_batch:
            raise ValueError(f"queue_limit ({self.queue_limit}) must be >= max_batch ({self.max_batch})")
        return self

    def resolved_backend(self) -> str:
        """The backend that will run: ``auto`` resolved from SCORING_MODEL_PATH."""
        if self.backend != "auto":
            return self.backend
        if self.model_path is None:
            return "hog"
        if self.model_path.is_dir():
            return "saved_model"
        if self.model_path.suffix.lower() == ".onnx":
            return "onnx"
        return "frozen_graph"


def load_settings(**overrides) -> ScoringSettings:
    """Read and validate the settings; raise ScoringSettingsError naming each bad variable."""
    try:
        return ScoringSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err.get("loc") or ()
            name = f"{ENV_PREFIX}{str(loc[0]).upper()}" if loc else "SCORING settings"
            problems.append(f"{name}: {err.get('msg')}")
        raise ScoringSettingsError("invalid scoring settings: " + "; ".join(problems)) from None
    except _EnvParseError as exc:
        raise ScoringSettingsError(f"invalid scoring settings: {exc}") from None
