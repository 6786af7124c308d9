"""Helpers of the scoring tests."""

from __future__ import annotations

import time

from scoring.settings import ScoringSettings


def make_settings(**values) -> ScoringSettings:
    """Settings from explicit values only (the test process's SCORING_* variables are ignored)."""
    return ScoringSettings(_env_prefix="SCORING_IGNORED_IN_TESTS_", **values)


def wait_ready(client, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("service not ready")
