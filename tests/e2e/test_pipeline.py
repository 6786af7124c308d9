"""The happy path of the whole pipeline (issue 6's "done when"), real processes end to end: camera email over
HTTP in SendGrid's format -> process-email -> process-image (real scoring service) -> send-alert ->
EarthRanger, CMORE and email stand-ins."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace

from functions.adapters.outbox import Outbox
from functions.handlers import camera_health

from .harness import T0


def test_a_flagged_photo_reaches_earthranger_cmore_and_email_once_each(pipeline):
    started = time.perf_counter()
    sent = pipeline.send_camera_email(pipeline.photos(1), camera="CAM01")
    assert sent.answer["status"] == "accepted" and sent.answer["queued"] == 1, sent.answer
    pipeline.wait_for_deliveries(timeout_s=30)
    elapsed = time.perf_counter() - started
    summary = pipeline.assert_exactly_once()
    assert summary == {"photos": 1, "alerts": 1, "emails": 1, "er_events": 1, "cmore_events": 1}

    [event] = pipeline.er.events.values()
    assert event["event_type"] == "trapalert_detection" and event["priority"] == 300  # person: red
    assert event["event_details"]["camera"] == "CAM01" and "person" in event["event_details"]["categories"]
    assert len(event["files"]) == 1 and event["files"][0]["filename"].endswith(".jpg")
    [cm_event] = pipeline.cm.events.values()
    assert "CAM01" in cm_event["description"] and cm_event["ownerGroupId"] == 7
    [mail] = pipeline.sg.messages
    assert mail["personalizations"][0]["to"] == [{"email": "rangers@park-e2e.example"}]
    assert "CAM01" in mail["subject"] and "person" in mail["subject"].lower()
    assert any(a["type"] == "image/jpeg" for a in mail.get("attachments", []))
    assert elapsed < 15, f"first alert took {elapsed:.1f} s end to end"


def test_a_burst_is_one_alert_with_updates_on_the_same_event(pipeline):
    # burst 1: three emails, two photos each, 2 s apart (one event); all sent before anything is decided
    photos = pipeline.photos(6, start=T0, step_s=2)
    for i in range(0, 6, 2):
        pipeline.send_camera_email(photos[i : i + 2], camera="CAM02")
    pipeline.wait_for_deliveries(timeout_s=30)
    first = pipeline.assert_exactly_once()
    assert first["alerts"] == 1 and first["er_events"] == 1 and first["cmore_events"] == 1

    # burst 2, two minutes later (a new event of the camera within the cooldown): an update of the alert
    pipeline.send_camera_email(pipeline.photos(2, start=T0 + timedelta(minutes=2), step_s=2), camera="CAM02")
    pipeline.wait_for_deliveries(timeout_s=30)
    summary = pipeline.assert_exactly_once()
    assert summary["alerts"] == 1 and summary["er_events"] == 1 and summary["cmore_events"] == 1
    [alert] = pipeline.q("SELECT * FROM alerts")
    assert alert["image_count"] == 8 and alert["version"] >= 2
    assert summary["emails"] >= 2  # the first notice and at least the update worth telling
    [event] = pipeline.er.events.values()
    assert event["notes"], "the update went to the same EarthRanger event (a note)"
    [cm_event] = pipeline.cm.events.values()
    assert cm_event["comments"], "the update is a comment on the same CMORE event"


def test_sendgrid_delivering_an_email_again_changes_nothing(pipeline):
    sent = pipeline.send_camera_email(pipeline.photos(2), camera="CAM03")
    pipeline.wait_for_deliveries(timeout_s=30)
    before = pipeline.assert_exactly_once()
    requests_before = (len(pipeline.er.requests), len(pipeline.cm.requests), len(pipeline.sg.requests))

    for _ in range(2):  # SendGrid retried (e.g. our 200 was lost): the very same POST again
        again = pipeline.build_email([], "CAM03")
        again.payload = sent.payload
        pipeline.post(again)
        assert again.answer["status"] == "duplicate" and again.answer["queued"] == 0, again.answer
    time.sleep(2)  # long enough for a stray message to be polled and processed (polling is 250 ms)
    pipeline.wait_for_deliveries(timeout_s=10)
    assert pipeline.assert_exactly_once() == before
    assert (
        len(pipeline.er.requests),
        len(pipeline.cm.requests),
        len(pipeline.sg.requests),
    ) == requests_before


def test_the_drill_park_is_healthy_to_the_camera_health_timer(pipeline):
    # The drills count every request the channels get; the camera-health timer (every 5 minutes) must not
    # add a health alert of its own mid-drill, e.g. for photos dated T0 (the drill park allows that clock).
    pipeline.send_camera_email(pipeline.photos(1), camera="CAM04")
    pipeline.wait_for_deliveries(timeout_s=30)
    svc = SimpleNamespace(
        db=pipeline.db, storage=pipeline.storage, outbox=Outbox(pipeline.db, pipeline.storage)
    )
    done = camera_health.handle(None, svc)
    assert done["cameras"] == len(pipeline.cameras) and done["raised"] == [], done
    assert pipeline.q("SELECT id FROM alerts WHERE kind = 'health'") == []
