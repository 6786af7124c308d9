"""The onnx backend (ONNX Runtime) on tiny YOLO models of both export layouts, built by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from scoring.app import create_app
from scoring.backends import create_backend
from scoring.backends.onnx_yolo import PAD_VALUE, OnnxBackend, choose_providers, letterbox, nms
from scoring.errors import ModelLoadError
from tests.scoring.helpers import make_settings, wait_ready
from tests.scoring.onnx_models import Box, build_wrong_input, build_wrong_output, build_yolo, input_box
from tests.support.scoring_process import REPO_ROOT

LAYOUTS = ["yolov5", "yolov8"]
PHOTOS = {"landscape": (1920, 1080), "portrait": (1080, 1920), "square": (1000, 1000), "odd": (1001, 563)}


def backend_for(path, **values) -> OnnxBackend:
    backend = create_backend(make_settings(model_path=str(path), **values))
    assert isinstance(backend, OnnxBackend)
    backend.load()
    return backend


def photo(width: int, height: int, value: int = 90) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


def jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


# -- letterbox -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", PHOTOS)
def test_letterbox_keeps_aspect_and_pads_grey_centred(kind):
    w, h = PHOTOS[kind]
    img = photo(w, h, 200)
    canvas, lb = letterbox(img, 640)
    assert canvas.shape == (640, 640, 3)
    r = min(640 / w, 640 / h)
    assert (round(w * r), round(h * r)) == (round(lb.scale_x * w), round(lb.scale_y * h))
    # photo pixels inside, grey 114 outside, padding split evenly (centred, at most one pixel apart)
    inner = canvas[lb.pad_y : lb.pad_y + round(h * lb.scale_y), lb.pad_x : lb.pad_x + round(w * lb.scale_x)]
    assert int(inner.min()) == 200 and int(inner.max()) == 200
    right = 640 - round(w * lb.scale_x) - lb.pad_x
    bottom = 640 - round(h * lb.scale_y) - lb.pad_y
    assert abs(right - lb.pad_x) <= 1 and abs(bottom - lb.pad_y) <= 1
    if lb.pad_x or lb.pad_y:
        assert tuple(canvas[0, 0]) == (PAD_VALUE,) * 3 and tuple(canvas[-1, -1]) == (PAD_VALUE,) * 3
    if kind == "landscape":
        assert (lb.pad_x, lb.pad_y) == (0, 140)
    if kind == "portrait":
        assert (lb.pad_x, lb.pad_y) == (140, 0)
    if kind == "square":
        assert (lb.pad_x, lb.pad_y) == (0, 0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", PHOTOS)
def test_boxes_map_back_to_the_photo_exactly(tmp_path, layout, kind):
    w, h = PHOTOS[kind]
    want = [(0.25, 0.3, 0.2, 0.4), (0.05, 0.6, 0.5, 0.35)]
    boxes = [
        Box(0, *input_box(w, h, 640, want[0]), score=0.9),
        Box(1, *input_box(w, h, 640, want[1]), score=0.7),
    ]
    backend = backend_for(build_yolo(tmp_path / "m.onnx", boxes, layout=layout))
    (dets,) = backend.detect([photo(w, h)])
    assert [d.category for d in dets] == ["1", "2"]
    for det, box in zip(dets, want, strict=True):
        np.testing.assert_allclose(det.bbox, box, atol=1e-3)


def test_boxes_outside_the_photo_are_clipped_and_padding_only_boxes_dropped(tmp_path):
    # landscape 1920x1080 at 640: the photo spans y 140..500; a box in the top padding is not in the photo
    boxes = [Box(0, 320, 60, 100, 60, score=0.9), Box(1, 600, 320, 100, 100, score=0.8)]
    backend = backend_for(build_yolo(tmp_path / "m.onnx", boxes))
    (dets,) = backend.detect([photo(1920, 1080)])
    (det,) = dets
    assert det.category == "2"
    x, y, bw, bh = det.bbox
    assert x + bw <= 1.0 + 1e-9 and abs((x + bw) - 1.0) < 1e-9  # 650 px > 640: clipped at the right edge


# -- decoding: confidence, NMS, classes, thresholds ------------------------------------------------
def test_yolov5_confidence_is_objectness_times_class_score(tmp_path):
    boxes = [Box(2, 200, 200, 50, 50, obj=0.8, score=0.5), Box(0, 400, 400, 50, 50, obj=0.05, score=1.0)]
    backend = backend_for(build_yolo(tmp_path / "m.onnx", boxes), output_threshold=0.1)
    (dets,) = backend.detect([photo(640, 640)])
    (det,) = dets  # the second: objectness 0.05 is below the threshold whatever its class score
    assert det.category == "3" and det.conf == pytest.approx(0.4, abs=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nms_drops_a_duplicate_of_the_same_class_only(tmp_path, layout):
    boxes = [
        Box(1, 300, 300, 100, 200, score=0.9),
        Box(1, 305, 302, 100, 200, score=0.6),  # IoU ~0.9 with the first: a duplicate
        Box(0, 305, 302, 100, 200, score=0.5),  # same place, other class: kept
        Box(1, 500, 300, 100, 200, score=0.7),  # same class, no overlap: kept
    ]
    backend = backend_for(build_yolo(tmp_path / "m.onnx", boxes, layout=layout))
    (dets,) = backend.detect([photo(640, 640)])
    assert [(d.category, round(d.conf, 3)) for d in dets] == [("2", 0.9), ("2", 0.7), ("1", 0.5)]
    loose = backend_for(tmp_path / "m.onnx", nms_iou=0.95)
    assert len(loose.detect([photo(640, 640)])[0]) == 4


def test_nms_function_greedy_by_confidence():
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    conf = np.array([0.5, 0.9, 0.8, 0.1], np.float32)
    cls = np.array([0, 0, 1, 0])
    assert nms(xyxy, conf, cls, 0.45).tolist() == [1, 2, 3]
    assert nms(xyxy[:0], conf[:0], cls[:0], 0.45).tolist() == []


def test_class_map_default_and_custom(tmp_path):
    boxes = [Box(c, 100 + 150 * c, 300, 80, 80, score=0.9 - 0.1 * c) for c in range(3)]
    path = build_yolo(tmp_path / "m.onnx", boxes)
    (dets,) = backend_for(path).detect([photo(640, 640)])
    assert [d.category for d in dets] == ["1", "2", "3"]  # 0 animal, 1 person, 2 vehicle
    (dets,) = backend_for(path, class_map=json.dumps({"1": "2"})).detect([photo(640, 640)])
    assert [d.category for d in dets] == ["2"]  # unmapped classes are dropped


@pytest.mark.parametrize(
    "name, typical, conservative",
    [
        ("md_v5a.0.0.onnx", 0.2, 0.05),
        ("md_v5b.0.0.onnx", 0.2, 0.05),
        ("md_v1000.0.0-redwood.onnx", 0.3, 0.15),
        ("md_v1000.0.0-spruce.onnx", 0.3, 0.15),
        ("detector.onnx", 0.5, 0.25),
    ],
)
def test_thresholds_come_from_the_catalogue_by_version(tmp_path, name, typical, conservative):
    backend = backend_for(build_yolo(tmp_path / name, [Box(0, 100, 100, 20, 20)]))
    assert (backend.typical_threshold, backend.conservative_threshold) == (typical, conservative)
    assert backend.detector_metadata()["typical_detection_threshold"] == typical
    overridden = backend_for(tmp_path / name, typical_threshold=0.42)
    assert overridden.typical_threshold == 0.42


def test_output_threshold_and_max_detections(tmp_path):
    boxes = [Box(0, 30 + 60 * i, 300, 40, 40, score=0.95 - 0.1 * i) for i in range(8)]
    path = build_yolo(tmp_path / "m.onnx", boxes)
    (dets,) = backend_for(path, output_threshold=0.5).detect([photo(640, 640)])
    assert [round(d.conf, 2) for d in dets] == [0.95, 0.85, 0.75, 0.65, 0.55]
    (dets,) = backend_for(path, output_threshold=0.1, max_detections=3).detect([photo(640, 640)])
    assert [round(d.conf, 2) for d in dets] == [0.95, 0.85, 0.75]


# -- batch dimension -------------------------------------------------------------------------------
def test_batch_one_model_runs_one_image_per_call(tmp_path):
    path = build_yolo(tmp_path / "b1.onnx", [Box(1, 320, 320, 100, 100)], batch=1, brightness_box=True)
    backend = backend_for(path)
    assert backend.supports_batch is False and backend.fixed_batch == 1
    dets = backend.detect([photo(640, 640, 51), photo(640, 640, 204), photo(640, 640, 102)])
    assert [round(d[0].conf, 2) for d in dets] == [0.2, 0.8, 0.4]
    assert backend.describe()["max_batch"] == 1 and backend.describe()["onnx"]["batch"] == 1


def test_dynamic_batch_model_answers_each_image_in_order(tmp_path):
    path = build_yolo(tmp_path / "dyn.onnx", [Box(1, 320, 320, 100, 100)], brightness_box=True)
    backend = backend_for(path, max_batch=8)
    assert backend.supports_batch is True and backend.fixed_batch is None
    calls = []
    run = backend._run
    backend._run = lambda canvases: calls.append(len(canvases)) or run(canvases)
    dets = backend.detect([photo(640, 640, v) for v in (51, 204, 102, 153)])
    assert calls == [4]  # one model call for the whole batch
    assert [round(d[0].conf, 2) for d in dets] == [0.2, 0.8, 0.4, 0.6]


def test_service_batches_a_dynamic_model_and_not_a_batch_one_model(tmp_path):
    files = [("files", (f"{v}.jpg", jpeg(photo(640, 640, v)), "image/jpeg")) for v in (51, 204, 102)]
    for name, batch, expected_batch in (("dyn.onnx", None, 3), ("b1.onnx", 1, 1)):
        path = build_yolo(tmp_path / name, [Box(1, 320, 320, 100, 100)], batch=batch, brightness_box=True)
        settings = make_settings(model_path=str(path), max_batch=8, max_wait_ms=200)
        with TestClient(create_app(settings)) as client:
            wait_ready(client)
            body = client.post("/v1/detect/batch", files=files).json()
            assert body["info"]["batch_size"] == expected_batch
            confs = [round(i["detections"][0]["conf"], 1) for i in body["images"]]
            assert confs == [0.2, 0.8, 0.4]
            model = client.get("/v1/model").json()
            assert model["backend"] == "onnx" and model["supports_batch"] is (batch is None)
            assert model["execution_provider"] == "CPUExecutionProvider"
            assert model["onnx"]["providers"] == ["CPUExecutionProvider"]
            assert model["input"]["shape"] == f"[{batch or 'N'}, 3, 640, 640]"
            assert model["model_sha256"] and model["ready"] is True


# -- input size ------------------------------------------------------------------------------------
def test_dynamic_input_size_from_metadata_catalogue_or_setting(tmp_path):
    box = [Box(0, 100, 100, 20, 20)]
    meta = build_yolo(tmp_path / "x.onnx", box, size=None, metadata={"imgsz": "[960, 960]"})
    assert backend_for(meta).image_size == 960
    renamed = build_yolo(tmp_path / "detector.onnx", box, size=None,
                         metadata={"imgsz": "[640, 640]", "megadetector.version": "v1000.0.0-larch"})
    larch = backend_for(renamed)
    assert (larch.detector_version, larch.image_size) == ("v1000.0.0-larch", 640)
    assert larch.typical_threshold == 0.3
    spruce = build_yolo(tmp_path / "md_v1000.0.0-spruce.onnx", box, size=None)
    assert backend_for(spruce).image_size == 640
    v5 = build_yolo(tmp_path / "md_v5a.0.0.onnx", box, size=None)
    assert backend_for(v5).image_size == 1280
    assert backend_for(v5, model_image_size=320).image_size == 320
    unknown = build_yolo(tmp_path / "custom.onnx", box, size=None)
    with pytest.raises(ModelLoadError, match="SCORING_MODEL_IMAGE_SIZE"):
        backend_for(unknown)
    static = build_yolo(tmp_path / "static.onnx", box, size=640)
    with pytest.raises(ModelLoadError, match="static input size 640"):
        backend_for(static, model_image_size=1280)


# -- wrong files -----------------------------------------------------------------------------------
def test_wrong_models_fail_naming_the_file_and_the_signature(tmp_path):
    cases = {
        "missing.onnx": ("does not exist", None),
        "garbage.onnx": ("cannot be loaded by ONNX Runtime", lambda p: p.write_bytes(b"not a model at all")),
        "wrong_input.onnx": ("not float32 [N,3,S,S]", build_wrong_input),
        "wrong_output.onnx": ("not [N,K,5+C] or [N,4+C,K]", build_wrong_output),
    }
    for name, (reason, make) in cases.items():
        path = tmp_path / name
        if make is not None:
            make(path)
        with pytest.raises(ModelLoadError) as info:
            backend_for(path)
        message = str(info.value)
        assert str(path) in message and reason in message, message
        assert "expected an ONNX YOLO detector with one input float32 [N,3,S,S]" in message


def test_too_few_values_per_box_is_refused(tmp_path):
    path = build_yolo(tmp_path / "m.onnx", [], layout="yolov5", num_classes=0)
    with pytest.raises(ModelLoadError, match="too few values per box"):
        backend_for(path, onnx_layout="yolov5")


def test_check_command_exit_codes_name_the_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    good = build_yolo(tmp_path / "md_v1000.0.0-cedar.onnx", [Box(0, 100, 100, 20, 20)], layout="yolov8")
    bad = build_wrong_output(tmp_path / "md_v5a.0.0.onnx")
    runs = {}
    for key, model in (("good", good), ("bad", bad), ("missing", tmp_path / "none.onnx")):
        runs[key] = subprocess.run(
            [sys.executable, "-m", "scoring", "--check"],
            cwd=REPO_ROOT,
            env=env | {"SCORING_MODEL_PATH": str(model)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert runs["good"].returncode == 0, runs["good"].stderr
    described = json.loads(runs["good"].stdout)
    assert described["backend"] == "onnx" and described["detector_version"] == "v1000.0.0-cedar"
    assert described["onnx"]["layout"] == "yolov8" and described["typical_detection_threshold"] == 0.3
    assert runs["bad"].returncode == 3 and str(bad) in runs["bad"].stderr
    assert "expected an ONNX YOLO detector" in runs["bad"].stderr
    assert runs["missing"].returncode == 2 and "none.onnx does not exist" in runs["missing"].stderr


# -- providers and settings ------------------------------------------------------------------------
def test_providers_auto_and_explicit():
    cpu_only = ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", cpu_only) == cpu_only
    assert choose_providers("auto", gpu) == gpu
    assert choose_providers("cuda,cpu", gpu) == gpu[1:]
    with pytest.raises(ModelLoadError, match="SCORING_ONNX_PROVIDERS asks for 'cuda'"):
        choose_providers("cuda", cpu_only)


def test_auto_backend_picks_onnx_for_onnx_files(tmp_path):
    assert make_settings(model_path=str(tmp_path / "m.onnx")).resolved_backend() == "onnx"
    assert make_settings(model_path=str(tmp_path / "m.ONNX")).resolved_backend() == "onnx"
    assert make_settings(model_path=str(tmp_path / "m.pb")).resolved_backend() == "frozen_graph"


def test_expected_model_guards_against_an_image_with_another_release(tmp_path):
    path = build_yolo(tmp_path / "md_v1000.0.0-cedar.onnx", [Box(0, 100, 100, 20, 20)], layout="yolov8")
    backend_for(path, expected_model="mdv1000-cedar").verify_expected_model()
    wrong = backend_for(path, expected_model="mdv1000-redwood")
    with pytest.raises(ModelLoadError, match="EXPECTED_MODEL=mdv1000-redwood expects v1000.0.0-redwood"):
        wrong.verify_expected_model()
    settings = make_settings(model_path=str(path), expected_model="mdv1000-redwood")
    with TestClient(create_app(settings)) as client:
        for _ in range(200):
            if client.app.state.service.load_error:
                break
            time.sleep(0.02)
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["code"] == "model_failed"
        assert "expects v1000.0.0-redwood" in r.json()["detail"]
    with pytest.raises(ValueError, match="unknown release 'mdv99'"):
        make_settings(expected_model="mdv99")
