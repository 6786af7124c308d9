"""The HTTP API in process (FastAPI TestClient, real app, real backends): bodies, errors, key, OpenAPI."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from scoring.app import create_app
from scoring.schemas import DetectResponse, ErrorOut, ModelOut
from tests.scoring.helpers import make_settings, wait_ready
from tests.support import tiny_models as tm

JPEG = "image/jpeg"


def client_for(**values) -> TestClient:
    return TestClient(create_app(make_settings(**values)))


@pytest.fixture(scope="module")
def frozen_client(frozen_graph):
    with client_for(backend="frozen_graph", model_path=str(frozen_graph)) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def keyed_client():
    with client_for(backend="null", null_result="person", api_key="s3cret") as client:
        wait_ready(client)
        yield client


def check_format(body: dict) -> DetectResponse:
    parsed = DetectResponse.model_validate(body)
    assert body["info"]["format_version"] == "1.4"
    assert body["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    assert set(body["info"]["timing_ms"]) == {"decode", "preprocess", "queue", "model", "total"}
    for image in body["images"]:
        assert set(image) == {"file", "detections", "night", "width", "height", "failure"}
    return parsed


def test_raw_body_detect_returns_megadetector_format(frozen_client):
    jpeg = tm.make_detection_image("2", 0.93, (0.1, 0.2, 0.3, 0.4), size=(1280, 720))
    r = frozen_client.post("/v1/detect?file=cam1/IMG_0001.JPG", content=jpeg, headers={"Content-Type": JPEG})
    assert r.status_code == 200
    body = r.json()
    check_format(body)
    (image,) = body["images"]
    assert image["file"] == "cam1/IMG_0001.JPG" and image["failure"] is None
    assert (image["width"], image["height"], image["night"]) == (1280, 720, False)
    (det,) = image["detections"]
    assert det["category"] == "2" and abs(det["conf"] - 0.93) <= 0.005
    assert all(abs(a - b) <= 0.005 for a, b in zip(det["bbox"], [0.1, 0.2, 0.3, 0.4], strict=False))
    assert body["info"]["detector"] == "md_v4.1.0.pb" and body["info"]["detector_version"] == "v4.1.0"
    meta = body["info"]["detector_metadata"]
    assert meta["typical_detection_threshold"] == 0.8 and meta["megadetector_version"] == "v4.1.0"
    assert body["info"]["batch_size"] == 1 and body["info"]["timing_ms"]["model"] > 0


def test_multipart_detect_and_names(frozen_client):
    jpeg = tm.make_detection_image("1", 0.7, (0.5, 0.5, 0.2, 0.2), night=True)
    r = frozen_client.post("/v1/detect", files={"file": ("trap.jpg", jpeg, JPEG)})
    (image,) = r.json()["images"]
    assert (
        image["file"] == "trap.jpg" and image["night"] is True and image["detections"][0]["category"] == "1"
    )
    r = frozen_client.post("/v1/detect?file=override.jpg", files={"file": ("trap.jpg", jpeg, JPEG)})
    assert r.json()["images"][0]["file"] == "override.jpg"
    r = frozen_client.post("/v1/detect", content=jpeg)
    assert r.json()["images"][0]["file"] == "image"


def test_batch_endpoint_keeps_order_and_isolates_failures(frozen_client):
    files = [
        ("files", ("a.jpg", tm.make_detection_image("3", 0.8, (0.0, 0.0, 0.5, 0.5)), JPEG)),
        ("files", ("empty.jpg", b"", JPEG)),
        ("files", ("b.jpg", tm.make_blank_image(), JPEG)),
        ("files", ("notes.txt", b"not an image at all", "text/plain")),
        ("files", ("c.jpg", tm.make_detection_image("2", 0.5, (0.2, 0.2, 0.2, 0.2)), JPEG)),
    ]
    r = frozen_client.post("/v1/detect/batch", files=files)
    assert r.status_code == 200
    body = r.json()
    check_format(body)
    images = body["images"]
    assert [i["file"] for i in images] == ["a.jpg", "empty.jpg", "b.jpg", "notes.txt", "c.jpg"]
    assert images[0]["detections"][0]["category"] == "3"
    assert images[1]["detections"] is None and images[1]["failure"].startswith("empty_image: ")
    assert images[2]["detections"] == [] and images[2]["failure"] is None
    assert images[3]["detections"] is None and images[3]["failure"].startswith("unreadable_image: ")
    assert images[4]["detections"][0]["category"] == "2"
    assert body["info"]["batch_size"] >= 2  # the readable images of one request share model calls


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty_image"),
        (b"GIF89a-not-really", "unreadable_image"),
        (tm.make_blank_image()[:3000], "unreadable_image"),
    ],
)
def test_bad_images_are_permanent_failures_in_a_200(frozen_client, data, code):
    r = frozen_client.post("/v1/detect", content=data, headers={"Content-Type": JPEG})
    assert r.status_code == 200
    (image,) = r.json()["images"]
    assert image["detections"] is None and image["failure"].startswith(code + ": ")


def test_request_level_errors(frozen_client):
    r = frozen_client.post("/v1/detect", files={"other": ("x.txt", b"", "text/plain")}, data={"note": "hi"})
    # a multipart body whose only file part is named differently is still accepted (first file part)
    assert r.status_code == 200
    only_field = b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--b--\r\n'
    r = frozen_client.post(
        "/v1/detect", content=only_field, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code == 400 and r.json()["code"] == "no_file"
    for content_type in ("application/json", "text/plain", "application/x-www-form-urlencoded"):
        r = frozen_client.post("/v1/detect", content=b'{"a": 1}', headers={"Content-Type": content_type})
        assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    r = frozen_client.post(
        "/v1/detect", content=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert r.status_code == 400 and ErrorOut.model_validate(r.json()).code == "bad_multipart"
    r = frozen_client.post("/v1/detect/batch", content=b"raw", headers={"Content-Type": JPEG})
    assert r.status_code == 400 and r.json()["code"] == "not_multipart"


def test_limits_answer_413():
    with client_for(backend="null", max_body_bytes=10_000, max_files=2) as client:
        wait_ready(client)
        r = client.post("/v1/detect", content=b"x" * 10_001)
        assert r.status_code == 413 and r.json()["code"] == "body_too_large"
        files = [("files", (f"{i}.jpg", tm.make_blank_image((64, 48), quality=50), JPEG)) for i in range(3)]
        r = client.post("/v1/detect/batch", files=files)
        assert r.status_code == 413 and r.json()["code"] == "too_many_files"
        r = client.post("/v1/detect/batch", files=files[:2])
        assert r.status_code == 200 and len(r.json()["images"]) == 2


def test_api_key(keyed_client):
    jpeg = tm.make_blank_image()
    for headers in ({}, {"X-API-Key": "wrong"}):
        for method, path in (("post", "/v1/detect"), ("post", "/v1/detect/batch"), ("get", "/v1/model")):
            r = keyed_client.request(method, path, content=jpeg, headers=headers)
            assert r.status_code == 401 and r.json()["code"] == "unauthorized", (path, headers)
    r = keyed_client.post("/v1/detect", content=jpeg, headers={"X-API-Key": "s3cret"})
    assert r.status_code == 200 and r.json()["images"][0]["detections"][0]["category"] == "2"
    # probes and the API description stay open (orchestrators do not send keys)
    assert keyed_client.get("/healthz").status_code == 200 and keyed_client.get("/readyz").status_code == 200
    assert keyed_client.get("/openapi.json").status_code == 200


def test_not_ready_answers_503_with_retry_after():
    with client_for(backend="null", null_load_delay_s=1.0) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["code"] == "not_ready" and int(r.headers["Retry-After"]) >= 1
        r = client.post("/v1/detect", content=tm.make_blank_image())
        assert r.status_code == 503 and r.json()["code"] == "not_ready" and "Retry-After" in r.headers
        assert client.get("/v1/model").json()["ready"] is False
        wait_ready(client)
        assert client.post("/v1/detect", content=tm.make_blank_image()).status_code == 200


def test_saved_model_service_with_api_key(saved_model):
    with client_for(backend="saved_model", model_path=str(saved_model), api_key="k") as client:
        wait_ready(client)
        files = [
            ("files", (f"{c}.jpg", tm.make_detection_image(c, 0.9, (0.1, 0.1, 0.1, 0.1)), JPEG))
            for c in ("1", "2", "3")
        ]
        assert client.post("/v1/detect/batch", files=files).status_code == 401
        r = client.post("/v1/detect/batch", files=files, headers={"X-API-Key": "k"})
        assert [i["detections"][0]["category"] for i in r.json()["images"]] == ["1", "2", "3"]
        assert r.json()["info"]["batch_size"] == 3
        assert r.json()["info"]["detector"] == "controlled_saved_model"


def test_model_endpoint(frozen_client):
    body = frozen_client.get("/v1/model").json()
    model = ModelOut.model_validate(body)
    assert model.backend == "frozen_graph" and model.ready and not model.fallback
    assert model.stats["images"] >= 1 and "batch_size_histogram" in model.stats


def test_hog_fallback_model_endpoint_states_limits():
    with client_for() as client:
        wait_ready(client)
        body = client.get("/v1/model").json()
        assert body["backend"] == "hog" and body["fallback"] is True and len(body["limits"]) >= 4
        r = client.post("/v1/detect", content=tm.make_blank_image((1920, 1080)))
        assert r.status_code == 200 and r.json()["images"][0]["detections"] == []


def test_openapi_matches_the_routes(frozen_client):
    spec = frozen_client.get("/openapi.json").json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    app = frozen_client.app
    served = {
        (route.path, method)
        for route in app.routes
        if getattr(route, "include_in_schema", False)
        for method in route.methods
        if method != "HEAD"
    }
    assert (
        documented
        == served
        == {
            ("/healthz", "GET"),
            ("/readyz", "GET"),
            ("/v1/model", "GET"),
            ("/v1/detect", "POST"),
            ("/v1/detect/batch", "POST"),
            ("/v1/detect-video", "POST"),  # video clips (scoring/video.py, tests/video)
        }
    )
    for path in ("/v1/detect", "/v1/detect/batch"):
        op = spec["paths"][path]["post"]
        assert {"200", "400", "401", "413", "415", "503"} <= set(op["responses"])
        assert "Retry-After" in op["responses"]["503"]["headers"]
        assert "multipart/form-data" in op["requestBody"]["content"]
        assert op["security"] == [{"APIKeyHeader": []}]
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/DetectResponse")
    assert "image/jpeg" in spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert spec["paths"]["/v1/detect"]["post"]["parameters"][0]["name"] == "file"
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Required on /v1/* when the service runs with SCORING_API_KEY set.",
    }
    # the documented 200 schema is the one the answers validate against
    schema = spec["components"]["schemas"]["DetectResponse"]
    assert set(schema["required"]) == {"info", "images"}
    assert json.dumps(DetectResponse.model_json_schema()["properties"]["images"]["items"]["$ref"]).endswith(
        'ImageOut"'
    )
