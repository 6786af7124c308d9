"""Rangers' feedback as numbers and as suppression candidates (functions/domain/feedback.py and
functions/domain/suppression.py apply_feedback): pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.domain import feedback as fb
from functions.domain import suppression as sup
from functions.domain.rules import Det, effective_rules

T0 = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
BOX = (0.4, 0.5, 0.1, 0.3)


def row(i, alert, verdict, user="asha", image=None, minutes=0):
    return fb.FeedbackRow(i, alert, image, verdict, user, T0 + timedelta(minutes=minutes))


# -- verdicts ---------------------------------------------------------------------------------------------
def test_check_feedback_normalizes_and_refuses_what_does_not_fit():
    assert fb.check_feedback("False-Positive", "Staff vehicle", "  ") == (
        "false_positive",
        "staff_vehicle",
        None,
    )
    assert fb.check_feedback("confirmed", "person", "seen at dawn") == ("confirmed", "person", "seen at dawn")
    for bad in [("maybe", None), ("false_positive", "person"), ("confirmed", "stump"), ("unsure", "stump")]:
        with pytest.raises(fb.FeedbackError):
            fb.check_feedback(*bad, None)


def test_the_latest_verdict_of_each_person_counts_and_a_whole_alert_verdict_wins_over_photos():
    rows = [row(1, 7, "false_positive"), row(2, 7, "confirmed", minutes=5)]  # asha changed her mind
    assert [r.verdict for r in fb.latest_verdicts(rows)] == ["confirmed"]
    assert fb.alert_verdict(rows) == "confirmed"
    photos = [row(3, 8, "false_positive", image=1), row(4, 8, "false_positive", "juma", image=2)]
    assert fb.alert_verdict(photos) == "false_positive"
    assert fb.alert_verdict(photos + [row(5, 8, "confirmed", "juma", image=2, minutes=1)]) == "confirmed"
    assert fb.alert_verdict(photos + [row(6, 8, "confirmed", minutes=9)]) == "confirmed"  # whole alert
    assert fb.alert_verdict([row(7, 9, "unsure")]) is None
    assert fb.photo_verdict(photos, 1) == "false_positive" and fb.photo_verdict(photos, 3) is None


def test_camera_precision_is_confirmed_over_judged_alerts():
    by_alert = {
        1: [row(1, 1, "confirmed")],
        2: [row(2, 2, "false_positive")],
        3: [row(3, 3, "false_positive")],
        4: [row(4, 4, "confirmed")],
        5: [row(5, 5, "unsure")],
    }
    p = fb.camera_precision(by_alert)
    assert (p.confirmed, p.false_positive, p.unsure) == (2, 2, 1) and p.precision == pytest.approx(0.5)
    assert fb.camera_precision({}).precision is None


# -- threshold suggestion ---------------------------------------------------------------------------------
def samples(fps, oks, night=True):
    return [fb.Sample("false_positive", "person", night, c) for c in fps] + [
        fb.Sample("confirmed", "person", night, c) for c in oks
    ]


def test_suggests_the_smallest_threshold_removing_most_false_positives_and_keeping_every_confirmed():
    [s] = fb.suggest_thresholds(
        samples([0.6, 0.62, 0.65, 0.7, 0.93], [0.95, 0.8]), {"threshold.person.night": 0.5}
    )
    assert s.key == "threshold.person.night" and s.suggested == pytest.approx(0.71)
    assert s.removed_false_positives == 4 and "kept all 2 confirmed" in s.reason


def test_no_suggestion_when_it_would_lose_a_confirmed_sighting_or_when_evidence_is_thin():
    [s] = fb.suggest_thresholds(samples([0.6, 0.62, 0.65, 0.7], [0.68]), {"threshold.person.night": 0.5})
    assert s.suggested is None and "1 of 1 confirmed" in s.reason
    [s] = fb.suggest_thresholds(samples([0.6, 0.62], [0.9]), {"threshold.person.night": 0.5})
    assert s.suggested is None and "at least 3" in s.reason
    [s] = fb.suggest_thresholds(samples([0.6, 0.62, 0.65], []), {"threshold.person.night": 0.8})
    assert s.suggested is None and "not above the current 0.80" in s.reason  # never suggested down


def test_samples_take_each_judged_alert_best_confidence_per_category_and_time_of_day():
    photos = [
        (1, True, {"person": 0.7}),
        (2, True, {"person": 0.9, "vehicle": 0.6}),
        (3, False, {"person": 0.5}),
    ]
    got = fb.samples_of(photos, "false_positive")
    assert {(s.category, s.night, s.conf) for s in got} == {
        ("person", True, 0.9),
        ("vehicle", True, 0.6),
        ("person", False, 0.5),
    }
    assert fb.samples_of(photos, "unsure") == [] and fb.samples_of(photos, None) == []


# -- feedback feeds suppression ---------------------------------------------------------------------------
def judged(event, image, det, night=False):
    return sup.JudgedDetection(event, image, T0 + timedelta(hours=event), night, det)


def _save(boxes, obs):
    out, next_id = list(boxes), max([b.id or 0 for b in boxes], default=0) + 1
    for b in obs.changed:
        if b.id is None:
            out.append(sup.StaticBox(**{**b.__dict__, "id": next_id}))
            next_id += 1
        else:
            out = [b if x.id == b.id else x for x in out]
    return out


def test_false_positives_at_one_place_propose_a_person_box_and_nothing_is_silenced():
    r = effective_rules({"suppress_after": 5})
    boxes = _save(
        [], sup.apply_feedback([], [judged(1, 10, Det("2", 0.9, BOX))], verdict="false_positive", rules=r)
    )
    assert boxes[0].status == "watching" and boxes[0].fp_count == 1
    # the same event judged again (another photo of it, or again) counts once
    again = sup.apply_feedback(boxes, [judged(1, 11, Det("2", 0.9, BOX))], verdict="false_positive", rules=r)
    assert again.changed[0].fp_count == 1 and again.changed[0].status == "watching"
    obs = sup.apply_feedback(boxes, [judged(2, 20, Det("2", 0.88, BOX))], verdict="false_positive", rules=r)
    boxes = _save(boxes, obs)
    assert boxes[0].status == "proposed" and obs.newly_proposed and not obs.newly_suppressed
    assert "marked a false positive by rangers in 2 events" in boxes[0].reason
    assert boxes[0].image_ids() == [10, 20]
    assert sup.is_suppressed(Det("2", 0.99, BOX), boxes, r) is None


def test_false_positives_on_an_animal_box_suppress_it_unless_a_ranger_confirmed_a_sighting_there():
    r = effective_rules({"categories": "person,animal"})
    boxes = []
    for event in (1, 2):
        obs = sup.apply_feedback(
            boxes, [judged(event, event, Det("1", 0.9, BOX))], verdict="false_positive", rules=r
        )
        boxes = _save(boxes, obs)
    assert boxes[0].status == "suppressed" and sup.is_suppressed(Det("1", 0.95, BOX), boxes, r)
    # elsewhere: a confirmed real animal at the place turns the same evidence into a proposal
    boxes = _save(
        [], sup.apply_feedback([], [judged(1, 1, Det("1", 0.9, BOX))], verdict="false_positive", rules=r)
    )
    boxes = _save(
        boxes, sup.apply_feedback(boxes, [judged(2, 2, Det("1", 0.9, BOX))], verdict="confirmed", rules=r)
    )
    obs = sup.apply_feedback(boxes, [judged(3, 3, Det("1", 0.9, BOX))], verdict="false_positive", rules=r)
    assert obs.changed[0].status == "proposed" and obs.changed[0].confirmed_count == 1


def test_a_changed_mind_replaces_the_verdict_and_unsure_withdraws_it():
    r = effective_rules({})
    boxes = _save(
        [], sup.apply_feedback([], [judged(1, 1, Det("2", 0.9, BOX))], verdict="false_positive", rules=r)
    )
    boxes = _save(
        boxes, sup.apply_feedback(boxes, [judged(1, 1, Det("2", 0.9, BOX))], verdict="confirmed", rules=r)
    )
    assert (boxes[0].fp_count, boxes[0].confirmed_count) == (0, 1)
    boxes = _save(
        boxes, sup.apply_feedback(boxes, [judged(1, 1, Det("2", 0.9, BOX))], verdict="unsure", rules=r)
    )
    assert (boxes[0].fp_count, boxes[0].confirmed_count) == (0, 0)
    # a detection too weak to ever alert is no candidate: feedback on it changes no box
    weak = sup.apply_feedback(boxes, [judged(2, 2, Det("2", 0.05, BOX))], verdict="false_positive", rules=r)
    assert weak.changed == []
