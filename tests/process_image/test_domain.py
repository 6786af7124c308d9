"""Unit tests of functions/domain/ (rules, events, suppression): pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from functions.domain import events as ev
from functions.domain import suppression as sup
from functions.domain.rules import (
    Det,
    PhotoAssessment,
    Rules,
    RulesError,
    TimeWindow,
    apply_assignments,
    assess_photo,
    effective_rules,
    parse_assignment,
    to_flat,
)

T0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
BOX = (0.2, 0.2, 0.3, 0.4)


def person(conf, bbox=BOX):
    return Det("2", conf, bbox)


# -- rules ------------------------------------------------------------------------------------------------
def test_defaults_alert_on_person_and_vehicle_not_animal():
    r = Rules()
    assert r.categories == ("person", "vehicle")
    assert r.alerts_on("2") and r.alerts_on("3") and not r.alerts_on("1")
    assert r.threshold_for("2", night=True) < r.threshold_for("2", night=False)


def test_day_and_night_thresholds_differ():
    r = effective_rules({"threshold.person.day": 0.8, "threshold.person.night": 0.5})
    day = assess_photo([person(0.6)], r, night=False, local_time=time(12))
    night = assess_photo([person(0.6)], r, night=True, local_time=time(23))
    assert not day.passes and night.passes
    assert "below threshold" in day.reasons[0]


def test_animal_only_when_the_park_wants_it():
    cow = [Det("1", 0.95, BOX)]
    assert not assess_photo(cow, Rules(), night=False, local_time=None).passes
    r = effective_rules({"categories": "person,animal"})
    assert assess_photo(cow, r, night=False, local_time=None).passes


def test_min_box_area_and_suppressed_boxes_do_not_count():
    r = effective_rules({"min_box_area": 0.05})
    tiny = assess_photo([person(0.99, (0.1, 0.1, 0.1, 0.1))], r, night=False, local_time=None)
    assert not tiny.passes and any("min_box_area" in x for x in tiny.reasons)
    s = assess_photo([Det("2", 0.99, BOX, suppressed=True)], Rules(), night=False, local_time=None)
    assert not s.passes and any("suppressed" in x for x in s.reasons)


def test_active_hours_wrap_midnight_in_local_time():
    r = effective_rules({"active_hours": "18:00-06:00"})
    assert r.is_active(time(23, 30)) and r.is_active(time(5, 59)) and not r.is_active(time(12))
    assert not assess_photo([person(0.99)], r, night=False, local_time=time(12)).passes
    assert assess_photo([person(0.99)], r, night=False, local_time=time(2)).passes
    assert str(TimeWindow.parse("8:05-9:00")) == "08:05-09:00"


def test_camera_override_wins_over_park_and_defaults():
    r = effective_rules({"cooldown_s": 600, "threshold.person.day": 0.7}, {"cooldown_s": 0})
    assert r.cooldown_s == 0 and r.threshold_for("2", False) == 0.7
    flat = to_flat(r)
    assert flat["cooldown_s"] == 0 and flat["categories"] == "person,vehicle"


@pytest.mark.parametrize(
    "text, message",
    [
        ("threshold.person.day=1.5", "less than or equal to 1"),
        ("categories=person,elephant", "unknown category 'elephant'"),
        ("active_hours=25:00-06:00", "hours are 00..23"),
        ("colour=red", "unknown rule key 'colour'"),
        ("cooldown_s=soon", "is not a number"),
        ("confirm_photos=2.5", "whole number"),
        ("no-equals-sign", "expected key=value"),
    ],
)
def test_invalid_assignments_name_the_key(text, message):
    with pytest.raises(RulesError, match=message):
        apply_assignments({}, parse_assignment(text))


def test_assignment_shorthand_and_removal():
    assert parse_assignment("threshold.person=0.7") == {
        "threshold.person.day": 0.7,
        "threshold.person.night": 0.7,
    }
    layer = apply_assignments({"cooldown_s": 5}, parse_assignment("cooldown_s="))
    assert layer == {}


# -- events -----------------------------------------------------------------------------------------------
def test_bursts_group_by_gap_and_bridges_merge():
    e1 = ev.EventWindow(1, T0, T0 + timedelta(seconds=10))
    e2 = ev.EventWindow(2, T0 + timedelta(seconds=100), T0 + timedelta(seconds=110))
    assert ev.assign_event(T0 + timedelta(seconds=50), [e1], 60) == ev.EventChoice("attach", 1)
    assert ev.assign_event(T0 + timedelta(seconds=300), [e1, e2], 60).kind == "new"
    merge = ev.assign_event(T0 + timedelta(seconds=55), [e1, e2], 60)
    assert merge == ev.EventChoice("merge", 1, (2,))
    e2a = ev.EventWindow(2, e2.started_at, e2.last_image_at, alert_id=7)
    assert ev.assign_event(T0 + timedelta(seconds=55), [e1, e2a], 60) == ev.EventChoice("merge", 2, (1,))


def _photo(i, ratio, conf, seconds=0, passes=None, active=True):
    a = PhotoAssessment(
        active=active,
        night=False,
        ratio=ratio,
        passes=ratio >= 1 if passes is None else passes,
        weak=ratio >= 0.75,
        seen={"person": conf} if ratio >= 0.75 else {},
    )
    return ev.PhotoRecord(i, T0 + timedelta(seconds=seconds), a)


def test_weak_detections_confirmed_by_neighbours_pass():
    r = Rules()
    two = ev.summarize([_photo(1, 0.8, 0.48), _photo(2, 0.8, 0.5, 5)], r)
    assert not two.passes
    three = ev.summarize([_photo(1, 0.8, 0.48), _photo(2, 0.85, 0.51, 5), _photo(3, 0.8, 0.48, 10)], r)
    assert three.passes and three.how == "confirmed"
    assert three.max_conf == 0.51 and three.best_image_id == 2
    assert three.mean_conf == pytest.approx((0.48 + 0.51 + 0.48) / 3)


def test_decide_open_join_in_cooldown_and_refresh():
    r = effective_rules({"cooldown_s": 300})
    s = ev.summarize([_photo(1, 1.5, 0.9, 400)], r)
    assert ev.decide_event(s, None, None, r).action == "open"
    recent = ev.AlertState(5, 1, ("person",), 0.9, T0, T0 + timedelta(seconds=200))
    assert ev.decide_event(s, None, recent, r) == ev.EventDecision(
        "join", 5, ev.decide_event(s, None, recent, r).reason
    )
    far = ev.summarize([_photo(1, 1.5, 0.9, 600)], r)
    assert ev.decide_event(far, None, recent, r).action == "open"
    assert ev.decide_event(s, recent, None, r).action == "refresh"
    weak = ev.summarize([_photo(1, 0.5, 0.3)], r)
    assert ev.decide_event(weak, None, None, r).action == "none"


def test_updates_worth_telling():
    r = Rules()
    old = ev.AlertState(1, 1, ("person",), 0.7, T0, T0)
    same = ev.Summary(categories=["person"], max_conf=0.75)
    assert ev.worth_telling(old, same, r, joined_event=False) is None
    assert "confidence rose" in ev.worth_telling(
        old, ev.Summary(categories=["person"], max_conf=0.8), r, joined_event=False
    )
    assert "vehicle" in ev.worth_telling(
        old, ev.Summary(categories=["person", "vehicle"], max_conf=0.7), r, joined_event=False
    )
    assert ev.worth_telling(old, same, r, joined_event=True)


# -- suppression ------------------------------------------------------------------------------------------
def test_iou():
    assert sup.iou(BOX, BOX) == pytest.approx(1.0)
    assert sup.iou((0, 0, 0.1, 0.1), (0.5, 0.5, 0.1, 0.1)) == 0.0
    assert sup.iou((0, 0, 0.2, 0.1), (0.1, 0, 0.2, 0.1)) == pytest.approx(1 / 3)


def animal(conf, bbox=BOX):
    return Det("1", conf, bbox)


ANIMALS = {"suppress_after": 3, "categories": "person,vehicle,animal"}


def test_static_animal_box_is_suppressed_after_n_distinct_events_not_photos():
    r = effective_rules(ANIMALS)
    boxes: list[sup.StaticBox] = []
    # ten photos of one event count once
    for i in range(10):
        obs = sup.observe(boxes, [animal(0.9)], event_id=1, at=T0, rules=r, image_id=100 + i)
        boxes = _apply(boxes, obs)
    assert len(boxes) == 1 and boxes[0].event_count == 1 and boxes[0].image_ids() == [100]
    obs = sup.observe(boxes, [animal(0.9, (0.21, 0.2, 0.3, 0.4))], event_id=2, at=T0, rules=r, image_id=200)
    boxes = _apply(boxes, obs)
    assert boxes[0].status == "watching" and not obs.newly_suppressed
    obs = sup.observe(boxes, [animal(0.9)], event_id=3, at=T0, rules=r, image_id=300)
    boxes = _apply(boxes, obs)
    assert boxes[0].status == "suppressed" and obs.newly_suppressed and not obs.newly_proposed
    assert "3 distinct events" in boxes[0].reason and boxes[0].image_ids() == [100, 200, 300]
    assert sup.is_suppressed(animal(0.99), boxes, r) is not None
    assert sup.is_suppressed(animal(0.99, (0.6, 0.1, 0.2, 0.2)), boxes, r) is None
    # a lifted box is never suppressed again
    lifted = [sup.StaticBox(**{**boxes[0].__dict__, "status": "lifted"})]
    obs = sup.observe(lifted, [animal(0.9)], event_id=9, at=T0, rules=r)
    assert obs.changed[0].status == "lifted" and sup.is_suppressed(animal(0.9), obs.changed, r) is None


@pytest.mark.parametrize("category", ["2", "3"])
def test_person_and_vehicle_boxes_are_proposed_not_suppressed(category):
    r = effective_rules({"suppress_after": 3})
    boxes: list[sup.StaticBox] = []
    for event in range(1, 4):
        obs = sup.observe(boxes, [Det(category, 0.9, BOX)], event_id=event, at=T0, rules=r, image_id=event)
        boxes = _apply(boxes, obs)
    assert boxes[0].status == "proposed" and obs.newly_proposed and not obs.newly_suppressed
    assert "an operator confirms or rejects it" in boxes[0].reason and boxes[0].image_ids() == [1, 2, 3]
    assert sup.is_suppressed(Det(category, 0.99, BOX), boxes, r) is None  # still alerts
    # a rejected proposal is never proposed again
    rejected = [sup.StaticBox(**{**boxes[0].__dict__, "status": "rejected"})]
    obs = sup.observe(rejected, [Det(category, 0.9, BOX)], event_id=9, at=T0, rules=r)
    assert obs.changed[0].status == "rejected" and not obs.newly_proposed


def test_suppress_after_zero_never_suppresses():
    r = effective_rules({"suppress_after": 0})
    boxes: list[sup.StaticBox] = []
    for event in range(20):
        boxes = _apply(boxes, sup.observe(boxes, [person(0.9)], event_id=event, at=T0, rules=r))
    assert boxes[0].event_count == 20 and boxes[0].status == "watching"


def _apply(boxes, obs):
    out = list(boxes)
    next_id = max([b.id or 0 for b in out], default=0) + 1
    for b in obs.changed:
        if b.id is None:
            out.append(sup.StaticBox(**{**b.__dict__, "id": next_id}))
            next_id += 1
        else:
            out = [b if x.id == b.id else x for x in out]
    return out
