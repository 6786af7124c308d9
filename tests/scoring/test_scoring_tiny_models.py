"""The controlled tiny detectors themselves: raw OD API outputs, read without scoring's backends."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.support import tiny_models as tm


def rgb(jpeg: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def tf():
    return tm._tf()


def run_frozen_graph_tf1(tf, path, batch):
    """Run the .pb the TF1 way (Session), independently of scoring's wrap_function loader."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run(
            ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"],
            feed_dict={"image_tensor:0": batch},
        )


def test_frozen_graph_raw_outputs_follow_the_od_api(tf, frozen_graph):
    two = tm.make_detections_image([("1", 0.5, (0.0, 0.6, 1.0, 0.4)), ("2", 0.93, (0.1, 0.2, 0.3, 0.4))])
    blank = tm.make_blank_image()
    boxes, scores, classes, num = run_frozen_graph_tf1(tf, frozen_graph, np.stack([rgb(two), rgb(blank)]))
    assert boxes.shape == (2, tm.SLOTS, 4) and scores.shape == (2, tm.SLOTS) and num.shape == (2,)
    assert num.dtype == np.float32 and classes.dtype == np.float32
    assert num.tolist() == [2.0, 0.0]
    # sorted by score: the person (0.93) first; boxes are [ymin, xmin, ymax, xmax]
    assert classes[0, :2].tolist() == [2.0, 1.0]
    np.testing.assert_allclose(scores[0, :2], [0.93, 0.5], atol=0.005)
    np.testing.assert_allclose(boxes[0, 0], [0.2, 0.1, 0.6, 0.4], atol=0.01)
    np.testing.assert_allclose(boxes[0, 1], [0.6, 0.0, 1.0, 1.0], atol=0.01)
    assert scores[0, 2] == 0.0 and scores[1].tolist() == [0.0, 0.0, 0.0]


def test_saved_model_signature_and_outputs(tf, saved_model, saved_model_batch1):
    sig = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    _args, kwargs = sig.structured_input_signature
    assert list(kwargs) == ["input_tensor"] and kwargs["input_tensor"].dtype == tf.uint8
    assert set(sig.structured_outputs) == {
        "detection_boxes",
        "detection_scores",
        "detection_classes",
        "num_detections",
    }
    out = sig(input_tensor=tf.constant(rgb(tm.make_detection_image("3", 0.77, (0.5, 0.5, 0.25, 0.5)))[None]))
    assert out["num_detections"].numpy().tolist() == [1.0]
    assert out["detection_classes"].numpy()[0, 0] == 3.0
    np.testing.assert_allclose(out["detection_boxes"].numpy()[0, 0], [0.5, 0.5, 1.0, 0.75], atol=0.01)

    b1 = tf.saved_model.load(str(saved_model_batch1)).signatures["serving_default"]
    assert b1.structured_input_signature[1]["input_tensor"].shape[0] == 1


@pytest.mark.parametrize("quality", [70, 80, 95])
@pytest.mark.parametrize("size", [(320, 240), (640, 480), (1920, 1080)])
@pytest.mark.parametrize("night", [False, True])
def test_code_survives_jpeg(tf, saved_model, quality, size, night):
    sig = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    jpeg = tm.make_detection_image(
        "2", 0.61, (0.33, 0.12, 0.5, 0.77), size=size, night=night, quality=quality
    )
    out = sig(input_tensor=tf.constant(rgb(jpeg)[None]))
    ymin, xmin, ymax, xmax = out["detection_boxes"].numpy()[0, 0]
    tol = 0.005 if quality >= 80 else 0.01
    assert abs(out["detection_scores"].numpy()[0, 0] - 0.61) <= tol
    np.testing.assert_allclose([xmin, ymin, xmax - xmin, ymax - ymin], [0.33, 0.12, 0.5, 0.77], atol=tol)


def test_encoding_rejects_what_it_cannot_carry():
    with pytest.raises(ValueError):
        tm.encode_detections([("2", 0.5, (0.1, 0.1, 0.1, 0.1))] * 4)
    with pytest.raises(ValueError):
        tm.encode_detections([("4", 0.5, (0.1, 0.1, 0.1, 0.1))])
    with pytest.raises(ValueError):
        tm.encode_detections([("1", 1.5, (0.1, 0.1, 0.1, 0.1))])
    with pytest.raises(ValueError):
        tm.encode_detections([("1", 0.5, (0.8, 0.1, 0.5, 0.1))])
