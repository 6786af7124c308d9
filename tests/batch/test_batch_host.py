"""A batch through the real local Functions host running function_app.py: the API under /api/batch with the
function key, the process-image-bulk trigger, and a restart of the host in the middle of the batch."""

from __future__ import annotations

import httpx

from functions.adapters.batch_repo import BatchRepository
from tests.batch.conftest import jpeg
from tests.process_image.helpers import make_park
from tests.support.host import FUNCTION_KEY, wait_until

FAST = {"visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.200"}
KEY = {"x-functions-key": FUNCTION_KEY}


def test_a_batch_survives_a_host_restart_and_every_photo_is_scored_once(svc, host_factory, null_scoring_url):
    make_park(svc.db, "etosha")
    blobs = []
    for i in range(120):
        name = f"batch/etosha/h{i:03d}.jpg"
        svc.storage.put_blob("images", name, jpeg(8000 + i), content_type="image/jpeg")
        blobs.append(name)
    host = host_factory(host_json=FAST, SCORING_URL=str(null_scoring_url))
    assert httpx.post(host.api("batch"), json={"park": "etosha", "blobs": blobs}).status_code == 401
    answer = httpx.post(host.api("batch"), json={"park": "etosha", "blobs": blobs}, headers=KEY, timeout=30)
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["request_id"]
    repo = BatchRepository(svc.db)
    batch_id = repo.get(request_id)["id"]
    wait_until(lambda: repo.progress(batch_id)["scored"] >= 30, timeout_s=60, message="30 photos scored")
    host.stop()  # a restart in the middle of the batch (a crash costs the lease: 30 s, see test_local_host)
    assert repo.progress(batch_id)["pending"] > 0, "the batch finished before the restart"
    host = host_factory(host_json=FAST, SCORING_URL=str(null_scoring_url))
    wait_until(lambda: repo.get(batch_id)["state"] == "done", timeout_s=90, message="the batch done")
    status = httpx.get(host.api(f"batch/{request_id}"), headers=KEY, timeout=30).json()
    assert status["state"] == "done" and status["progress"]["scored"] == 120
    assert {i["score_count"] for i in repo.items(batch_id)} == {1}
    doc = httpx.get(status["results_url"], timeout=10).json()
    assert len(doc["images"]) == 120 and all(i["detections"] for i in doc["images"])
