"""What each event was (functions/exports/observations.py): the machine's reading and the rangers' verdicts.
Pure: no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions.exports.observations import classify_event, deciding_feedback, machine_types

T = datetime(2026, 3, 1, tzinfo=UTC)


def photo(pid: int, *dets) -> dict:
    return {
        "id": pid,
        "detections": [{"category": c, "conf": p, **(extra[0] if extra else {})} for c, p, *extra in dets],
    }


def verdict(fid, verdict, user, minutes, what=None, image_id=None, alert_id=7) -> dict:
    return {
        "id": fid,
        "alert_id": alert_id,
        "image_id": image_id,
        "verdict": verdict,
        "what": what,
        "user_name": user,
        "created_at": T + timedelta(minutes=minutes),
    }


def types(obs) -> list[tuple]:
    return [(o.type, o.method, o.classified_by) for o in obs]


def test_the_machine_counts_boxes_at_the_threshold_and_ignores_suppressed_ones():
    photos = [
        photo(1, ("2", 0.5), ("2", 0.2), ("1", 0.19)),
        photo(2, ("3", 0.9, {"suppressed": True}), ("2", 0.3)),
    ]
    assert machine_types(photos, 0.2) == {"human": (0.5, 2)}
    assert machine_types(photos, 0.1) == {"human": (0.5, 2), "animal": (0.19, 1)}
    obs = classify_event(photos, alert_id=None, detector="md_v5a.0.0.pt")
    assert types(obs) == [("human", "machine", "md_v5a.0.0.pt")]
    assert obs[0].probability == 0.5 and obs[0].count == 2
    assert types(classify_event([photo(3, ("1", 0.1))], alert_id=None)) == [("blank", "machine", None)]


def test_the_latest_verdict_of_each_person_counts_and_unsure_decides_nothing():
    fb = [verdict(1, "confirmed", "asha", 1), verdict(2, "unsure", "asha", 5)]
    assert deciding_feedback(fb, 7, {1}) is None  # asha took her confirmation back
    fb.append(verdict(3, "false_positive", "juma", 3, what="stump"))
    assert deciding_feedback(fb, 7, {1})["id"] == 3
    # feedback on a photo of another event, or on another alert, does not classify this event
    other = [verdict(4, "confirmed", "juma", 9, image_id=99), verdict(5, "confirmed", "juma", 9, alert_id=8)]
    assert deciding_feedback(fb + other, 7, {1})["id"] == 3
    assert deciding_feedback(fb, None, {1}) is None


def test_rangers_confirm_or_correct_the_machine():
    photos = [photo(1, ("2", 0.8), ("1", 0.6))]
    confirmed = classify_event(photos, alert_id=7, feedback=[verdict(1, "confirmed", "juma", 1)])
    assert types(confirmed) == [("human", "human", "juma"), ("animal", "human", "juma")]
    assert confirmed[0].classified_at == T + timedelta(minutes=1) and confirmed[0].probability is None
    vehicle = classify_event(
        photos, alert_id=7, feedback=[verdict(1, "confirmed", "juma", 1, what="vehicle")]
    )
    assert types(vehicle) == [("vehicle", "human", "juma")]
    stump = classify_event(
        photos,
        alert_id=7,
        alerted=["person"],
        feedback=[verdict(1, "false_positive", "juma", 1, what="stump")],
    )
    assert types(stump) == [("blank", "human", "juma")]
    # a false positive without saying what: what alerted was wrong, the rest of the machine's reading stays
    fp = classify_event(
        photos, alert_id=7, alerted=["person"], feedback=[verdict(1, "false_positive", "j", 1)]
    )
    assert types(fp) == [("animal", "human", "j")]
    only_person = [photo(1, ("2", 0.8))]
    fp = classify_event(
        only_person, alert_id=7, alerted=["person"], feedback=[verdict(1, "false_positive", "j", 1)]
    )
    assert types(fp) == [("unknown", "human", "j")]
    staff = classify_event(
        only_person,
        alert_id=7,
        alerted=["person"],
        feedback=[verdict(1, "false_positive", "j", 1, what="staff_vehicle")],
    )
    assert types(staff) == [("vehicle", "human", "j")]
