"""process-email through the real local Functions host over HTTP, against real Azurite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from functions import names
from functions.inbound.sendgrid_payload import ImageFile
from functions.inbound.signature import WebhookSigner

from .conftest import (
    PARK_X,
    email_rows,
    image_rows,
    make_jpeg,
    make_png,
    payload,
    post,
    queue_messages,
)


def blob_props(storage, name: str):
    return storage.blobs.get_blob_client(names.IMAGES_CONTAINER, name).get_blob_properties()


@pytest.mark.parametrize("mode", ["parsed", "raw"])
def test_registered_camera_jpeg_is_stored_recorded_and_queued_within_a_second(
    webhook_host, registry, db, storage, mode
):
    photo = make_jpeg(exif_time="2026:11:20 02:14:05", gps=(-24.5, 31.25), orientation=6, noise=True)
    p = payload([ImageFile("IMG_0001.JPG", photo)], mode=mode)
    started = time.perf_counter()
    r = post(webhook_host, p)
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    body = r.json()
    assert body["status"] == "accepted" and body["queued"] == 1

    [email] = email_rows(db)
    assert email["status"] == "accepted" and email["mode"] == mode
    assert email["camera_id"] == registry["CAM01"]["id"]
    assert email["message_id"] == p.message_id.strip("<>")
    assert email["spf"] == "pass" and "pass" in email["dkim"]
    assert email["raw_blob"] and storage.get_blob(names.RAW_EMAILS_CONTAINER, email["raw_blob"]) == p.body

    [image] = image_rows(db)
    assert image["status"] == "stored"
    [sent] = db.fetchall("SELECT key, scope, sent_at, message_id, body FROM outbox")
    assert sent["key"] == f"process-image:{image['id']}" and sent["scope"] == f"email:{email['id']}"
    assert sent["sent_at"] is not None and sent["message_id"]
    assert sent["body"]["image_id"] == image["id"] and sent["body"]["blob_name"] == image["blob_name"]
    assert (image["width"], image["height"], image["orientation"]) == (320, 240, 6)
    assert image["taken_at_source"] == "exif"
    # 02:14:05 in Africa/Johannesburg (UTC+2) is 00:14:05 UTC
    assert image["taken_at"] == datetime(2026, 11, 20, 0, 14, 5, tzinfo=UTC)
    assert image["gps_latitude"] == pytest.approx(-24.5, abs=1e-4)
    assert image["gps_longitude"] == pytest.approx(31.25, abs=1e-4)
    assert image["blob_name"].startswith("park-x/CAM01/2026-11-20/") and image["blob_name"].endswith(".jpg")
    assert image["sha256"] in image["blob_name"]

    props = blob_props(storage, image["blob_name"])
    assert props.content_settings.content_type == "image/jpeg"
    assert props.metadata["camera"] == "CAM01" and props.metadata["park"] == "park-x"
    assert props.metadata["correlation_id"] == str(email["correlation_id"])
    assert storage.get_blob(names.IMAGES_CONTAINER, image["blob_name"]) == photo

    [msg] = queue_messages(storage)
    assert msg.pop("attempt") == 0 and msg.pop("first_attempt_at") is None  # a first try, not a retry
    msg.pop("traceparent")  # the webhook's span, when tracing is on
    assert msg == {
        "schema_version": 1,
        "correlation_id": str(email["correlation_id"]),
        "image_id": image["id"],
        "blob_name": image["blob_name"],
        "park_id": registry["CAM01"]["park_id"],
        "camera_id": registry["CAM01"]["id"],
    }
    cam = db.fetchone("SELECT last_seen_at FROM cameras WHERE id = %s", (registry["CAM01"]["id"],))
    assert cam["last_seen_at"] is not None


@pytest.mark.parametrize(
    "subject,text,to,camera",
    [
        ("RECONYX HyperFire 2 Cellular - CAM07 - Motion 2026-11-20 02:14", "", PARK_X, "CAM07"),
        ("Bushnell CelluCORE: Ridge-East", "Camera Name: Ridge-East\nBattery: 80%", PARK_X, "Ridge-East"),
        ("Browning Defender Pro Scout - Photo from BTC-12", "", PARK_X, "BTC-12"),
        ("SPYPOINT - New photo from LM2-WATERHOLE", "", PARK_X, "LM2-WATERHOLE"),
        ("[Waterhole-N] motion detected", "", PARK_X, "Waterhole-N"),
        ("Trail cam photo cam_012", "", PARK_X, "CAM12"),
        ("New photo", "Camera ID: Gate-3\nTemp: 21C", PARK_X, "Gate-3"),
        ("New photo", "", "park-x+fence-9@alerts.example.org", "Fence-9"),
    ],
    ids=["reconyx", "bushnell", "browning", "spypoint", "bracket", "camNN", "body-camera-id", "plus-address"],
)
def test_brand_subject_formats_are_read_but_name_no_camera_on_their_own(
    webhook_host, registry, db, storage, subject, text, to, camera
):
    """Issue 19: a camera's name in the subject, the body or as a plus tag is no proof (anyone can write it);
    from a sender registered on no camera, the email is quarantined, the names it gave recorded, and
    nothing is stored or queued (docs/inbound.md, "Authenticating cameras")."""
    p = payload(sender="noreply@brand-cloud.example.com", to=to, subject=subject, text=text)
    r = post(webhook_host, p)
    assert r.status_code == 200 and r.json()["status"] == "quarantined", r.text
    [email] = email_rows(db)
    assert email["camera_id"] is None and email["raw_blob"]
    assert image_rows(db) == [] and queue_messages(storage) == []
    if "+" not in to:  # the name the brand's format gives is read (and shown to ops), not trusted
        from functions.inbound.identify import normalize_id

        ids = {normalize_id(i) for i in (email["meta"] or {}).get("ids", [])}
        assert normalize_id(camera) in ids, email["meta"]


def test_raw_mode_nested_multiparts_inline_and_attached_images(webhook_host, registry, db, storage):
    images = [
        ImageFile("inline.jpg", make_jpeg(color=(1, 2, 3)), inline=True),
        ImageFile("attached.png", make_png(), "image/png"),
        ImageFile("attached.jpg", make_jpeg(color=(9, 9, 9))),
    ]
    p = payload(images, mode="raw", nested=True, text="see photos")
    r = post(webhook_host, p)
    assert r.status_code == 200 and r.json()["queued"] == 3, r.text
    rows = image_rows(db)
    assert [i["status"] for i in rows] == ["stored"] * 3
    assert sorted(i["content_type"] for i in rows) == ["image/jpeg", "image/jpeg", "image/png"]
    msgs = queue_messages(storage)
    assert sorted(m["image_id"] for m in msgs) == sorted(i["id"] for i in rows)
    for i in rows:
        assert blob_props(storage, i["blob_name"]).content_settings.content_type == i["content_type"]


def test_parsed_mode_inline_image_and_multiple_attachments(webhook_host, registry, db, storage):
    images = [
        ImageFile("a.jpg", make_jpeg(color=(10, 0, 0))),
        ImageFile("b.jpg", make_jpeg(color=(0, 10, 0))),
        ImageFile("inline.jpg", make_jpeg(color=(0, 0, 10)), inline=True),
    ]
    r = post(webhook_host, payload(images))
    assert r.status_code == 200 and r.json()["queued"] == 3
    assert len(queue_messages(storage)) == 3
    assert [i["filename"] for i in image_rows(db)] == ["a.jpg", "b.jpg", "inline.jpg"]


def test_no_image_is_recorded_rejected_and_answered_200(webhook_host, registry, db, storage):
    r = post(webhook_host, payload([], text="battery low"))
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    [email] = email_rows(db)
    assert email["status"] == "rejected" and email["reason"].startswith("no_images")
    assert email["camera_id"] == registry["CAM01"]["id"]  # the camera is alive: last_seen_at moves
    assert queue_messages(storage) == []


def test_corrupt_image_is_recorded_and_the_good_one_still_goes_through(webhook_host, registry, db, storage):
    good = make_jpeg()
    images = [ImageFile("broken.jpg", good[: len(good) // 2]), ImageFile("ok.jpg", good)]
    r = post(webhook_host, payload(images))
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    broken, ok = image_rows(db)
    assert broken["status"] == "rejected" and broken["reason"].startswith("corrupt_image")
    assert broken["blob_name"] is None
    assert ok["status"] == "stored"
    assert [m["image_id"] for m in queue_messages(storage)] == [ok["id"]]


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_wrong_or_missing_function_key_is_401_and_stores_nothing(webhook_host, registry, db, storage, key):
    r = post(webhook_host, payload(), key=key)
    assert r.status_code == 401
    assert email_rows(db) == [] and queue_messages(storage) == []


def test_get_is_405(webhook_host, registry):
    r = httpx.get(webhook_host.api(names.INBOUND_ROUTE), headers={"x-functions-key": "test-function-key"})
    assert r.status_code == 405


def test_duplicate_delivery_stores_and_enqueues_nothing_new(webhook_host, registry, db, storage):
    photos = [ImageFile("a.jpg", make_jpeg()), ImageFile("b.jpg", make_jpeg(color=(5, 5, 5)))]
    p = payload(photos)
    first = post(webhook_host, p)
    assert first.status_code == 200 and first.json()["queued"] == 2
    for _ in range(2):  # SendGrid's retries, byte for byte
        again = post(webhook_host, p)
        assert again.status_code == 200
        assert again.json()["status"] == "duplicate" and again.json()["queued"] == 0
        assert again.json()["email_id"] == first.json()["email_id"]
    # the same Message-ID with the same photos in the other mode is the same email too (issue 19: the key is
    # the Message-ID, the camera and the photos' hashes; a repeated Message-ID with other photos is new)
    raw = payload(photos, mode="raw", message_id=p.message_id)
    assert post(webhook_host, raw).json()["status"] == "duplicate"
    assert len(email_rows(db)) == 1 and len(image_rows(db)) == 2
    assert len(queue_messages(storage)) == 2


def test_email_without_message_id_is_deduplicated_by_body_hash(webhook_host, registry, db, storage):
    p = payload(message_id=None)
    assert post(webhook_host, p).json()["status"] == "accepted"
    assert post(webhook_host, p).json()["status"] == "duplicate"
    [email] = email_rows(db)
    assert email["dedupe_key"].startswith("sha256:")
    assert len(queue_messages(storage)) == 1


def test_retry_after_a_crash_before_enqueue_sends_exactly_the_missing_messages(
    webhook_host, registry, db, storage
):
    p = payload([ImageFile("a.jpg", make_jpeg()), ImageFile("b.jpg", make_jpeg(color=(7, 7, 7)))])
    assert post(webhook_host, p).json()["queued"] == 2
    # The state a crash between the database commit and the queue writes leaves behind:
    storage.queue(names.PROCESS_IMAGE_QUEUE).clear_messages()
    db.execute("UPDATE outbox SET sent_at = NULL, message_id = NULL")
    r = post(webhook_host, p)
    assert r.json()["status"] == "duplicate" and r.json()["queued"] == 2
    assert sorted(m["image_id"] for m in queue_messages(storage)) == sorted(i["id"] for i in image_rows(db))
    # ... and once they are on the queue, another retry adds nothing
    assert post(webhook_host, p).json()["queued"] == 0
    assert len(queue_messages(storage)) == 2


def test_concurrent_duplicate_deliveries_record_and_enqueue_once(webhook_host, registry, db, storage):
    from concurrent.futures import ThreadPoolExecutor

    p = payload([ImageFile("a.jpg", make_jpeg(noise=True, width=640, height=480))])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: post(webhook_host, p), range(4)))
    assert all(r.status_code == 200 for r in results)
    assert sorted(r.json()["status"] for r in results).count("accepted") == 1
    assert len(email_rows(db)) == 1 and len(image_rows(db)) == 1
    assert len(queue_messages(storage)) == 1


def test_body_over_30_mb_is_recorded_rejected_200(webhook_host, registry, db, storage):
    big = b"\xff\xd8\xff" + b"\0" * (31 * 1024 * 1024)
    r = post(webhook_host, payload([ImageFile("huge.jpg", big)]))
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    [email] = email_rows(db)
    assert email["reason"].startswith("too_large") and email["raw_blob"] is None
    assert email["size_bytes"] > 30 * 1024 * 1024
    assert queue_messages(storage) == []


def test_unknown_sender_is_quarantined_with_its_raw_email_kept(webhook_host, registry, db, storage):
    p = payload(sender="stranger@example.net", to="someone-else@alerts.example.org", subject="hello")
    r = post(webhook_host, p)
    assert r.status_code == 200 and r.json()["status"] == "quarantined"
    [email] = email_rows(db)
    assert email["status"] == "quarantined" and email["reason"].startswith("unknown_sender")
    assert storage.get_blob(names.RAW_EMAILS_CONTAINER, email["raw_blob"]) == p.body
    assert image_rows(db) == [] and queue_messages(storage) == []


# -- signed webhook ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def signer():
    return WebhookSigner()


@pytest.fixture
def signed_host(host_factory, signer):
    return host_factory(
        script_root=WebhookApp.root(),
        host_json={"maxDequeueCount": 5},
        SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key_base64,
        SENDGRID_WEBHOOK_MAX_AGE_S="300",
    )


class WebhookApp:
    @staticmethod
    def root():
        from .conftest import WEBHOOK_APP

        return WEBHOOK_APP


def test_signed_webhook(signed_host, registry, db, storage, signer):
    p = payload()
    # missing signature: 401; bad signature, other key, expired timestamp, body changed: 403; nothing stored
    assert post(signed_host, p).status_code == 401
    other = WebhookSigner()
    assert post(signed_host, p, signer=other).status_code == 403
    assert post(signed_host, p, signer=signer, timestamp=int(time.time()) - 3600).status_code == 403
    headers = p.headers(signer=signer, function_key="test-function-key")
    tampered = httpx.post(
        signed_host.api(names.INBOUND_ROUTE),
        content=p.body.replace(b"CAM01 motion", b"CAM01 motioN"),
        headers=headers,
    )
    assert tampered.status_code == 403
    garbage = dict(headers)
    garbage["X-Twilio-Email-Event-Webhook-Signature"] = "not base64!!"
    assert (
        httpx.post(signed_host.api(names.INBOUND_ROUTE), content=p.body, headers=garbage).status_code == 403
    )
    assert email_rows(db) == [] and queue_messages(storage) == []
    assert storage.blobs.get_container_client(names.RAW_EMAILS_CONTAINER) is not None
    # signed by SendGrid's key: accepted
    r = post(signed_host, p, signer=signer)
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert len(queue_messages(storage)) == 1


# -- database down, then up -------------------------------------------------------------------------------
def test_database_down_then_up_sendgrid_retry_succeeds_without_duplicates(
    webhook_host, registry, db, storage, postgres
):
    p = payload([ImageFile("a.jpg", make_jpeg())])
    postgres.stop("fast")
    try:
        r = post(webhook_host, p)
        assert r.status_code == 503, r.text
        assert r.json()["retry"] is True
        assert post(webhook_host, p).status_code == 503  # SendGrid retries while it is still down
    finally:
        postgres.start()
    db.close()  # the test's own pool holds dead connections
    r = post(webhook_host, p)
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    assert post(webhook_host, p).json()["status"] == "duplicate"
    assert len(email_rows(db)) == 1 and len(image_rows(db)) == 1
    assert len(queue_messages(storage)) == 1
