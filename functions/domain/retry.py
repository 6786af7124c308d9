"""When a failed message is tried again, and when retrying stops. Pure: no I/O.

Azure Functions has no retry policy for storage-queue triggers: a failed message reappears after the
queue's visibilityTimeout and is poisoned after maxDequeueCount, about half a minute in all, far shorter
than a channel outage, a PostgreSQL failover (1-2 minutes) or a throttle. So a transient failure re-enqueues
the message with a growing delay (the schedule; its last step repeats), never shorter than the
``Retry-After`` the remote asked for (capped), until the horizon counted from the first attempt; after the
horizon, or at once for a permanent error, the message goes to the poison queue for ops.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal


class PermanentError(Exception):
    """A failure that retrying cannot fix: the message goes to the poison queue at once."""


@dataclass(frozen=True)
class RetryDecision:
    action: Literal["retry", "poison"]
    delay_s: float = 0.0
    reason: str = ""


def delay_for(
    failures: int,
    schedule: tuple[float, ...],
    retry_after_s: float | None = None,
    retry_after_max_s: float = 3600.0,
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> float:
    """The wait before attempt ``failures + 1``: the schedule's step (the last repeats) with +-``jitter``
    (so that a burst of failed messages does not return at one instant), never shorter than the remote's
    ``Retry-After`` (capped at ``retry_after_max_s``)."""
    step = schedule[min(max(failures, 1), len(schedule)) - 1]
    r = (rng or random).uniform(-jitter, jitter) if jitter else 0.0
    delay = step * (1.0 + r)
    if retry_after_s is not None and retry_after_s > 0:
        delay = max(delay, min(float(retry_after_s), retry_after_max_s))
    return round(max(delay, 1.0), 1)


def decide_retry(
    *,
    failures: int,
    first_attempt_at: datetime,
    now: datetime,
    horizon_s: float,
    schedule: tuple[float, ...],
    permanent: bool = False,
    retry_after_s: float | None = None,
    retry_after_max_s: float = 3600.0,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Retry later (with the delay) or poison now (permanent, or the next attempt would start after the
    horizon)."""
    if permanent:
        return RetryDecision("poison", reason="permanent error")
    delay = delay_for(failures, schedule, retry_after_s, retry_after_max_s, rng=rng)
    elapsed = (now - first_attempt_at).total_seconds()
    if elapsed + delay > horizon_s:
        return RetryDecision(
            "poison",
            reason=f"retried for {timedelta(seconds=int(elapsed))} ({failures} attempts): past the "
            f"horizon of {timedelta(seconds=int(horizon_s))}",
        )
    return RetryDecision("retry", delay, f"attempt {failures + 1} in {delay:.0f} s")
