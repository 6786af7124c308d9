"""EarthRanger adapter against the local EarthRanger stand-in: the exact requests ER would receive."""

from __future__ import annotations

import json

import pytest

from functions.notify import (
    Channel,
    ChannelConfigError,
    DeliveryResult,
    PermanentDeliveryError,
    TransientDeliveryError,
    build_notifier,
    deliver,
)
from tests.notify.helpers import make_notice, make_update


def er_channel(er, **config) -> Channel:
    return Channel(
        id=11,
        park_id=1,
        kind="earthranger",
        name="Kruger ER",
        config={
            "allow_http": True,
            "allow_private_network": True,
            "service_root": er.url,
            "token_setting": "CHANNEL_SECRET_ER_TOKEN_KRUGER",
            **config,
        },
    )


def test_new_alert_creates_event_and_attaches_photo(fake_er, secrets, notice, photo):
    notifier = build_notifier(er_channel(fake_er), secrets)
    result = notifier.send_new(notice)

    reqs = fake_er.requests
    assert [(r.method, r.path) for r in reqs] == [
        ("POST", "/api/v1.0/activity/events"),
        ("POST", f"/api/v1.0/activity/event/{result.external_id}/files/"),
    ]
    assert all(r.header("Authorization") == "Bearer er-test-token" for r in reqs)
    assert not any(r.path.startswith("/.well-known") for r in reqs)  # discovery off
    assert reqs[0].header("Content-Type") == "application/json"
    assert reqs[0].json == {
        "event_type": "trapalert_detection",
        "time": "2026-11-20T02:14:05+00:00",
        "location": {"latitude": -25.1234, "longitude": 31.9123},
        "priority": 300,
        "title": "Person at CT-07 Sabie drift",
        "state": "new",
        "event_details": {
            "camera": "CT-07 Sabie drift",
            "categories": "person",
            "confidence": 0.93,
            "image_count": 1,
            "photo_url": notice.photo_url,
            "trapalert_ref": f"TA{notice.alert_id}C11",  # the delivery reference (alert, channel 11)
        },
    }
    upload = reqs[1]
    assert upload.header("Content-Type").startswith("multipart/form-data")
    assert set(upload.files) == {"filecontent.file"}
    assert upload.files["filecontent.file"].filename == "a1b2c3-0.jpg"
    assert upload.files["filecontent.file"].data == photo
    assert upload.form == {"comment": "Person at CT-07 Sabie drift"}

    event = fake_er.events[result.external_id]
    assert result.state["event_id"] == event["id"]
    assert result.state["serial_number"] == event["serial_number"]
    assert json.loads(json.dumps(result.state)) == result.state  # storable as JSON


def test_burst_update_goes_to_the_same_event(fake_er, secrets, notice, photo):
    notifier = build_notifier(er_channel(fake_er), secrets)
    first = notifier.send_new(notice)
    second = notifier.send_update(make_update(photo, 2), first)
    third = notifier.send_update(make_update(photo, 3), second)

    assert len(fake_er.events) == 1
    event_id = first.external_id
    assert second.external_id == third.external_id == event_id
    assert len(fake_er.requests_to(r"^/api/v1.0/activity/events$")) == 1
    event = fake_er.events[event_id]
    assert [f["filename"] for f in event["files"]] == ["a1b2c3-0.jpg", "a1b2c3-1.jpg", "a1b2c3-2.jpg"]
    assert len(event["notes"]) == 2
    note_req = fake_er.requests_to(r"/notes$")[0]
    assert note_req.path == f"/api/v1.0/activity/event/{event_id}/notes"
    assert note_req.json["event"] == event_id
    assert note_req.json["text"].startswith("Update: 2 photo(s) so far from CT-07 Sabie drift; seen: person")

    # the same update delivered twice (message redelivered) adds nothing
    before = len(fake_er.requests)
    again = notifier.send_update(make_update(photo, 3), third)
    assert again == third and len(fake_er.requests) == before


def test_update_with_more_serious_category_raises_priority(fake_er, secrets, photo):
    notifier = build_notifier(er_channel(fake_er), secrets)
    first = notifier.send_new(make_notice(photo, categories=["animal"], title="Animal at CT-07"))
    assert fake_er.events[first.external_id]["priority"] == 100
    notifier.send_update(make_update(photo, 2, categories=["animal", "person"]), first)
    patch = fake_er.requests_to(r"/activity/event/[^/]+$", method="PATCH")
    assert len(patch) == 1 and patch[0].json["priority"] == 300
    assert fake_er.events[first.external_id]["priority"] == 300


def test_priorities_and_detail_keys_are_configurable(fake_er, secrets, photo):
    notifier = build_notifier(
        er_channel(
            fake_er,
            event_type="poacher_rep",
            priorities={"person": 300, "vehicle": 300, "animal": 0},
            details_keys={
                "camera": "cameratrap_name",
                "confidence": "detection_confidence",
                "photo_url": None,
            },
            extra_details={"source": "trapalert"},
            attach_photo=False,
        ),
        secrets,
    )
    notifier.send_new(make_notice(photo, categories=["vehicle"]))
    (req,) = fake_er.requests
    assert req.json["event_type"] == "poacher_rep"
    assert req.json["priority"] == 300
    assert req.json["event_details"] == {
        "source": "trapalert",
        "cameratrap_name": "CT-07 Sabie drift",
        "detection_confidence": 0.93,
        "trapalert_ref": "TA42C11",
    }


def test_429_with_retry_after_is_transient(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er), secrets)
    fake_er.fail_next(1, status=429, retry_after=17)
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert info.value.retry_after == 17
    assert info.value.status == 429
    assert info.value.partial is None
    assert fake_er.events == {}


def test_server_errors_are_transient_and_upload_failure_keeps_the_event(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er), secrets)
    fake_er.fail_next(1, status=500, path="/api/v1.0/activity/event/")  # the photo upload fails
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    partial = info.value.partial
    assert partial is not None and partial.external_id in fake_er.events

    # the retry resumes: no second event, the photo is attached to the first one
    result = deliver(notifier, notice, previous=None, partial=partial)
    assert result.external_id == partial.external_id
    assert len(fake_er.events) == 1
    assert [f["filename"] for f in fake_er.events[result.external_id]["files"]] == ["a1b2c3-0.jpg"]


def test_bad_gateway_is_not_retried_inside_the_client(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er), secrets)
    fake_er.fail_next(1, status=502)
    with pytest.raises(TransientDeliveryError):
        notifier.send_new(notice)
    assert len(fake_er.requests) == 1  # no retry inside the transport: the queue retries


def test_timeout_is_transient(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er, timeout_s=0.3), secrets)
    fake_er.delay_next(1, seconds=1.0)
    with pytest.raises(TransientDeliveryError, match="timed out"):
        notifier.send_new(notice)


def test_unknown_event_type_is_permanent_and_clear(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er, event_type="no_such_type"), secrets)
    with pytest.raises(PermanentDeliveryError) as info:
        notifier.send_new(notice)
    assert info.value.status == 400
    msg = str(info.value)
    assert "400 Bad Request" in msg and "check event_type 'no_such_type'" in msg
    assert "Unknown event type" not in msg  # the remote body never goes into an error (last_error)


def test_rejected_token_names_the_setting_not_the_value(fake_er, notice):
    from functions.notify import EnvSecrets

    notifier = build_notifier(
        er_channel(fake_er), EnvSecrets(environ={"CHANNEL_SECRET_ER_TOKEN_KRUGER": "wrong-token-value"})
    )
    with pytest.raises(PermanentDeliveryError) as info:
        notifier.send_new(notice)
    assert "CHANNEL_SECRET_ER_TOKEN_KRUGER" in str(info.value) and "401" in str(info.value)
    assert "wrong-token-value" not in str(info.value)


def test_camera_trap_mode_keeps_group_id_and_treats_409_as_delivered(fake_er, secrets, photo):
    notifier = build_notifier(
        er_channel(fake_er, mode="camera_trap", provider_key="trapalert-kruger"), secrets
    )
    first = notifier.send_new(make_notice(photo))
    reqs = fake_er.requests
    assert [(r.method, r.path) for r in reqs] == [
        ("POST", "/api/v1.0/sensors/camera-trap/trapalert-kruger/status/")
    ]
    req = reqs[0]
    assert req.header("Authorization") == "Bearer er-test-token"
    assert req.form == {
        "camera_name": "CT-07 Sabie drift",
        "camera_description": "Kruger South / north",
        "time": "2026-11-20T02:14:05+00:00",
        "location": json.dumps({"latitude": -25.1234, "longitude": 31.9123}),
    }
    assert req.files["filecontent.file"].filename == "a1b2c3-0.jpg"
    assert req.files["filecontent.file"].data == photo
    group_id = first.external_id
    assert group_id and first.state["group_id"] == group_id

    second = notifier.send_update(make_update(photo, 2), first)
    assert fake_er.requests[-1].form["group_id"] == group_id
    assert second.external_id == group_id
    assert fake_er.camera_trap_groups == {group_id: ["a1b2c3-0.jpg", "a1b2c3-1.jpg"]}

    # the state was lost (redelivery before it was stored): ER answers 409, which means delivered
    again = notifier.send_update(make_update(photo, 2), first)
    assert fake_er.requests[-1].status == 409
    assert again.external_id == group_id
    assert fake_er.camera_trap_groups == {group_id: ["a1b2c3-0.jpg", "a1b2c3-1.jpg"]}


def test_camera_trap_429(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er, mode="camera_trap", provider_key="pk"), secrets)
    fake_er.fail_next(1, status=429, retry_after=3)
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert info.value.retry_after == 3


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"token_setting": "CHANNEL_SECRET_ER_TOKEN_KRUGER"}, "service_root: Field required"),
        (
            {"service_root": "ftp://x", "token_setting": "T"},
            "service_root: Value error, must be an http(s) URL",
        ),
        (
            {"service_root": "https://x.pamdas.org", "token_setting": "T", "mode": "camera_trap"},
            "provider_key",
        ),
        (
            {"service_root": "https://x.pamdas.org", "token_setting": "T", "priorities": {"person": 350}},
            "priorities must be 0, 100",
        ),
        (
            {"service_root": "https://x.pamdas.org", "token_setting": "T", "details_keys": {"colour": "c"}},
            "unknown detail fields ['colour']",
        ),
        ({"service_root": "https://x.pamdas.org", "token_setting": "T", "tokn": "x"}, "tokn: Extra inputs"),
    ],
)
def test_config_errors_are_clear(config, message, secrets):
    channel = Channel(id=5, park_id=1, kind="earthranger", name="bad", config=config)
    with pytest.raises(ChannelConfigError) as info:
        build_notifier(channel, secrets)
    assert message in str(info.value)
    assert "channel 5 (earthranger 'bad')" in str(info.value)


def test_missing_token_setting_is_a_config_error(fake_er):
    from functions.notify import EnvSecrets

    with pytest.raises(ChannelConfigError, match="secret setting CHANNEL_SECRET_ER_TOKEN_KRUGER is not set"):
        build_notifier(er_channel(fake_er), EnvSecrets(environ={}))


def test_update_without_previous_event_creates_one(fake_er, secrets, photo):
    notifier = build_notifier(er_channel(fake_er), secrets)
    result = notifier.send_update(make_update(photo, 2), DeliveryResult())
    assert result.external_id in fake_er.events


def test_down_for_a_while_then_delivered_once(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er), secrets)
    fake_er.fail_until_recovered(503)
    for _ in range(3):
        with pytest.raises(TransientDeliveryError):
            notifier.send_new(notice)
    fake_er.recover()
    result = notifier.send_new(notice)
    assert list(fake_er.events) == [result.external_id]
    assert [r.status for r in fake_er.requests] == [503, 503, 503, 201, 201]


# ------------------------------------------------------------------------------------------ check()
def test_check_passes_and_leaves_no_test_event(fake_er, secrets):
    import re

    notifier = build_notifier(er_channel(fake_er), secrets)
    assert notifier.check() == []
    reqs = fake_er.requests
    assert [(r.method, r.status) for r in reqs] == [("GET", 200), ("POST", 201), ("DELETE", 204)]
    assert reqs[0].path == "/api/v1.0/activity/events/eventtypes"
    assert reqs[1].path == "/api/v1.0/activity/events"
    assert re.fullmatch(r"/api/v1\.0/activity/event/[0-9a-f-]{36}/", reqs[2].path)
    test_event = reqs[1].json
    assert test_event["event_type"] == "trapalert_detection" and test_event["state"] == "resolved"
    assert fake_er.events == {}


def test_check_names_an_unknown_event_type_and_similar_ones(fake_er, secrets):
    (problem,) = build_notifier(er_channel(fake_er, event_type="trapalert_detections"), secrets).check()
    assert "event type 'trapalert_detections' does not exist" in problem
    assert (
        "CHANNEL_SECRET_ER_TOKEN_KRUGER" in problem
        and "similar types it sees: trapalert_detection" in problem
    )
    assert [r.method for r in fake_er.requests] == ["GET"]  # no test event of a type that does not exist


def test_check_says_which_permission_is_missing(secrets):
    from tests.fakes import FakeEarthRanger

    # the account reads the category but may not create in it: the type is listed, the create is refused
    with FakeEarthRanger(token="er-test-token", permissions={"security_read"}) as er:
        (problem,) = build_notifier(er_channel(er), secrets).check()
        assert "may not create events of type 'trapalert_detection'" in problem
        assert "'security create' permission" in problem and er.events == {}
    # no permission at all on the category: ER does not even list the type
    with FakeEarthRanger(token="er-test-token", permissions={"logistics_create"}) as er:
        (problem,) = build_notifier(er_channel(er), secrets).check()
        assert "has no permission on its category" in problem
    # may create but not delete: the test event is resolved instead, which is not a problem
    with FakeEarthRanger(token="er-test-token", permissions={"security_create", "security_update"}) as er:
        assert build_notifier(er_channel(er), secrets).check() == []
        (event,) = er.events.values()
        assert event["state"] == "resolved" and event["patches"] == [{"state": "resolved"}]


def test_check_reports_a_schema_that_drops_the_reference_and_a_bad_token(secrets):
    from functions.notify import EnvSecrets
    from tests.fakes import FakeEarthRanger

    with FakeEarthRanger(token="er-test-token", event_schemas={"trapalert_detection": {"camera"}}) as er:
        (problem,) = build_notifier(er_channel(er), secrets).check()
        assert "drops event_details['trapalert_ref']" in problem and '"ref_in": "note"' in problem
        assert er.events == {}  # deleted all the same
        bad = EnvSecrets(environ={"CHANNEL_SECRET_ER_TOKEN_KRUGER": "wrong-token-value"})
        (problem,) = build_notifier(er_channel(er), bad).check()
        assert "CHANNEL_SECRET_ER_TOKEN_KRUGER was rejected (401)" in problem
        assert "wrong-token-value" not in problem


def test_camera_trap_check_needs_the_cameratrap_type_only(fake_er, secrets):
    notifier = build_notifier(er_channel(fake_er, mode="camera_trap", provider_key="pk"), secrets)
    assert notifier.check() == []
    assert [r.method for r in fake_er.requests] == ["GET"]
