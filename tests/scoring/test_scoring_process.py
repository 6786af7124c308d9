"""The real service as a subprocess over real HTTP: `python -m scoring`, start-up errors, overload, drills."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import tiny_models as tm
from tests.support.scoring_process import REPO_ROOT, ScoringServiceError, free_port, run_scoring_service


def start_and_fail(env: dict, timeout: float = 60.0) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_")} | env
    full_env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "scoring", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_default_service_is_the_hog_fallback_and_answers_in_megadetector_format():
    with run_scoring_service({}) as url:
        r = httpx.post(
            f"{url}/v1/detect?file=a.jpg",
            content=tm.make_blank_image((1920, 1080)),
            headers={"Content-Type": "image/jpeg"},
            timeout=30,
        )
        assert r.status_code == 200
        body = r.json()
        assert body["info"]["format_version"] == "1.4" and body["info"]["detector"] == "opencv-hog-people"
        note = body["images"][0].pop("note")  # the fallback found nothing: it says what that means
        assert "only upright, full-body people in daylight" in note and "trapalert model download" in note
        assert body["images"] == [
            {
                "file": "a.jpg",
                "detections": [],
                "night": False,
                "width": 1920,
                "height": 1080,
                "failure": None,
            }
        ]
        assert httpx.get(f"{url}/v1/model").json()["fallback"] is True
        assert "FALLBACK DETECTOR" in url.log()


def test_frozen_graph_service_batches_concurrent_requests(frozen_graph):
    env = {"SCORING_MODEL_PATH": str(frozen_graph), "SCORING_MAX_BATCH": "8", "SCORING_MAX_WAIT_MS": "50"}
    with run_scoring_service(env) as url:
        specs = [(str(1 + i % 3), round(0.3 + 0.05 * i, 2), (0.05 * i, 0.1, 0.2, 0.3)) for i in range(8)]
        images = [tm.make_detection_image(*spec) for spec in specs]

        def post(data):
            return httpx.post(
                f"{url}/v1/detect", content=data, headers={"Content-Type": "image/jpeg"}, timeout=30
            )

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(post, images))
        for spec, r in zip(specs, responses, strict=False):
            assert r.status_code == 200
            (det,) = r.json()["images"][0]["detections"]
            assert det["category"] == spec[0] and abs(det["conf"] - spec[1]) <= 0.005
            assert all(abs(a - b) <= 0.005 for a, b in zip(det["bbox"], spec[2], strict=False))
        assert max(r.json()["info"]["batch_size"] for r in responses) >= 2
        stats = httpx.get(f"{url}/v1/model").json()["stats"]
        assert stats["largest_batch"] >= 2 and stats["images"] == 8  # the warm-up call is not counted


def test_overload_answers_503_with_retry_after():
    env = {
        "SCORING_BACKEND": "null",
        "SCORING_NULL_DELAY_MS": "300",
        "SCORING_MAX_BATCH": "1",
        "SCORING_QUEUE_LIMIT": "2",
        "SCORING_MAX_WAIT_MS": "0",
    }
    with run_scoring_service(env) as url:
        jpeg = tm.make_blank_image((320, 240))

        def post(_):
            return httpx.post(f"{url}/v1/detect", content=jpeg, timeout=30)

        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(post, range(12)))
        codes = sorted(r.status_code for r in responses)
        assert 200 in codes and 503 in codes and set(codes) <= {200, 503}
        for r in responses:
            if r.status_code == 503:
                assert r.json()["code"] == "overloaded" and int(r.headers["Retry-After"]) >= 1
        assert httpx.get(f"{url}/v1/model").json()["stats"]["overloaded_requests"] >= 1
        assert post(0).status_code == 200  # it recovers once the queue drains


def test_missing_model_file_fails_before_listening(tmp_path):
    missing = tmp_path / "md_v4.1.0.pb"
    result = start_and_fail({"SCORING_MODEL_PATH": str(missing)})
    assert result.returncode == 2
    assert (
        str(missing) in result.stderr
        and "image_tensor:0" in result.stderr
        and "detection_boxes:0" in result.stderr
    )


def test_corrupt_model_file_is_a_start_up_error(tmp_path):
    corrupt = tmp_path / "md_v4.1.0.pb"
    corrupt.write_bytes(os.urandom(4096))
    result = start_and_fail({"SCORING_MODEL_PATH": str(corrupt)})
    assert result.returncode == 3
    assert "the model failed to load" in result.stderr and str(corrupt) in result.stderr
    assert "image_tensor:0" in result.stderr


def test_bad_setting_is_a_start_up_error():
    result = start_and_fail({"SCORING_MAX_BATCH": "lots"})
    assert result.returncode == 2 and "SCORING_MAX_BATCH" in result.stderr


def test_check_mode_loads_and_describes_the_model():
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_")}
    full_env |= {"SCORING_BACKEND": "null", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "scoring", "--check"],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and '"backend": "null"' in result.stdout


def test_kill_and_restart_helpers():
    env = {"SCORING_BACKEND": "null", "SCORING_NULL_RESULT": "person"}
    with run_scoring_service(env) as url:
        first_pid = url.pid
        url.kill()
        assert url.returncode == -9
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz", timeout=2)
        url.restart()
        assert url.pid != first_pid
        r = httpx.post(f"{url}/v1/detect", content=tm.make_blank_image(), timeout=10)
        assert r.json()["images"][0]["detections"][0]["category"] == "2"
        assert url.stop() in (0, -15)  # SIGTERM: graceful (uvicorn re-raises the signal once stopped)


def test_not_ready_window_over_http():
    env = {"SCORING_BACKEND": "null", "SCORING_NULL_LOAD_DELAY_S": "1.5"}
    with run_scoring_service(env, wait=False) as url:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        r = httpx.post(f"{url}/v1/detect", content=tm.make_blank_image(), timeout=5)
        assert r.status_code == 503 and r.json()["code"] == "not_ready" and r.headers["Retry-After"] == "2"
        url.wait_ready()
        assert httpx.post(f"{url}/v1/detect", content=tm.make_blank_image(), timeout=5).status_code == 200


def test_service_that_cannot_start_reports_its_log(tmp_path):
    with pytest.raises(ScoringServiceError, match="exited with 2"):
        with run_scoring_service({"SCORING_MODEL_PATH": str(tmp_path / "nope.pb")}):
            pass


def test_graceful_stop_finishes_in_flight_requests():
    env = {"SCORING_BACKEND": "null", "SCORING_NULL_DELAY_MS": "500", "SCORING_MAX_WAIT_MS": "0"}
    with run_scoring_service(env) as url:
        result = {}

        def slow():
            result["r"] = httpx.post(f"{url}/v1/detect", content=tm.make_blank_image(), timeout=10)

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.2)
        assert url.stop() in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
        thread.join(10)
        assert result["r"].status_code == 200
