"""Batch scoring end to end in this process: the API, the bulk queue on Azurite, the handler, PostgreSQL, the
real scoring service (null backend), and the results in the MegaDetector batch output format."""

from __future__ import annotations

import json

import azure.functions as func
import httpx

from functions import names
from functions.adapters.batch_repo import WINDOW, BatchRepository
from functions.handlers import batch
from tests.batch.conftest import drain, jpeg, queued_bodies
from tests.process_image.helpers import make_camera, make_park

PHOTOS = 300


def post(svc, body: dict) -> func.HttpResponse:
    data = json.dumps(body).encode()
    req = func.HttpRequest("POST", "http://localhost/api/batch", body=data, route_params={})
    return batch.http(req, svc)


def get(svc, path: str, method: str = "GET") -> func.HttpResponse:
    req = func.HttpRequest(
        method, f"http://localhost/api/batch/{path}", body=b"", route_params={"path": path}
    )
    return batch.http(req, svc)


def upload(svc, name: str, data: bytes) -> str:
    svc.storage.put_blob(names.IMAGES_CONTAINER, name, data, content_type="image/jpeg")
    return name


def test_a_batch_of_photos_is_scored_exactly_once_with_each_failure_recorded(svc, counting):
    park = make_park(svc.db, "etosha")
    make_camera(svc.db, park, "cam-1")
    blobs = [upload(svc, f"batch/etosha/p{i:04d}.jpg", jpeg(i)) for i in range(PHOTOS)]
    bad = {
        "batch/etosha/missing.jpg": "missing_blob",
        upload(svc, "batch/etosha/notes.txt", b"field notes, not a photo"): "not_an_image",
        upload(svc, "batch/etosha/dup.jpg", jpeg(7)): "duplicate",
        upload(svc, "batch/etosha/broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50): "unreadable_image",
    }
    response = post(svc, {"park": "etosha", "camera": "cam-1", "blobs": blobs + list(bad)})
    assert response.status_code == 202, response.get_body()
    submitted = json.loads(response.get_body())
    assert submitted["state"] == "running" and submitted["total"] == PHOTOS + len(bad)
    # a window of messages, not the whole batch, waits on the queue
    assert len(queued_bodies(svc)) == WINDOW

    handled = drain(svc, redeliver_every=25)  # every 25th message is delivered twice
    assert handled == PHOTOS + len(bad)

    status = json.loads(get(svc, submitted["request_id"]).get_body())
    assert status["state"] == "done"
    assert status["progress"] == {"pending": 0, "scored": PHOTOS, "failed": len(bad), "cancelled": 0}
    items = BatchRepository(svc.db).items(BatchRepository(svc.db).get(submitted["request_id"])["id"])
    assert all(i["score_count"] == 1 for i in items), "an item was recorded twice"
    # the detector saw each scorable photo once (the duplicate and the non-image never reached it), bulk lane
    scorable = PHOTOS + 1  # + the unreadable one, which the detector refuses
    assert len(counting.calls) == scorable and counting.lanes == {"bulk"}
    failures = {i["file"]: i["failure"] for i in items if i["state"] == "failed"}
    assert {f: failures[f].split(":")[0] for f in bad} == bad
    assert failures["batch/etosha/dup.jpg"] == "duplicate: same photo as batch/etosha/p0007.jpg"

    # the results: MegaDetector batch output format, through the time-limited link
    assert status["results_expire_in_hours"] == batch.RESULTS_LINK_HOURS
    assert "sig=" in status["results_url"] and "se=" in status["results_url"]
    doc = httpx.get(status["results_url"], timeout=10).json()
    assert doc["info"]["format_version"] == "1.4"
    assert doc["info"]["detector"] and doc["info"]["detection_completion_time"]
    assert doc["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    assert len(doc["images"]) == PHOTOS + len(bad)
    by_file = {i["file"]: i for i in doc["images"]}
    ok = by_file["batch/etosha/p0001.jpg"]
    assert "failure" not in ok and ok["detections"][0]["category"] == "2"
    assert len(ok["detections"][0]["bbox"]) == 4
    assert all(by_file[f]["detections"] is None and by_file[f]["failure"] for f in bad)


def test_files_name_the_results_and_prefix_lists_the_park_folder(svc, counting):
    make_park(svc.db, "etosha")
    for i in range(3):
        upload(svc, f"batch/etosha/run1/{i}.jpg", jpeg(1000 + i))
    upload(svc, "batch/etosha/run2/x.jpg", jpeg(2000))
    submitted = json.loads(post(svc, {"park": "etosha", "prefix": "batch/etosha/run1/"}).get_body())
    assert submitted["total"] == 3
    drain(svc)
    repo = BatchRepository(svc.db)
    doc = batch.results_document(repo, repo.get(submitted["request_id"]))
    assert sorted(i["file"] for i in doc["images"]) == ["0.jpg", "1.jpg", "2.jpg"]


def test_a_cancelled_batch_stops_and_keeps_what_was_done(svc, counting):
    make_park(svc.db, "etosha")
    blobs = [upload(svc, f"batch/etosha/c{i}.jpg", jpeg(3000 + i)) for i in range(80)]
    submitted = json.loads(post(svc, {"park": "etosha", "blobs": blobs}).get_body())
    drain(svc, max_messages=10)
    cancelled = json.loads(get(svc, f"{submitted['request_id']}/cancel", "POST").get_body())
    assert cancelled["state"] == "cancelled"
    calls_at_cancel = len(counting.calls)
    left = drain(svc)
    assert left <= WINDOW  # only what was already on the queue, none of it scored
    assert len(counting.calls) == calls_at_cancel == 10
    status = json.loads(get(svc, submitted["request_id"]).get_body())
    assert status["progress"] == {"pending": 0, "scored": 10, "failed": 0, "cancelled": 70}
    doc = httpx.get(status["results_url"], timeout=10).json()
    assert sum(1 for i in doc["images"] if i.get("failure") == "cancelled") == 70
    assert sum(1 for i in doc["images"] if i["detections"]) == 10


def test_a_batch_is_refused_outside_its_park_and_for_bad_requests(svc):
    make_park(svc.db, "etosha")
    make_park(svc.db, "kruger")
    assert post(svc, {"park": "etosha", "blobs": ["kruger/cam/2026-01-01/x.jpg"]}).status_code == 403
    assert post(svc, {"park": "etosha", "prefix": "kruger/"}).status_code == 403
    assert post(svc, {"park": "nowhere", "blobs": ["x"]}).status_code == 404
    assert post(svc, {"park": "etosha"}).status_code == 400
    assert post(svc, {"park": "etosha", "blobs": ["../etc/passwd"]}).status_code == 400
    assert post(svc, {"park": "etosha", "blobs": [], "surprise": 1}).status_code == 400
    assert get(svc, "00000000-0000-0000-0000-000000000000").status_code == 404


def test_an_empty_batch_is_done_with_an_empty_results_file(svc):
    make_park(svc.db, "etosha")
    submitted = json.loads(post(svc, {"park": "etosha", "blobs": []}).get_body())
    assert submitted["state"] == "done" and submitted["total"] == 0
    doc = httpx.get(submitted["results_url"], timeout=10).json()
    assert doc["images"] == [] and doc["info"]["format_version"] == "1.4"


def test_a_running_batch_tops_its_window_up_after_lost_messages(svc, counting):
    """Messages lost (a poisoned item, a cleared queue) never strand a batch: a status read refills it."""
    make_park(svc.db, "etosha")
    blobs = [upload(svc, f"batch/etosha/t{i}.jpg", jpeg(4000 + i)) for i in range(40)]
    submitted = json.loads(post(svc, {"park": "etosha", "blobs": blobs}).get_body())
    svc.storage.queue(names.BULK_IMAGE_QUEUE).clear_messages()  # every queued message lost
    repo = BatchRepository(svc.db)
    found = repo.get(submitted["request_id"])
    assert batch.status(svc, found)["progress"]["pending"] == 40  # not stale yet: nothing queued again
    assert drain(svc) == 0
    for _ in range(2):  # lost twice more: queued again each time a read finds them stale
        batch.status(svc, found, stale_s=0)
        svc.storage.queue(names.BULK_IMAGE_QUEUE).clear_messages()
    batch.status(svc, found, stale_s=0)
    drain(svc)
    status = batch.status(svc, repo.get(found["id"]))
    assert status["state"] == "done" and status["progress"]["scored"] == 40
    assert {i["score_count"] for i in repo.items(found["id"])} == {1}


def test_an_item_whose_messages_keep_getting_lost_ends_failed(svc, counting):
    make_park(svc.db, "etosha")
    submitted = json.loads(
        post(svc, {"park": "etosha", "blobs": [upload(svc, "batch/etosha/z.jpg", jpeg(9))]}).get_body()
    )
    found = BatchRepository(svc.db).get(submitted["request_id"])
    for _ in range(5):
        svc.storage.queue(names.BULK_IMAGE_QUEUE).clear_messages()
        status = batch.status(svc, found, stale_s=0)
    assert status["state"] == "done" and status["errors"][0]["failure"].startswith("gave_up:")
    assert counting.calls == []


def test_an_uploaded_photo_takes_the_live_decision_path_in_the_bulk_lane(svc, counting):
    from datetime import UTC, datetime

    from functions.messages import BulkImage
    from tests.process_image.helpers import add_image, alerts

    park = make_park(svc.db, "etosha", tz="UTC")
    cam = make_camera(svc.db, park, "north")
    live = add_image(svc.db, svc.storage, park, cam, jpeg(42), datetime(2026, 3, 1, 12, tzinfo=UTC))
    msg = BulkImage(**live.model_dump(exclude={"schema_version"}), purpose="upload")
    batch.handle_bulk(msg, svc)
    batch.handle_bulk(msg, svc)  # redelivered: decided once
    assert counting.lanes == {"bulk"} and len(counting.calls) == 1
    assert len(alerts(svc.db)) == 1  # a person: the same rules and alert as a live photo


def test_cli_submit_uploads_resumably_waits_and_writes_results(svc, tmp_path, monkeypatch):
    import threading

    from click.testing import CliRunner

    from functions.cli import cli

    make_park(svc.db, "etosha")
    photos = tmp_path / "photos"
    (photos / "day1").mkdir(parents=True)
    for i in range(5):
        (photos / "day1" / f"IMG_{i}.JPG").write_bytes(jpeg(6000 + i))
    (photos / "day1" / "copy.jpg").write_bytes(jpeg(6000))
    (photos / "readme.txt").write_text("not a photo")
    (photos / ".hidden.jpg").write_bytes(jpeg(6100))
    monkeypatch.setattr("functions.cli.batch.POLL_S", 0.05)
    stop = threading.Event()

    def host():
        while not stop.is_set():
            drain(svc)
            stop.wait(0.05)

    worker = threading.Thread(target=host, daemon=True)
    worker.start()
    try:
        args = ["batch", "submit", "--park", "etosha", "--dir", str(photos), "--wait", "--json"]
        first = CliRunner().invoke(cli, args)
        again = CliRunner().invoke(cli, args)
    finally:
        stop.set()
        worker.join(5)
    assert first.exit_code == 0, first.output
    # copy.jpg is IMG_0.JPG again: one blob (content-addressed); a second run uploads nothing
    assert "6 uploaded, 1 already there" in first.stderr and "0 uploaded, 7 already there" in again.stderr
    assert "estimate" in first.stderr
    status = json.loads(first.stdout)
    assert status["state"] == "done" and status["progress"]["scored"] == 5
    out = tmp_path / "results.json"
    fetched = CliRunner().invoke(cli, ["batch", "results", status["request_id"], "--out", str(out)])
    assert fetched.exit_code == 0, fetched.output
    doc = json.loads(out.read_text())
    files = {i["file"]: i for i in doc["images"]}
    assert set(files) == {f"day1/IMG_{i}.JPG" for i in range(5)} | {"day1/copy.jpg", "readme.txt"}
    assert files["readme.txt"]["failure"].startswith("not_an_image")
    assert files["day1/copy.jpg"]["failure"].startswith("duplicate")
