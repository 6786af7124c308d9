"""process-image's decision service (functions/handlers/process_image.decide_photo) against an in-memory unit
of work: bursts, out-of-order arrival, merges, cooldown, updates worth telling, static false positives and
redelivery, with no database. The same behaviours against PostgreSQL are in test_process_image.py."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from functions.adapters.scoring_client import ImageScore, MDDetection
from functions.handlers.process_image import decide_photo
from tests.process_image.fake_uow import FakeUnitOfWork, Tables, add_camera, add_image

T0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
BOX = (0.2, 0.2, 0.3, 0.4)


def score(*dets: tuple[str, float, tuple[float, ...]], night: bool = False) -> ImageScore:
    return ImageScore("fake", "1", [MDDetection(category=c, conf=p, bbox=b) for c, p, b in dets], night=night)


def person(conf: float = 0.9, bbox=BOX) -> ImageScore:
    return score(("2", conf, bbox))


@pytest.fixture
def uow() -> FakeUnitOfWork:
    t = Tables()
    add_camera(t, 1, "gate-3")
    add_camera(t, 2, "river-1")
    return FakeUnitOfWork(t)


def shoot(uow: FakeUnitOfWork, camera: int, seconds: float, s: ImageScore):
    image_id = add_image(uow.tables, camera, T0 + timedelta(seconds=seconds))
    return decide_photo(uow, image_id, camera, s)


def sends(uow: FakeUnitOfWork) -> list[tuple[int, int, str]]:
    return [(b["alert_id"], b["version"], b["reason"]) for q, b in uow.tables.outbox if q == "send-alert"]


def test_burst_of_ten_photos_is_one_alert_with_ten_images_and_one_message(uow):
    decisions = [shoot(uow, 1, 3 * i, person()) for i in range(10)]
    assert [d.action for d in decisions] == ["open"] + ["refresh"] * 9
    [(alert_id, alert)] = uow.tables.alerts.items()
    assert alert["image_count"] == 10 and alert["version"] == 1
    assert alert["started_at"] == T0 and alert["last_image_at"] == T0 + timedelta(seconds=27)
    assert sum(1 for im in uow.tables.images.values() if im["alert_id"] == alert_id) == 10
    assert len(uow.tables.events) == 1
    assert sends(uow) == [(alert_id, 1, "new")]


def test_the_same_photos_from_two_cameras_are_two_alerts(uow):
    for i in range(5):
        for cam in (1, 2):
            shoot(uow, cam, 3 * i, person())
    assert sorted(a["camera_id"] for a in uow.tables.alerts.values()) == [1, 2]
    assert sorted(s[2] for s in sends(uow)) == ["new", "new"]


def test_burst_arriving_out_of_order_is_still_one_alert(uow):
    times = [3 * i for i in range(10)]
    random.Random(7).shuffle(times)
    for t in times:
        shoot(uow, 1, t, person())
    [alert] = uow.tables.alerts.values()
    assert alert["image_count"] == 10 and alert["started_at"] == T0
    assert len(sends(uow)) == 1


def test_a_photo_bridging_two_events_merges_them(uow):
    gap = 60  # default burst gap
    shoot(uow, 1, 0, score())  # blank photos: events, no alert
    shoot(uow, 1, 2 * gap, score())
    assert len(uow.tables.events) == 2
    d = shoot(uow, 1, gap, score())  # within the gap of both
    assert d.event_kind == "merge" and len(d.merged_event_ids) == 1
    [(event_id, event)] = uow.tables.events.items()
    assert event["image_count"] == 3 and event["started_at"] == T0
    assert {im["event_id"] for im in uow.tables.images.values()} == {event_id}


def test_weak_detections_confirmed_by_neighbours_open_an_alert(uow):
    weak = person(0.5)  # below the day threshold (0.6), above confirm_factor x threshold (0.45)
    d1, d2 = shoot(uow, 1, 0, weak), shoot(uow, 1, 3, weak)
    assert (d1.action, d2.action) == ("none", "none") and not uow.tables.alerts
    d3 = shoot(uow, 1, 6, weak)  # confirm_photos = 3
    assert d3.action == "open" and d3.reason == "weak detections confirmed by neighbours"
    [alert] = uow.tables.alerts.values()
    assert alert["image_count"] == 3


def test_a_second_burst_within_the_cooldown_joins_the_alert_as_an_update(uow):
    first = shoot(uow, 1, 0, person())
    later = shoot(uow, 1, 200, person())  # a new event (gap 60 s), within cooldown (300 s)
    assert later.action == "join" and later.alert_id == first.alert_id
    assert later.event_id != first.event_id
    alert = uow.tables.alerts[first.alert_id]
    assert (
        alert["version"] == 2 and alert["details"]["last_update_reason"] == "a further event joined the alert"
    )
    assert alert["details"]["events"] == [first.event_id, later.event_id]
    assert sends(uow) == [(first.alert_id, 1, "new"), (first.alert_id, 2, "update")]


def test_after_the_cooldown_a_burst_opens_a_new_alert(uow):
    a = shoot(uow, 1, 0, person())
    b = shoot(uow, 1, 1000, person())
    assert b.action == "open" and b.alert_id != a.alert_id
    assert [s[2] for s in sends(uow)] == ["new", "new"]


def test_cooldown_zero_means_every_event_alerts(uow):
    uow.tables.park_rules = {"cooldown_s": 0}
    a, b = shoot(uow, 1, 0, person()), shoot(uow, 1, 100, person())
    assert (a.action, b.action) == ("open", "open") and a.alert_id != b.alert_id


def test_a_new_category_is_worth_telling_a_higher_confidence_too_but_not_more_of_the_same(uow):
    a = shoot(uow, 1, 0, person(0.85))
    same = shoot(uow, 1, 3, person(0.86))
    assert same.notify is None and uow.tables.alerts[a.alert_id]["version"] == 1
    car = shoot(uow, 1, 6, score(("2", 0.85, BOX), ("3", 0.8, (0.6, 0.5, 0.3, 0.3))))
    assert car.notify == "update" and uow.tables.alerts[a.alert_id]["categories"] == ["person", "vehicle"]
    higher = shoot(uow, 1, 9, person(0.99))
    assert higher.notify == "update"
    assert [s[1:] for s in sends(uow)] == [(1, "new"), (2, "update"), (3, "update")]


def test_an_animal_box_is_suppressed_after_n_events_and_then_never_alerts(uow):
    uow.tables.park_rules = {"cooldown_s": 0, "suppress_after": 3, "categories": "person,vehicle,animal"}
    stump = score(("1", 0.9, (0.5, 0.5, 0.1, 0.2)))
    opened = [shoot(uow, 1, 1000 * i, stump).action for i in range(3)]
    assert opened == ["open", "open", "none"]  # the third event suppresses it at once (animal: automatic)
    [box] = uow.tables.boxes.values()
    assert box.status == "suppressed" and "3 distinct events" in box.reason
    assert len(box.image_ids()) == 3  # one photo per event, the evidence an operator sees
    d = shoot(uow, 1, 5000, stump)
    assert d.action == "none" and "suppressed" in " ".join(d.assessment.reasons)
    assert sum(1 for x in uow.tables.detections.values() if x.get("suppression_id") == box.id) == 2
    # a person elsewhere in the frame still alerts
    assert shoot(uow, 1, 9000, person(0.9, (0.05, 0.05, 0.1, 0.3))).action == "open"


def test_a_person_box_is_proposed_keeps_alerting_and_is_suppressed_only_once_confirmed(uow):
    uow.tables.park_rules = {"cooldown_s": 0, "suppress_after": 3}
    post = person(0.9, (0.5, 0.5, 0.1, 0.2))
    opened = [shoot(uow, 1, 1000 * i, post).action for i in range(4)]
    assert opened == ["open"] * 4  # proposed at the third event, never silenced by itself
    [box] = uow.tables.boxes.values()
    assert box.status == "proposed" and "an operator confirms" in box.reason
    assert box.event_count == 4 and len(box.image_ids()) == 4
    assert not any(x.get("suppression_id") for x in uow.tables.detections.values())
    # an operator confirms it (SuppressionsRepository.confirm): from then on the place is silent
    uow.tables.boxes[box.id] = uow.tables.boxes[box.id].__class__(**{**box.__dict__, "status": "suppressed"})
    d = shoot(uow, 1, 9000, post)
    assert d.action == "none" and "suppressed" in " ".join(d.assessment.reasons)


def test_a_burst_of_one_standing_person_is_one_event_for_suppression(uow):
    uow.tables.park_rules = {"suppress_after": 2}
    for i in range(10):
        shoot(uow, 1, 3 * i, person())
    [box] = uow.tables.boxes.values()
    assert box.event_count == 1 and box.status == "watching"


def test_a_redelivered_message_changes_nothing_and_sends_nothing(uow):
    image_id = add_image(uow.tables, 1, T0)
    first = decide_photo(uow, image_id, 1, person())
    before = (dict(uow.tables.alerts[first.alert_id]), len(uow.tables.detections), list(uow.tables.outbox))
    again = decide_photo(uow, image_id, 1, None)  # the retry finds the image scored and decided
    assert again.already_decided and again.alert_id == first.alert_id
    assert (dict(uow.tables.alerts[first.alert_id]), len(uow.tables.detections), uow.tables.outbox) == before


def test_a_failing_save_rolls_the_whole_decision_back(uow, monkeypatch):
    image_id = add_image(uow.tables, 1, T0)

    def boom(*_a, **_k):
        raise RuntimeError("database went away")

    monkeypatch.setattr(uow.alerts, "save", boom)
    with pytest.raises(RuntimeError):
        decide_photo(uow, image_id, 1, person())
    assert uow.tables.images[image_id]["status"] == "stored" and not uow.tables.detections
    monkeypatch.undo()
    assert decide_photo(uow, image_id, 1, person()).action == "open"


def test_unknown_camera_or_image_raises_lookup_error(uow):
    with pytest.raises(LookupError):
        decide_photo(uow, 99, 1, person())
    image_id = add_image(uow.tables, 1, T0)
    with pytest.raises(LookupError):
        decide_photo(uow, image_id, 42, person())
