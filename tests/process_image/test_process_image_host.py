"""process-image in the real local Functions host (real function_app.py), with the real scoring service:
bursts under the host's concurrency, the scoring service down then up (client retries, host retries,
poison after maxDequeueCount, replay), and an unreadable image that completes without poison."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from functions import names
from functions.adapters.scoring_client import ScoringClient, ScoringUnavailable
from tests.process_image.helpers import add_image, make_camera, make_park
from tests.support.host import wait_until
from tests.support.scoring_process import free_port, run_scoring_service
from tests.support.tiny_models import make_detection_image

T0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
FAST = {"visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.200"}


def _decided(db) -> int:
    return db.fetchone("SELECT count(*) AS n FROM images WHERE decided_at IS NOT NULL")["n"]


def test_bursts_from_two_cameras_in_the_host(svc, host_factory, scoring_url):
    host_factory(host_json=FAST, SCORING_URL=str(scoring_url))
    park_id = make_park(svc.db)
    cams = [make_camera(svc.db, park_id, "gate-3"), make_camera(svc.db, park_id, "river-1")]
    jpeg = make_detection_image("2", 0.9, (0.3, 0.3, 0.2, 0.4))
    msgs = [
        add_image(svc.db, svc.storage, park_id, cam, jpeg, T0 + timedelta(seconds=3 * i))
        for i in range(10)
        for cam in cams
    ]
    for m in msgs:  # all at once: the host runs up to 16 in parallel
        svc.storage.enqueue(names.PROCESS_IMAGE_QUEUE, m)
    wait_until(lambda: _decided(svc.db) == 20, timeout_s=60, message="20 photos decided")
    rows = svc.db.fetchall("SELECT id, camera_id, image_count, version FROM alerts ORDER BY camera_id")
    assert [(r["camera_id"], r["image_count"]) for r in rows] == [(cams[0], 10), (cams[1], 10)]
    wait_until(
        lambda: (
            svc.db.fetchone(
                "SELECT count(*) AS n FROM outbox WHERE queue = 'send-alert' AND sent_at IS NOT NULL"
            )["n"]
            == 2
        ),
        timeout_s=10,
        message="two send-alert messages",
    )
    notes = svc.db.fetchall(
        "SELECT (body->>'alert_id')::bigint AS alert_id, (body->>'version')::int AS version, "
        "body->>'reason' AS reason "
        "FROM outbox WHERE queue = 'send-alert' ORDER BY 1"
    )
    assert [(n["alert_id"], n["version"], n["reason"]) for n in notes] == sorted(
        (r["id"], 1, "new") for r in rows
    )
    assert (
        svc.db.fetchone("SELECT count(*) AS n FROM message_failures WHERE queue = 'process-image'")["n"] == 0
    )


def test_client_retries_until_the_service_is_ready():
    """503 not_ready with Retry-After while the model loads, then 200: one detect() call succeeds."""
    env = {"SCORING_BACKEND": "null", "SCORING_NULL_RESULT": "person", "SCORING_NULL_LOAD_DELAY_S": "1.5"}
    with run_scoring_service(env, wait=False) as url:
        client = ScoringClient(str(url), retry_budget_s=20, backoff_base_s=0.1, retry_after_max_s=1.0)
        try:
            score = client.detect(make_detection_image("2", 0.9), "a.jpg")
        finally:
            client.close()
    assert score.failure is None and score.attempts > 1
    assert [d.category for d in score.detections] == ["2"] and score.detector == "null"


def test_client_gives_up_within_its_budget():
    client = ScoringClient(f"http://127.0.0.1:{free_port()}", retry_budget_s=1.0, backoff_base_s=0.1)
    started = time.monotonic()
    with pytest.raises(ScoringUnavailable, match="unavailable after"):
        client.detect(b"x")
    # it retried (backoff with jitter may stop the last sleep short of the budget) and gave up in time
    assert 0.3 <= time.monotonic() - started < 3


def test_scoring_down_then_up_poison_and_replay(svc, host_factory):
    port = free_port()
    host_factory(
        host_json=FAST,
        SCORING_URL=f"http://127.0.0.1:{port}",
        RETRY_SCHEDULE_S="1",  # tried again after ~1 s, poisoned once the next try would pass 3 s
        RETRY_HORIZON_PROCESS_IMAGE_S="3",
        SCORING_RETRY_BUDGET_S="0.5",
        SCORING_BACKOFF_BASE_S="0.1",
    )
    park_id = make_park(svc.db)
    cam = make_camera(svc.db, park_id, "gate-3")
    msg = add_image(svc.db, svc.storage, park_id, cam, make_detection_image("2", 0.9), T0)
    svc.storage.enqueue(names.PROCESS_IMAGE_QUEUE, msg)

    # down: the client retries within its budget, the retry middleware tries the message again, then
    # poisons it past the horizon
    def poisoned():
        row = svc.db.fetchone("SELECT body FROM poison_records WHERE queue = 'process-image'")
        return row["body"] if row else None

    body = wait_until(poisoned, timeout_s=30, message="the message in process-image-poison")
    failures = svc.db.fetchall(
        "SELECT dequeue_count, error FROM message_failures WHERE queue = 'process-image' ORDER BY id"
    )
    assert len(failures) >= 2 and {f["dequeue_count"] for f in failures} == {1}
    assert all("ScoringUnavailable" in f["error"] for f in failures)
    assert svc.db.fetchone("SELECT status FROM images WHERE id = %s", (msg.image_id,))["status"] == "stored"

    # up again: ops replay the poisoned body; it is scored and alerts; an unreadable photo completes
    with run_scoring_service({"SCORING_BACKEND": "null", "SCORING_NULL_RESULT": "person"}, port=port):
        svc.storage.enqueue(names.PROCESS_IMAGE_QUEUE, body)
        bad = add_image(svc.db, svc.storage, park_id, cam, b"\xff\xd8 truncated", T0 + timedelta(hours=1))
        svc.storage.enqueue(names.PROCESS_IMAGE_QUEUE, bad)
        wait_until(
            lambda: (
                svc.db.fetchone(
                    "SELECT count(*) AS n FROM outbox WHERE queue = 'send-alert' AND sent_at IS NOT NULL"
                )["n"]
                == 1
            ),
            timeout_s=30,
            message="the replayed photo's alert",
        )
        wait_until(
            lambda: (
                svc.db.fetchone("SELECT status FROM images WHERE id = %s", (bad.image_id,))["status"]
                == "failed"
            ),
            timeout_s=15,
            message="the unreadable photo marked failed",
        )
    row = svc.db.fetchone("SELECT status, model_name FROM images WHERE id = %s", (msg.image_id,))
    assert row == {"status": "scored", "model_name": "null"}
    time.sleep(0.5)
    assert (
        svc.db.fetchone("SELECT count(*) AS n FROM poison_records")["n"] == 1
    )  # the bad photo did not poison
    assert svc.storage.queue_depth(names.PROCESS_IMAGE_QUEUE) == 0
