"""Fixtures of the export tests: a seeded park (tests/exports/seed.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .seed import T0, Seeded, Seeder


@pytest.fixture
def seeder(clean_db, storage, app_settings) -> Seeder:
    return Seeder(clean_db, storage)


@pytest.fixture
def serengeti(seeder) -> Seeded:
    """cam-a (located): a night event with a person (alert, confirmed by a ranger), a day event with an animal
    plus a suppressed stump, a blank photo, a failed photo. cam-b (GPS only): an alert for a person that a
    ranger called a false positive (it was an animal). cam-c: no location at all, one photo."""
    sd = seeder
    s = sd.park("serengeti")
    sd.camera(s, "cam-a", -2.33, 34.83, brand="ridgetec", serials=["861234567890123"])
    sd.camera(s, "cam-b")
    sd.camera(s, "cam-c")
    box = (0.2, 0.3, 0.1, 0.4)

    sd.event(s, "night", "cam-a", T0, T0 + timedelta(seconds=4), 3, ["person"], alert="night")
    sd.photo(s, "p1", "cam-a", T0, dets=[("2", 0.91, box), ("1", 0.05, box)], event="night")
    sd.photo(
        s, "p2", "cam-a", T0 + timedelta(seconds=2), dets=[("2", 0.88, box), ("2", 0.6, box)], event="night"
    )
    sd.photo(s, "p3", "cam-a", T0 + timedelta(seconds=4), dets=[], event="night")
    sd.feedback(s, "night", "cam-a", "unsure", None, "asha", T0 + timedelta(hours=1))
    sd.feedback(s, "night", "cam-a", "confirmed", None, "juma", T0 + timedelta(hours=2))

    day = T0 + timedelta(hours=12)
    sd.event(s, "day", "cam-a", day, day + timedelta(seconds=2), 2, [])
    sd.photo(
        s,
        "p4",
        "cam-a",
        day,
        dets=[("1", 0.75, box), ("1", 0.95, (0.1, 0.1, 0.1, 0.1), "suppressed")],
        event="day",
    )
    sd.photo(
        s, "p5", "cam-a", day + timedelta(seconds=2), dets=[("1", 0.7, box), ("1", 0.4, box)], event="day"
    )

    sd.event(s, "empty", "cam-a", day + timedelta(hours=1), day + timedelta(hours=1), 1, [])
    sd.photo(s, "p6", "cam-a", day + timedelta(hours=1), dets=[("2", 0.03, box)], event="empty")
    sd.photo(
        s,
        "p7",
        "cam-a",
        day + timedelta(hours=2),
        status="failed",
        reason="scoring: unreadable_image: cannot identify image file",
        source="received",
    )

    b0 = T0 + timedelta(days=1)
    sd.event(s, "fp", "cam-b", b0, b0 + timedelta(seconds=2), 2, ["person"], alert="fp")
    sd.photo(s, "b1", "cam-b", b0, dets=[("2", 0.55, box)], gps=(-2.40, 34.90), event="fp")
    sd.photo(
        s,
        "b2",
        "cam-b",
        b0 + timedelta(seconds=2),
        dets=[("2", 0.5, box), ("1", 0.3, box)],
        gps=(-2.42, 34.92),
        event="fp",
    )
    sd.feedback(s, "fp", "cam-b", "false_positive", "animal", "juma", b0 + timedelta(hours=1), image="b1")

    sd.photo(s, "c1", "cam-c", T0 + timedelta(days=2), dets=[("1", 0.9, box)])
    return s
