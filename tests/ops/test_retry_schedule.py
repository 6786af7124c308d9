"""The retry schedule and horizon (functions/domain/retry.py): pure, no services."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from functions.domain.retry import decide_retry, delay_for

SCHEDULE = (5.0, 15.0, 60.0, 300.0, 900.0, 1800.0)
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def test_the_delay_grows_along_the_schedule_and_its_last_step_repeats():
    steps = [delay_for(n, SCHEDULE, jitter=0) for n in range(1, 10)]
    assert steps == [5, 15, 60, 300, 900, 1800, 1800, 1800, 1800]


def test_jitter_stays_within_ten_percent_and_spreads_a_burst():
    rng = random.Random(1)
    delays = [delay_for(3, SCHEDULE, rng=rng) for _ in range(200)]
    assert all(54 <= d <= 66 for d in delays) and len(set(delays)) > 20


def test_retry_after_is_honoured_but_capped():
    assert delay_for(1, SCHEDULE, retry_after_s=90, jitter=0) == 90
    assert delay_for(4, SCHEDULE, retry_after_s=90, jitter=0) == 300  # the schedule is longer
    assert delay_for(1, SCHEDULE, retry_after_s=10**6, retry_after_max_s=3600, jitter=0) == 3600


def test_outages_of_minutes_are_retried_and_hours_are_poisoned():
    day = 24 * 3600
    early = decide_retry(
        failures=3,
        first_attempt_at=T0,
        now=T0 + timedelta(minutes=2),
        horizon_s=day,
        schedule=SCHEDULE,
        rng=random.Random(0),
    )
    assert early.action == "retry" and 54 <= early.delay_s <= 66
    late = decide_retry(
        failures=40,
        first_attempt_at=T0,
        now=T0 + timedelta(hours=23, minutes=50),
        horizon_s=day,
        schedule=SCHEDULE,
        rng=random.Random(0),
    )
    assert late.action == "poison" and "past the horizon" in late.reason


def test_a_permanent_error_is_poisoned_at_once():
    d = decide_retry(
        failures=1, first_attempt_at=T0, now=T0, horizon_s=3600, schedule=SCHEDULE, permanent=True
    )
    assert d.action == "poison" and d.reason == "permanent error"


def test_how_long_the_default_schedule_waits_out_real_outages():
    """Attempts within a 2-minute failover, and the total wait before the 24 h horizon."""
    waited, n, times = 0.0, 0, []
    while True:
        n += 1
        d = decide_retry(
            failures=n,
            first_attempt_at=T0,
            now=T0 + timedelta(seconds=waited),
            horizon_s=24 * 3600,
            schedule=SCHEDULE,
            rng=random.Random(n),
        )
        if d.action == "poison":
            break
        waited += d.delay_s
        times.append(waited)
    assert sum(1 for t in times if t <= 120) == 3  # 5 s, 20 s, 80 s: a failover is covered
    assert 24 * 3600 - 1800 * 1.1 <= waited <= 24 * 3600 and 45 <= n <= 55
