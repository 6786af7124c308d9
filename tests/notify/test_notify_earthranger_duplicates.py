"""EarthRanger duplicate windows (issue 13): a create whose answer was lost, and camera-trap 409s.

The stand-in commits the request and only then answers late (``answer_late``), or waits before carrying it
out (``delay_next``), past the client's read timeout: the two shapes of an ambiguous failure.
"""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest

from functions.notify import Channel, TransientDeliveryError, build_notifier, deliver
from functions.notify.http import ambiguous, error_for_status
from tests.fakes import FakeEarthRanger
from tests.notify.helpers import make_notice, make_update

EVENTS = "/api/v1.0/activity/events"


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
            "timeout_s": 0.5,
            "ambiguous_settle_s": 0,
            **config,
        },
    )


def _creates(er) -> list:
    return er.requests_to(r"^/api/v1\.0/activity/events/?$", "POST")


def _lookups(er) -> list:
    return er.requests_to(r"^/api/v1\.0/activity/events/?$", "GET")


def test_a_create_committed_but_answered_too_late_is_adopted_not_created_again(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er), secrets)
    fake_er.answer_late(1, seconds=1.5, path=EVENTS, method="POST")
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert "timed out" in str(info.value) and "TA42C11" in str(info.value)
    partial = info.value.partial
    assert partial is not None and partial.external_id is None
    assert partial.state["pending_create"]["ref"] == "TA42C11"
    assert len(fake_er.events) == 1  # ER committed it

    result = deliver(notifier, notice, previous=None, partial=partial)  # the retry

    fake_er.wait_for(lambda reqs: len([r for r in reqs if r.method == "POST" and r.path == EVENTS]) == 1)
    (event_id,) = fake_er.events
    assert result.external_id == event_id and result.state["event_id"] == event_id
    assert len(_creates(fake_er)) == 1, "no second create"
    (lookup,) = _lookups(fake_er)
    flt = json.loads(lookup.query["filter"][0])
    assert flt["text"] == "TA42C11" and set(flt["date_range"]) == {"lower", "upper"}
    assert lookup.query["include_notes"] == ["true"]
    assert [f["filename"] for f in fake_er.events[event_id]["files"]] == ["a1b2c3-0.jpg"]
    assert "pending_create" not in result.state

    # later updates go to the adopted event
    notifier.send_update(make_update(notice.photo_jpeg, 2), result)
    assert len(fake_er.events) == 1 and len(fake_er.events[event_id]["notes"]) == 1


def test_a_lookup_that_finds_nothing_waits_the_settle_time_then_creates_once(fake_er, secrets, notice):
    # ER receives the create but carries it out only after the client gave up (1.2 s later)
    notifier = build_notifier(er_channel(fake_er, ambiguous_settle_s=30), secrets)
    fake_er.delay_next(1, seconds=1.2, path=EVENTS)
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    partial = info.value.partial
    assert fake_er.events == {}  # not yet

    with pytest.raises(TransientDeliveryError) as waiting:  # a retry too early: look, do not create
        deliver(notifier, notice, partial=partial)
    assert "not found yet" in str(waiting.value) and 25 < waiting.value.retry_after <= 30
    assert waiting.value.partial.state["pending_create"] == partial.state["pending_create"]

    fake_er.wait_for(lambda reqs: any(r.method == "POST" and r.path == EVENTS for r in reqs), timeout=5)
    result = deliver(notifier, notice, partial=waiting.value.partial)
    assert list(fake_er.events) == [result.external_id]
    assert len(_creates(fake_er)) == 1


def test_after_the_settle_time_a_create_that_never_happened_is_made(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er), secrets)
    # the connection is dropped after the request was sent, nothing committed
    fake_er.fail_next(1, status=502, path=EVENTS, method="POST")
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert info.value.partial.state["pending_create"]["ref"] == "TA42C11"
    result = deliver(notifier, notice, partial=info.value.partial)
    assert list(fake_er.events) == [result.external_id]
    assert fake_er.events[result.external_id]["event_details"]["trapalert_ref"] == "TA42C11"
    assert len(_lookups(fake_er)) == 1


def test_answers_of_er_itself_are_not_ambiguous(fake_er, secrets, notice):
    notifier = build_notifier(er_channel(fake_er), secrets)
    for status in (500, 503, 429, 400):
        fake_er.fail_next(1, status=status, path=EVENTS, method="POST")
        with pytest.raises(Exception) as info:
            notifier.send_new(notice)
        assert getattr(info.value, "partial", None) is None, status
    assert _lookups(fake_er) == []


def test_which_failures_are_ambiguous():
    # the request never left: not ambiguous
    assert not ambiguous(httpx.ConnectError("refused"))
    assert not ambiguous(httpx.ConnectTimeout("connect"))
    assert not ambiguous(httpx.PoolTimeout("pool"))
    # sent, then no (complete) answer: ambiguous
    assert ambiguous(httpx.ReadTimeout("read"))
    assert ambiguous(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    assert ambiguous(httpx.ReadError("reset"))
    # answers: only a gateway's 502/504 may hide a finished request
    assert ambiguous(error_for_status("EarthRanger", 504))
    assert not ambiguous(error_for_status("EarthRanger", 500))
    assert not ambiguous(error_for_status("EarthRanger", 409))


def test_a_reference_in_a_note_survives_an_event_type_schema_without_the_key(secrets, notice, caplog):
    schemas = {"trapalert_detection": {"camera", "categories", "confidence", "image_count", "photo_url"}}
    with FakeEarthRanger(token="er-test-token", event_schemas=schemas) as er:
        # default (event_details): ER drops the key, the adapter says so
        caplog.set_level(logging.WARNING, logger="functions.notify.earthranger")
        build_notifier(er_channel(er, attach_photo=False), secrets).send_new(notice)
        assert "trapalert_ref" in caplog.text and "ref_in=note" in caplog.text
        er.events.clear()

        notifier = build_notifier(er_channel(er, ref_in="note"), secrets)
        er.answer_late(1, seconds=1.5, path=EVENTS, method="POST")
        with pytest.raises(TransientDeliveryError) as info:
            notifier.send_new(notice)
        (event,) = er.events.values()
        assert "trapalert_ref" not in event["event_details"]
        assert [n["text"] for n in event["notes"]] == ["TrapAlert delivery reference TA42C11 (alert 42)."]
        result = deliver(notifier, notice, partial=info.value.partial)
        assert list(er.events) == [result.external_id]


def test_a_reference_that_only_prefixes_another_is_not_adopted(fake_er, secrets, photo):
    # alert 4 on channel 11 (TA4C11) must not adopt the event of alert 4 on channel 110 (TA4C110)
    other = build_notifier(er_channel(fake_er).model_copy(update={"id": 110}), secrets)
    other.send_new(make_notice(photo, alert_id=4))
    notifier = build_notifier(er_channel(fake_er), secrets)
    fake_er.fail_next(1, status=504, path=EVENTS, method="POST")
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(make_notice(photo, alert_id=4))
    result = deliver(notifier, make_notice(photo, alert_id=4), partial=info.value.partial)
    assert len(fake_er.events) == 2
    assert fake_er.events[result.external_id]["event_details"]["trapalert_ref"] == "TA4C11"


# ----------------------------------------------------------------------------------------- camera trap
def ct_channel(er, **config) -> Channel:
    return er_channel(er, mode="camera_trap", provider_key="trapalert-kruger", **config)


def test_camera_trap_409_without_a_group_id_finds_the_group(fake_er, secrets, photo):
    notifier = build_notifier(ct_channel(fake_er), secrets)
    first = notifier.send_new(make_notice(photo))
    group_id = first.external_id

    # the stored state was lost: the same photo again gets 409, and the group id is found again
    again = notifier.send_new(make_notice(photo))
    assert fake_er.requests[-2].status == 409
    lookup = fake_er.requests[-1]
    assert (lookup.method, lookup.path) == ("GET", EVENTS)
    assert json.loads(lookup.query["filter"][0])["text"] == "CT-07 Sabie drift"
    assert again.external_id == group_id and again.state["group_id"] == group_id

    # so the next photo still joins the same camera-trap event
    notifier.send_update(make_update(photo, 2), again)
    assert fake_er.requests[-1].form["group_id"] == group_id
    assert fake_er.camera_trap_groups == {group_id: ["a1b2c3-0.jpg", "a1b2c3-1.jpg"]}
    (event,) = fake_er.events.values()
    assert event["event_type"] == "cameratrap_rep" and len(event["files"]) == 2


def test_camera_trap_report_answered_too_late_is_found_by_its_file(fake_er, secrets, photo):
    notifier = build_notifier(ct_channel(fake_er), secrets)
    fake_er.answer_late(1, seconds=1.5, path="/api/v1.0/sensors/camera-trap/")
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(make_notice(photo))
    pending = info.value.partial.state["pending_report"]
    assert pending["filename"] == "a1b2c3-0.jpg"

    # the retry carries the alert's newest photo: it must join the event the lost answer created
    result = deliver(notifier, make_update(photo, 2), partial=info.value.partial)
    (group_id,) = fake_er.camera_trap_groups
    assert result.external_id == group_id
    assert fake_er.camera_trap_groups[group_id] == ["a1b2c3-0.jpg", "a1b2c3-1.jpg"]
    assert len(fake_er.events) == 1
    assert "pending_report" not in result.state


def test_camera_trap_lookup_failure_keeps_the_pending_report(fake_er, secrets, photo):
    notifier = build_notifier(ct_channel(fake_er), secrets)
    fake_er.answer_late(1, seconds=1.5, path="/api/v1.0/sensors/camera-trap/")
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(make_notice(photo))
    time.sleep(0.1)
    fake_er.fail_next(1, status=503, path=EVENTS, method="GET")
    with pytest.raises(TransientDeliveryError) as again:
        deliver(notifier, make_update(photo, 2), partial=info.value.partial)
    assert again.value.partial.state["pending_report"] == info.value.partial.state["pending_report"]
    assert len(fake_er.events) == 1  # no second camera-trap event was started
