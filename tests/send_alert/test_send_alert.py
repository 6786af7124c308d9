"""send-alert in-process against real PostgreSQL/Azurite and the local EarthRanger, CMORE and SendGrid."""

from __future__ import annotations

import base64
import threading
import time

import cv2
import numpy as np
import pytest

from functions import names
from functions.adapters.deliveries import DeliveryRepository
from functions.handlers import send_alert
from functions.messages import SendAlert

from . import helpers as h


def _new_alert(park, **kw):
    image_id = h.add_image(park["db"], park["storage"], park["park_id"], park["camera_id"], **kw)
    return h.add_alert(park["db"], park["park_id"], park["camera_id"], image_id), image_id


def test_new_alert_reaches_three_channels_with_exact_requests(env, park, fakes):
    er, cm, sg = fakes
    db = park["db"]
    ids = h.three_channels(db, park["park_id"], er, cm, sg)
    alert_id, image_id = _new_alert(park)

    outcomes = send_alert.handle(SendAlert(alert_id=alert_id), env)
    assert sorted(o.outcome for o in outcomes) == ["delivered"] * 3

    # EarthRanger: one event (bearer token, type, time, location, priority red for a person), one photo
    posts = er.requests_to(r"^/api/v1\.0/activity/events/?$", "POST")
    assert len(posts) == 1
    assert posts[0].header("Authorization") == f"Bearer {h.ER_TOKEN}"
    body = posts[0].json
    assert body["event_type"] == "trapalert_detection" and body["priority"] == 300
    assert body["time"] == h.T0.isoformat() and body["state"] == "new"
    assert body["location"] == {"latitude": -25.1234, "longitude": 31.9123}
    assert body["title"] == "Person detected at CT-07 Sabie drift"
    det = body["event_details"]
    assert det["camera"] == "CT-07 Sabie drift" and det["categories"] == "person"
    assert det["confidence"] == 0.93 and det["image_count"] == 1
    assert (
        det["photo_url"].startswith(f"{env.storage.blobs.url}{names.IMAGES_CONTAINER}/")
        or "/images/" in det["photo_url"]
    )
    assert "se=" in det["photo_url"] and "sig=" in det["photo_url"]  # a SAS that expires
    (event_id,) = er.events
    files = er.requests_to(rf"^/api/v1\.0/activity/event/{event_id}/files/?$", "POST")
    assert len(files) == 1
    photo = files[0].files["filecontent.file"]
    assert photo.filename.endswith(f"-{image_id}.jpg")
    decoded = cv2.imdecode(np.frombuffer(photo.data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[:2] == (480, 640)
    # the photo is the annotated one, cached in the annotated container
    blob = env.db.fetchone("SELECT blob_name FROM images WHERE id = %s", (image_id,))["blob_name"]
    cache_name = f"{blob.rsplit('.', 1)[0]}-v{send_alert.ANNOTATION_VERSION}.jpg"
    assert env.storage.get_blob(names.ANNOTATED_CONTAINER, cache_name) == photo.data

    # CMORE: login form, tag list, event with position/time/owner group/mapped tags, photo comment
    login = cm.requests_to(r"^/token/login$", "POST")
    assert len(login) == 1
    assert login[0].form == {
        "username": h.CMORE_USER,
        "password": h.CMORE_PASSWORD,
        "clientType": "SoftwareClient",
        "uniqueId": "trapalert",
    }
    (ev,) = cm.requests_to(r"^/v2/messages/events$", "POST")
    assert ev.header("Authorization").startswith("Token ")
    assert ev.json["latitude"] == -25.1234 and ev.json["longitude"] == 31.9123
    assert ev.json["dateOccurred"] == h.T0.isoformat() and ev.json["ownerGroupId"] == 12
    assert ev.json["uploadType"] == "Generated"
    assert ev.json["tags"] == [
        {
            "tagId": 501,
            "values": [{"fieldId": 9001, "value": "CT-07 Sabie drift"}, {"fieldId": 9002, "value": "person"}],
        }
    ]
    (root_id,) = cm.events
    (comment,) = cm.requests_to(r"^/comment$", "POST")  # gundi-integration-cmore post_comment_with_file
    assert comment.form["rootMessageId"] == str(root_id) and comment.files["file"].data == photo.data

    # SendGrid: bearer key, recipients, subject with park/camera/what, photo inline + attached, links
    (mail_req,) = sg.requests_to(r"^/v3/mail/send$", "POST")
    assert mail_req.header("Authorization") == f"Bearer {h.SG_KEY}"
    mail = mail_req.json
    assert mail["personalizations"][0]["to"] == [{"email": "rangers@kruger.example"}]
    assert mail["subject"] == "[TrapAlert] person at CT-07 Sabie drift (Kruger South), 93%"
    assert sorted(a["disposition"] for a in mail["attachments"]) == ["attachment", "inline"]
    inline = next(a for a in mail["attachments"] if a["disposition"] == "inline")
    assert inline["content_id"] == "alert-photo" and inline["type"] == "image/jpeg"
    assert all(base64.b64decode(a["content"]) == photo.data for a in mail["attachments"])
    html = next(c["value"] for c in mail["content"] if c["type"] == "text/html")
    assert "openstreetmap.org/?mlat=-25.123400&amp;mlon=31.912300" in html
    assert "cid:alert-photo" in html

    # delivery records
    rows = h.deliveries(db, alert_id)
    assert {n: (r["status"], r["delivered_version"], r["attempts"]) for n, r in rows.items()} == {
        "er-main": ("delivered", 1, 1),
        "cmore-ops-room": ("delivered", 1, 1),
        "rangers-email": ("delivered", 1, 1),
    }
    assert rows["er-main"]["external_id"] == event_id
    assert rows["cmore-ops-room"]["external_id"] == str(root_id)
    assert rows["rangers-email"]["external_id"]
    assert all(r["delivered_at"] is not None and r["claim_token"] is None for r in rows.values())
    assert ids  # channels were created


def test_burst_update_goes_to_the_same_events(env, park, fakes):
    er, cm, sg = fakes
    db = park["db"]
    h.three_channels(db, park["park_id"], er, cm, sg)
    alert_id, _ = _new_alert(park)
    send_alert.handle(SendAlert(alert_id=alert_id), env)

    image2 = h.add_image(
        db,
        park["storage"],
        park["park_id"],
        park["camera_id"],
        seed=2,
        detections=[("2", 0.95, (0.1, 0.1, 0.3, 0.6)), ("3", 0.9, (0.5, 0.5, 0.4, 0.3))],
    )
    version = h.update_alert(db, alert_id, image2, image_count=2, categories=("person", "vehicle"))
    assert version == 2
    send_alert.handle(SendAlert(alert_id=alert_id, version=2, reason="update"), env)

    assert len(er.events) == 1 and len(er.requests_to(r"^/api/v1\.0/activity/events/?$", "POST")) == 1
    (event,) = er.events.values()
    assert [f["filename"].endswith(f"-{image2}.jpg") for f in event["files"]] == [False, True]
    assert len(event["notes"]) == 1 and "2 photo(s)" in event["notes"][0]["text"]
    assert len(cm.events) == 1 and len(cm.requests_to(r"^/v2/messages/events$", "POST")) == 1
    (cm_event,) = cm.events.values()
    assert len(cm_event["comments"]) == 2 and cm_event["comments"][1]["description"].startswith(
        "Update: 2 photo"
    )
    assert len(sg.messages) == 2 and sg.messages[1]["subject"].startswith(
        "[TrapAlert] Update: person, vehicle"
    )
    rows = h.deliveries(db, alert_id)
    assert {r["delivered_version"] for r in rows.values()} == {2}
    assert rows["er-main"]["external_id"] == event["id"]


def test_redelivered_message_sends_nothing_twice(env, park, fakes):
    er, cm, sg = fakes
    h.three_channels(park["db"], park["park_id"], er, cm, sg)
    alert_id, _ = _new_alert(park)
    msg = SendAlert(alert_id=alert_id)
    send_alert.handle(msg, env)
    counts = (len(er.requests), len(cm.requests), len(sg.requests))
    outcomes = send_alert.handle(msg, env)  # the queue delivered it again
    send_alert.handle(SendAlert(alert_id=alert_id), env)  # or a duplicate was enqueued
    assert {o.outcome for o in outcomes} == {"skipped"}
    assert (len(er.requests), len(cm.requests), len(sg.requests)) == counts
    assert {r["attempts"] for r in h.deliveries(park["db"], alert_id).values()} == {1}


def test_two_messages_of_one_burst_at_once_create_one_event(env, park, fakes):
    """Versions 1 and 2 handled concurrently (a batch of the queue): one event per system, no duplicate."""
    er, cm, sg = fakes
    db = park["db"]
    h.three_channels(db, park["park_id"], er, cm, sg)
    alert_id, _ = _new_alert(park)
    image2 = h.add_image(db, park["storage"], park["park_id"], park["camera_id"], seed=3)
    h.update_alert(db, alert_id, image2, image_count=2)
    er.delay_next(1, seconds=0.5, path="/api/v1.0/activity/events")  # widen the race window
    errors = []

    def run(msg):
        try:
            send_alert.handle(msg, env)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(SendAlert(alert_id=alert_id, version=v),)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(er.requests_to(r"^/api/v1\.0/activity/events/?$", "POST")) == 1
    assert len(cm.requests_to(r"^/v2/messages/events$", "POST")) == 1
    assert len(sg.messages) == 1  # the first worker already sent version 2; the second found it delivered
    assert {r["delivered_version"] for r in h.deliveries(db, alert_id).values()} == {2}


def test_one_channel_down_then_recovers_without_duplicates(env, park, fakes):
    er, cm, sg = fakes
    db = park["db"]
    h.three_channels(db, park["park_id"], er, cm, sg)
    alert_id, _ = _new_alert(park)
    er.fail_until_recovered(503)
    msg = SendAlert(alert_id=alert_id)
    for _ in range(2):  # the host's first attempts
        with pytest.raises(send_alert.ChannelsFailed) as info:
            send_alert.handle(msg, env)
        assert "channel 'er-main' (earthranger" in str(info.value)
        assert "cmore" not in str(info.value) and "email" not in str(info.value)
    rows = h.deliveries(db, alert_id)
    assert (rows["er-main"]["status"], rows["er-main"]["attempts"]) == ("failed", 2)
    assert "503" in rows["er-main"]["last_error"]
    er.recover()
    send_alert.handle(msg, env)
    assert len(er.events) == 1 and len(cm.events) == 1 and len(sg.messages) == 1
    rows = h.deliveries(db, alert_id)
    assert {n: (r["status"], r["attempts"]) for n, r in rows.items()} == {
        "er-main": ("delivered", 3),
        "cmore-ops-room": ("delivered", 1),
        "rangers-email": ("delivered", 1),
    }
    assert rows["er-main"]["last_error"] is None


def test_partial_delivery_resumes_on_the_same_event(env, park, fakes):
    """The event was created but its photo upload failed: the retry attaches to that event."""
    er, cm, sg = fakes
    h.add_channel(park["db"], park["park_id"], "er-main", "earthranger", h.er_config(er))
    alert_id, _ = _new_alert(park)
    er.fail_next(1, 500, path="/api/v1.0/activity/event/")
    with pytest.raises(send_alert.ChannelsFailed):
        send_alert.handle(SendAlert(alert_id=alert_id), env)
    (event_id,) = er.events
    row = h.deliveries(park["db"], alert_id)["er-main"]
    assert (row["status"], row["external_id"], row["delivered_version"]) == ("failed", event_id, 0)
    send_alert.handle(SendAlert(alert_id=alert_id), env)
    assert len(er.requests_to(r"^/api/v1\.0/activity/events/?$", "POST")) == 1
    assert len(er.events[event_id]["files"]) == 1
    assert h.deliveries(park["db"], alert_id)["er-main"]["status"] == "delivered"


def test_bad_channel_configuration_is_recorded_and_does_not_block_others(env, park, fakes, monkeypatch):
    er, cm, sg = fakes
    db = park["db"]
    h.add_channel(db, park["park_id"], "rangers-email", "email", h.email_config(sg))
    h.add_channel(
        db,
        park["park_id"],
        "er-broken",
        "earthranger",
        {"service_root": "not a url", "token_setting": "CHANNEL_SECRET_TEST_ER_TOKEN"},
    )
    h.add_channel(
        db,
        park["park_id"],
        "er-no-secret",
        "earthranger",
        {"service_root": er.url, "token_setting": "CHANNEL_SECRET_MISSING_ER_TOKEN", **h.LOCAL},
    )
    h.add_channel(db, park["park_id"], "sms", "carrier-pigeon", {})
    monkeypatch.setenv("CHANNEL_SECRET_TEST_ER_TOKEN", "wrong-token-value")
    h.add_channel(db, park["park_id"], "er-bad-token", "earthranger", h.er_config(er))
    alert_id, _ = _new_alert(park)

    outcomes = {o.channel_name: o for o in send_alert.handle(SendAlert(alert_id=alert_id), env)}  # no raise
    assert outcomes["rangers-email"].outcome == "delivered" and len(sg.messages) == 1
    rows = h.deliveries(db, alert_id)
    assert rows["er-broken"]["status"] == "failed"
    assert (
        "invalid config: service_root: Value error, must be an http(s) URL" in rows["er-broken"]["last_error"]
    )
    assert "secret setting CHANNEL_SECRET_MISSING_ER_TOKEN is not set" in rows["er-no-secret"]["last_error"]
    assert "unknown channel kind 'carrier-pigeon'" in rows["sms"]["last_error"]
    assert (
        "token in setting CHANNEL_SECRET_TEST_ER_TOKEN was rejected (401)"
        in rows["er-bad-token"]["last_error"]
    )
    assert all("wrong-token-value" not in (r["last_error"] or "") for r in rows.values())
    assert {o.outcome for n, o in outcomes.items() if n != "rangers-email"} == {"permanent"}
    assert not er.events


def test_html_injection_in_camera_name_is_escaped_in_the_email(env, park, fakes):
    er, cm, sg = fakes
    db = park["db"]
    evil = '<script>alert("x")</script><img src=x onerror=steal()>'
    camera_id = h.add_camera(db, park["park_id"], name=evil)
    h.add_channel(db, park["park_id"], "rangers-email", "email", h.email_config(sg))
    image_id = h.add_image(db, park["storage"], park["park_id"], camera_id)
    alert_id = h.add_alert(db, park["park_id"], camera_id, image_id)
    send_alert.handle(SendAlert(alert_id=alert_id), env)
    (mail,) = sg.messages
    html = next(c["value"] for c in mail["content"] if c["type"] == "text/html")
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=steal()&gt;" in html


def test_zone_routing_and_disabled_channels(env, park, fakes):
    er, cm, sg = fakes
    db = park["db"]
    h.add_channel(db, park["park_id"], "north-email", "email", h.email_config(sg), zone="north")
    h.add_channel(db, park["park_id"], "south-email", "email", h.email_config(sg), zone="south")
    h.add_channel(db, park["park_id"], "off-email", "email", h.email_config(sg), enabled=False)
    h.add_channel(db, park["park_id"], "ops-email", "email", h.email_config(sg), purpose="ops")
    alert_id, _ = _new_alert(park)  # the camera is in zone north
    send_alert.handle(SendAlert(alert_id=alert_id), env)
    assert set(h.deliveries(db, alert_id)) == {"north-email"} and len(sg.messages) == 1


def test_unknown_alert_raises_for_retry(env):
    with pytest.raises(send_alert.AlertNotFound):
        send_alert.handle(SendAlert(alert_id=999999), env)


def test_health_alert_and_its_clearing_reach_the_channels(env, park, fakes):
    er, cm, sg = fakes
    db = park["db"]
    h.add_channel(db, park["park_id"], "rangers-email", "email", h.email_config(sg))
    h.add_channel(db, park["park_id"], "er-main", "earthranger", h.er_config(er))
    alert_id = db.fetchone(
        "INSERT INTO alerts (park_id, camera_id, kind, started_at, last_image_at, title, details, "
        "correlation_id) VALUES (%s, %s, 'health', now(), now(), 'Camera CT-07 Sabie drift went silent', "
        '\'{"condition": "silent", "status": "raised"}\', gen_random_uuid()) RETURNING id',
        (park["park_id"], park["camera_id"]),
    )["id"]
    send_alert.handle(SendAlert(alert_id=alert_id, reason="health"), env)
    (event,) = er.events.values()
    assert event["title"] == "Camera CT-07 Sabie drift went silent" and event["priority"] == 200
    assert event["event_details"]["categories"] == "camera health: silent" and not event["files"]
    assert "went silent" in next(c["value"] for c in sg.messages[0]["content"] if c["type"] == "text/plain")
    db.execute(
        "UPDATE alerts SET version = 2, title = 'Camera CT-07 Sabie drift: back to normal', "
        "details = details || '{\"status\": \"cleared\"}', updated_at = now() + interval '1 min' "
        "WHERE id = %s",
        (alert_id,),
    )
    send_alert.handle(SendAlert(alert_id=alert_id, version=2, reason="health_cleared"), env)
    assert len(er.events) == 1 and len(event["notes"]) == 1
    assert len(sg.messages) == 2 and "back to normal" in sg.messages[1]["subject"] + str(
        sg.messages[1]["content"]
    )


def test_a_slow_channel_keeps_its_claim_and_a_dead_ones_claim_runs_out(env, park, fakes, monkeypatch):
    # The claim's lease is short and renewed while the adapter works: another worker cannot take over a
    # delivery whose sender is merely slow, and a claim left by a dead worker holds it for one lease only.
    er, cm, sg = fakes
    db = park["db"]
    ch = h.three_channels(db, park["park_id"], er, cm, sg)
    monkeypatch.setattr(send_alert, "CLAIM_LEASE_S", 1.0)
    monkeypatch.setattr(send_alert, "CLAIM_RENEW_S", 0.2)
    monkeypatch.setattr(send_alert, "CLAIM_WAIT_S", 5.0)
    repo = DeliveryRepository(db)

    slow, _ = _new_alert(park)
    er.delay_next(1, seconds=2.5, path="/api/v1.0/activity/events")
    worker = threading.Thread(target=send_alert.handle, args=(SendAlert(alert_id=slow), env))
    worker.start()
    time.sleep(1.8)  # past the first lease: only renewal keeps it held
    assert repo.try_claim(slow, ch["er"], 1.0) is None
    worker.join(15)
    assert h.deliveries(db, slow)["er-main"]["status"] == "delivered"
    assert len(er.requests_to(r"^/api/v1\.0/activity/events/?$", "POST")) == 1

    dead, _ = _new_alert(park, seed=5)
    assert repo.try_claim(dead, ch["er"], 1.0) is not None  # a worker that claimed, then died
    started = time.monotonic()
    outcomes = send_alert.handle(SendAlert(alert_id=dead), env)
    assert {o.outcome for o in outcomes} == {"delivered"}
    assert 0.5 < time.monotonic() - started < 4.0  # waited for the lease (1 s), not CLAIM_WAIT_S
