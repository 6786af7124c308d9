"""The four backends on real models: numbers out, box conversion, class mapping, thresholds, load errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from scoring.backends import create_backend
from scoring.backends.hog import margin_to_conf
from scoring.backends.null import parse_null_result
from scoring.backends.tensorflow_od import FrozenGraphBackend, SavedModelBackend
from scoring.errors import ModelLoadError
from scoring.preprocess import prepare
from scoring.schemas import Detection
from scoring.settings import ScoringSettingsError, load_settings
from tests.scoring.helpers import make_settings
from tests.support import tiny_models as tm


def bgr(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def close(det: Detection, category: str, conf: float, bbox, tol: float = 0.006) -> bool:
    return (
        det.category == category
        and abs(det.conf - conf) <= tol
        and all(abs(a - b) <= tol for a, b in zip(det.bbox, bbox, strict=False))
    )


@pytest.fixture(scope="module", params=["frozen_graph", "saved_model"])
def tf_backend(request, frozen_graph, saved_model):
    path = frozen_graph if request.param == "frozen_graph" else saved_model
    backend = create_backend(make_settings(backend=request.param, model_path=str(path)))
    backend.load()
    backend.warmup()
    return backend


class CountingMixin:
    calls: list[int]

    def _run(self, batch):
        self.calls.append(batch.shape[0])
        return super()._run(batch)


def test_tf_backend_reports_encoded_detections_as_xywh(tf_backend):
    image = bgr(
        tm.make_detections_image([("2", 0.93, (0.1, 0.2, 0.3, 0.4)), ("1", 0.55, (0.5, 0.5, 0.5, 0.5))])
    )
    (dets,) = tf_backend.detect([image])
    assert len(dets) == 2
    assert close(dets[0], "2", 0.93, (0.1, 0.2, 0.3, 0.4))
    assert close(dets[1], "1", 0.55, (0.5, 0.5, 0.5, 0.5))
    assert tf_backend.detect([bgr(tm.make_blank_image())]) == [[]]


def test_tf_backend_describes_model(tf_backend):
    info = tf_backend.describe()
    assert info["backend"] in ("frozen_graph", "saved_model") and info["supports_batch"] is True
    assert len(info["model_sha256"]) == 64 and info["fallback"] is False
    if info["backend"] == "frozen_graph":  # named md_v4.1.0.pb: MegaDetector v4.1's recommendations
        assert info["detector"] == "md_v4.1.0.pb" and info["detector_version"] == "v4.1.0"
        assert (info["typical_detection_threshold"], info["conservative_detection_threshold"]) == (0.8, 0.3)


@pytest.mark.parametrize("kind", ["frozen_graph", "saved_model"])
def test_batches_are_one_model_call_per_image_shape(kind, frozen_graph, saved_model):
    cls = FrozenGraphBackend if kind == "frozen_graph" else SavedModelBackend
    counting = type("Counting", (CountingMixin, cls), {})
    backend = counting(
        make_settings(backend=kind, model_path=str(frozen_graph if kind == "frozen_graph" else saved_model))
    )
    backend.load()
    backend.calls = []
    specs = [
        ("1", 0.9, (0.1, 0.1, 0.2, 0.2)),
        ("2", 0.8, (0.2, 0.2, 0.3, 0.3)),
        ("3", 0.7, (0.3, 0.3, 0.4, 0.4)),
    ]
    images = [bgr(tm.make_detection_image(*spec, size=(640, 480))) for spec in specs]
    images.insert(1, bgr(tm.make_detection_image("2", 0.66, (0.0, 0.0, 1.0, 1.0), size=(400, 300))))
    results = backend.detect(images)
    assert sorted(backend.calls) == [1, 3]  # three 640x480 in one call, the 400x300 in another
    assert close(results[1][0], "2", 0.66, (0.0, 0.0, 1.0, 1.0))
    for dets, spec in zip([results[0], results[2], results[3]], specs, strict=False):
        assert len(dets) == 1 and close(dets[0], *spec)


def test_saved_model_with_fixed_batch_of_one(saved_model_batch1):
    backend = create_backend(make_settings(backend="saved_model", model_path=str(saved_model_batch1)))
    backend.load()
    assert backend.supports_batch is False
    images = [bgr(tm.make_detection_image("3", c, (0.1, 0.1, 0.5, 0.5))) for c in (0.5, 0.7, 0.9)]
    results = backend.detect(images)
    assert [round(r[0].conf, 2) for r in results] == [0.5, 0.7, 0.9]


def test_class_map_and_thresholds(frozen_graph):
    image = bgr(
        tm.make_detections_image(
            [
                ("1", 0.95, (0.1, 0.1, 0.1, 0.1)),
                ("2", 0.3, (0.2, 0.2, 0.1, 0.1)),
                ("3", 0.05, (0.3, 0.3, 0.1, 0.1)),
            ]
        )
    )
    default = create_backend(make_settings(backend="frozen_graph", model_path=str(frozen_graph)))
    default.load()
    # output threshold 0.1 (default) drops the 0.05 vehicle
    assert [(d.category, round(d.conf, 2)) for d in default.detect([image])[0]] == [("1", 0.95), ("2", 0.3)]

    mapped = create_backend(
        make_settings(
            backend="frozen_graph",
            model_path=str(frozen_graph),
            class_map='{"1": "2", "3": "3"}',
            output_threshold=0.0,
            max_detections=5,
        )
    )
    mapped.load()
    # model class 1 is reported as person, class 2 is not in the map (dropped), class 3 kept at 0.05
    assert [(d.category, round(d.conf, 2)) for d in mapped.detect([image])[0]] == [("2", 0.95), ("3", 0.05)]

    capped = create_backend(
        make_settings(
            backend="frozen_graph", model_path=str(frozen_graph), output_threshold=0.0, max_detections=1
        )
    )
    capped.load()
    assert [round(d.conf, 2) for d in capped.detect([image])[0]] == [0.95]


def test_frozen_graph_through_preprocessing_with_resize(frozen_graph):
    backend = create_backend(make_settings(backend="frozen_graph", model_path=str(frozen_graph)))
    backend.load()
    settings = make_settings(input_size="300x300")
    prepared = prepare(
        tm.make_detection_image("2", 0.88, (0.6, 0.1, 0.3, 0.8), size=(1920, 1080)), "x", settings
    )
    (dets,) = backend.detect([prepared.image])
    assert close(dets[0], "2", 0.88, (0.6, 0.1, 0.3, 0.8), tol=0.01)


# -- load errors -------------------------------------------------------------------------------------------
def load_error(**values) -> str:
    backend = create_backend(make_settings(**values))
    with pytest.raises(ModelLoadError) as info:
        backend.load()
    return str(info.value)


def test_missing_model_file_names_file_and_signature(tmp_path):
    message = load_error(backend="frozen_graph", model_path=str(tmp_path / "md_v4.1.0.pb"))
    assert (
        str(tmp_path / "md_v4.1.0.pb") in message
        and "image_tensor:0" in message
        and "detection_boxes" in message
    )
    message = load_error(backend="saved_model", model_path=str(tmp_path))
    assert str(tmp_path) in message and "serving_default" in message


def test_corrupt_frozen_graph(tmp_path):
    path = tmp_path / "md_v4.1.0.pb"
    path.write_bytes(b"\x0a\xff\xff\xff\xff this is not a protobuf" * 10)
    message = load_error(backend="frozen_graph", model_path=str(path))
    assert str(path) in message and "image_tensor:0" in message


def test_truncated_frozen_graph(tmp_path, frozen_graph):
    path = tmp_path / "md_v4.1.0.pb"
    path.write_bytes(frozen_graph.read_bytes()[: frozen_graph.stat().st_size // 2])
    message = load_error(backend="frozen_graph", model_path=str(path))
    assert str(path) in message and "detection_boxes:0" in message


def test_mismatched_frozen_graph(tmp_path):
    path = tm.build_wrong_frozen_graph(tmp_path / "classifier.pb")
    message = load_error(backend="frozen_graph", model_path=str(path))
    assert "lacks tensor(s) image_tensor:0, detection_boxes:0" in message and str(path) in message


def test_mismatched_saved_model(tmp_path):
    tf = tm._tf()

    class Classifier(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32)])
        def serve(self, x):
            return {"logits": tf.reduce_mean(x, axis=[1, 2])}

    module = Classifier()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    message = load_error(backend="saved_model", model_path=str(tmp_path / "sm"))
    assert "not uint8" in message and str(tmp_path / "sm") in message
    message = load_error(
        backend="saved_model", model_path=str(tmp_path / "sm"), saved_model_signature="detect"
    )
    assert "no signature 'detect'" in message


def test_auto_backend_resolution(tmp_path, frozen_graph, saved_model):
    assert make_settings().resolved_backend() == "hog"
    assert make_settings(model_path=str(frozen_graph)).resolved_backend() == "frozen_graph"
    assert make_settings(model_path=str(saved_model)).resolved_backend() == "saved_model"


# -- HOG ---------------------------------------------------------------------------------------------------
def draw_person(img: np.ndarray, cx: int, top: int, height: int) -> tuple[int, int, int, int]:
    """A dark upright silhouette (head, torso, arms, legs); returns its pixel box (x0, y0, x1, y1)."""
    u = height / 8.0
    color = (40, 40, 40)
    cv2.ellipse(img, (cx, int(top + u * 0.5)), (int(u * 0.38), int(u * 0.5)), 0, 0, 360, color, -1)
    cv2.rectangle(
        img, (int(cx - u * 0.15), int(top + u * 0.95)), (int(cx + u * 0.15), int(top + u * 1.2)), color, -1
    )
    torso = np.array(
        [
            [cx - u * 0.95, top + u * 1.2],
            [cx + u * 0.95, top + u * 1.2],
            [cx + u * 0.7, top + u * 4.1],
            [cx - u * 0.7, top + u * 4.1],
        ],
        np.int32,
    )
    cv2.fillPoly(img, [torso], color)
    for side in (-1, 1):
        cv2.line(
            img,
            (int(cx + side * u * 0.9), int(top + u * 1.3)),
            (int(cx + side * u * 1.1), int(top + u * 4.2)),
            color,
            int(u * 0.35),
        )
        cv2.line(
            img,
            (int(cx + side * u * 0.4), int(top + u * 4.0)),
            (int(cx + side * u * 0.55), int(top + u * 7.9)),
            color,
            int(u * 0.5),
        )
    return int(cx - u * 1.2), top, int(cx + u * 1.2), top + height


@pytest.fixture(scope="module")
def hog():
    backend = create_backend(make_settings())
    backend.load()
    return backend


def test_hog_fallback_finds_an_upright_person(hog):
    img = np.full((480, 640, 3), 200, np.uint8)
    x0, y0, x1, y1 = draw_person(img, 320, 40, 300)
    img = cv2.GaussianBlur(img, (0, 0), 1.5)
    (dets,) = hog.detect([img])
    assert len(dets) >= 1
    best = dets[0]
    assert best.category == "2" and best.conf >= hog.typical_threshold
    bx, by, bw, bh = best.bbox
    # HOG boxes include the detection window's margin: the silhouette lies inside the box
    assert bx <= x0 / 640 and by <= y0 / 480 + 0.02 and bx + bw >= x1 / 640 and by + bh >= y1 / 480 - 0.02
    assert bw < 0.5 and bh < 0.95


def test_hog_sees_nothing_in_a_plain_or_tiny_frame(hog):
    assert hog.detect([np.full((1080, 1920, 3), 128, np.uint8)]) == [[]]
    assert hog.detect([np.full((100, 50, 3), 128, np.uint8)]) == [[]]


def test_hog_downscales_large_frames_and_keeps_normalized_boxes(hog):
    small = np.full((480, 640, 3), 200, np.uint8)
    draw_person(small, 320, 40, 300)
    small = cv2.GaussianBlur(small, (0, 0), 1.5)
    big = cv2.resize(small, (1920, 1440), interpolation=cv2.INTER_LINEAR)
    (a,), (b,) = hog.detect([small]), hog.detect([big])
    assert a and b
    np.testing.assert_allclose(a[0].bbox, b[0].bbox, atol=0.05)


def test_hog_describes_its_limits_and_fallback(hog):
    info = hog.describe()
    assert info["fallback"] is True and info["backend"] == "hog" and info["supports_batch"] is False
    assert any("never animals" in limit for limit in info["limits"])
    assert margin_to_conf(0.5) == 0.5 and 0.72 < margin_to_conf(1.0) < 0.74


# -- null --------------------------------------------------------------------------------------------------
def test_null_results():
    assert parse_null_result("empty") == []
    assert parse_null_result("person") == [Detection("2", 0.95, (0.4, 0.3, 0.2, 0.5))]
    custom = [{"category": "1", "conf": 0.42, "bbox": [0.1, 0.2, 0.3, 0.4]}]
    backend = create_backend(make_settings(backend="null", null_result=json.dumps(custom)))
    backend.load()
    assert (
        backend.detect([np.zeros((10, 10, 3), np.uint8)] * 2)
        == [[Detection("1", 0.42, (0.1, 0.2, 0.3, 0.4))]] * 2
    )
    for bad in (
        "nobody",
        '{"category": "1"}',
        '[{"category": "9", "conf": 0.5, "bbox": [0, 0, 1, 1]}]',
        '[{"category": "1", "conf": 2, "bbox": [0, 0, 1, 1]}]',
        '[{"category": "1", "conf": 0.5, "bbox": [0.5, 0, 1, 1]}]',
    ):
        with pytest.raises(ValueError):
            parse_null_result(bad)


def test_bad_settings_name_the_variable(monkeypatch):
    monkeypatch.setenv("SCORING_NULL_RESULT", "nobody")
    with pytest.raises(ScoringSettingsError, match="SCORING_NULL_RESULT"):
        load_settings()
    monkeypatch.setenv("SCORING_NULL_RESULT", "empty")
    monkeypatch.setenv("SCORING_CLASS_MAP", '{"1": "7"}')
    with pytest.raises(ScoringSettingsError, match="SCORING_CLASS_MAP"):
        load_settings()
    monkeypatch.delenv("SCORING_CLASS_MAP")
    monkeypatch.setenv("SCORING_QUEUE_LIMIT", "2")
    monkeypatch.setenv("SCORING_MAX_BATCH", "8")
    with pytest.raises(ScoringSettingsError, match="queue_limit"):
        load_settings()
