"""Camera health decisions (pure, no I/O): which conditions a camera is in now, and which transitions that
means against what was raised before.

Conditions:
- ``silent``: nothing received for longer than the camera's ``expected_interval_s`` (default 24 h), counted
  from ``last_seen_at`` (or from when the camera was registered, if it never sent). A silent camera may
  have been found and stolen.
- ``low_battery``: the latest email reports a battery level below the threshold (``battery_pct``), or
  the camera's own low-battery flag (``battery_low``, for brands that only say low/ok).
- ``temperature``: the latest email reports a temperature outside [min, max] °C.
- ``clock_skew``: the camera's clock is far off: the photo's time (EXIF) differs from the time the email
  was received by more than the threshold.

Theft and tamper watch (``someone_at_camera``, ``view_changed``, ``neighbours_silent``): decided in
functions/domain/watch.py; the first two from each scored photo (process-image), the third by the timer.
This module clears ``someone_at_camera`` after its quiet period.

Each condition evaluates to True (in the condition), False (fine) or None (unknown: the latest email does
not report it). Unknown never raises and never clears: only a report clears a sensor condition.

Thresholds: defaults below; a park overrides them in ``parks.settings.health`` and a camera in
``cameras.overrides.health`` (same keys).

Facts (what :func:`report_of` reads, one mapping per camera, see HealthRepository.facts): the latest accepted
email's ``meta`` (filled by process-email: ``battery_pct`` number 0-100, ``battery_low`` the camera's own
flag, ``temperature_c`` number, °C) and, from the latest image with an EXIF time, ``email_received_at`` and
``taken_at`` (clock skew).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

Condition = Literal[
    "silent",
    "low_battery",
    "temperature",
    "clock_skew",
    "someone_at_camera",
    "view_changed",
    "neighbours_silent",
]
CONDITIONS: tuple[Condition, ...] = get_args(Condition)

WATCH_CONDITIONS: tuple[Condition, ...] = ("someone_at_camera", "view_changed", "neighbours_silent")


@dataclass(frozen=True)
class Thresholds:
    battery_low_pct: float = 20.0
    temperature_min_c: float = -20.0
    temperature_max_c: float = 60.0
    clock_skew_max_s: float = 2 * 3600.0
    # theft and tamper watch (functions/domain/watch.py says what each means)
    close_person_area: float = 0.25
    close_person_height: float = 0.6
    close_person_clear_photos: float = 3
    close_person_quiet_s: float = 3600.0
    view_max_distance: float = 0.4
    view_photos: float = 3
    view_refs: float = 5
    view_min_refs: float = 3
    view_clear_photos: float = 2
    view_adopt_photos: float = 12
    neighbours_min: float = 3
    neighbours_radius_m: float = 2000.0
    neighbours_window_s: float = 6 * 3600.0

    @classmethod
    def merged(cls, *overrides: dict[str, Any] | None) -> Thresholds:
        values: dict[str, Any] = {}
        for o in overrides:
            for key in cls.__dataclass_fields__:
                if (
                    isinstance(o, dict)
                    and isinstance(o.get(key), int | float)
                    and not isinstance(o.get(key), bool)
                ):
                    values[key] = float(o[key])
        return cls(**values)


@dataclass(frozen=True)
class CameraReport:
    """What is known about one camera now (read by the handler from cameras, inbound_emails, images)."""

    camera_id: int
    name: str
    expected_interval_s: int = 86400
    last_seen_at: datetime | None = None
    registered_at: datetime | None = None
    # From the latest email's meta (None: not reported).
    battery_pct: float | None = None
    battery_low: bool | None = None
    temperature_c: float | None = None
    # From the latest image with an EXIF time: email received_at - taken_at, in seconds.
    clock_skew_s: float | None = None
    # When the camera's latest photo with someone at the camera was received (someone_at_camera's quiet
    # period; functions/domain/watch.py).
    last_close_person_at: datetime | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass(frozen=True)
class Finding:
    condition: Condition
    active: bool | None
    title: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def evaluate(report: CameraReport, now: datetime) -> dict[Condition, Finding]:
    t = report.thresholds
    out: dict[Condition, Finding] = {}

    since = report.last_seen_at or report.registered_at
    if since is None:
        out["silent"] = Finding("silent", None)
    else:
        silent_s = (now - since).total_seconds()
        active = silent_s > report.expected_interval_s
        last = report.last_seen_at.isoformat() if report.last_seen_at else "never"
        out["silent"] = Finding(
            "silent",
            active,
            f"Camera {report.name} silent for {_hours(silent_s)} (expected every "
            f"{_hours(report.expected_interval_s)}; last seen {last}). It may have been stolen or damaged.",
            {
                "silent_s": round(silent_s),
                "expected_interval_s": report.expected_interval_s,
                "last_seen_at": report.last_seen_at.isoformat() if report.last_seen_at else None,
            },
        )

    if report.battery_pct is None and report.battery_low is None:
        out["low_battery"] = Finding("low_battery", None)
    else:
        low = bool(report.battery_low) or (
            report.battery_pct is not None and report.battery_pct < t.battery_low_pct
        )
        level = f"{report.battery_pct:.0f}%" if report.battery_pct is not None else "low (camera's flag)"
        out["low_battery"] = Finding(
            "low_battery",
            low,
            f"Camera {report.name}: battery {level}.",
            {
                "battery_pct": report.battery_pct,
                "battery_low": report.battery_low,
                "threshold_pct": t.battery_low_pct,
            },
        )

    if report.temperature_c is None:
        out["temperature"] = Finding("temperature", None)
    else:
        bad = not (t.temperature_min_c <= report.temperature_c <= t.temperature_max_c)
        out["temperature"] = Finding(
            "temperature",
            bad,
            f"Camera {report.name}: temperature {report.temperature_c:.0f} °C (allowed "
            f"{t.temperature_min_c:.0f}..{t.temperature_max_c:.0f} °C).",
            {
                "temperature_c": report.temperature_c,
                "min_c": t.temperature_min_c,
                "max_c": t.temperature_max_c,
            },
        )

    if report.clock_skew_s is None:
        out["clock_skew"] = Finding("clock_skew", None)
    else:
        off = abs(report.clock_skew_s) > t.clock_skew_max_s
        direction = "behind" if report.clock_skew_s > 0 else "ahead"
        out["clock_skew"] = Finding(
            "clock_skew",
            off,
            f"Camera {report.name}: clock about {_hours(abs(report.clock_skew_s))} {direction} "
            "(photo time vs email received). Alert times from this camera are wrong.",
            {"clock_skew_s": round(report.clock_skew_s), "max_s": t.clock_skew_max_s},
        )

    # someone_at_camera is raised by process-image (functions/domain/watch.py); the timer only clears it
    # after a quiet period. view_changed is decided by photos only; neighbours_silent by the timer's group
    # check (watch.neighbours_silent).
    if report.last_close_person_at is not None and (
        (now - report.last_close_person_at).total_seconds() > t.close_person_quiet_s
    ):
        out["someone_at_camera"] = Finding(
            "someone_at_camera",
            False,
            f"Camera {report.name}: no one at the camera for {t.close_person_quiet_s / 60:.0f} min.",
            {"last_close_person_at": report.last_close_person_at.isoformat()},
        )
    return out


@dataclass(frozen=True)
class Transitions:
    raise_: list[Finding]
    clear: list[Finding]


def transitions(findings: dict[Condition, Finding], raised: set[str]) -> Transitions:
    """Conditions to raise (active now, not raised yet) and to clear (raised, now known to be fine)."""
    to_raise = [f for f in findings.values() if f.active is True and f.condition not in raised]
    to_clear = [f for f in findings.values() if f.active is False and f.condition in raised]
    return Transitions(to_raise, to_clear)


def alert_details(finding: Finding) -> dict[str, Any]:
    """The details of the health alert a raised condition opens (what send-alert shows the park)."""
    return {"condition": finding.condition, "status": "raised", "summary": finding.title, **finding.details}


def cleared_title(camera_name: str, condition: str) -> str:
    return f"Camera {camera_name}: back to normal ({condition.replace('_', ' ')} cleared)."


def clear_title(camera_name: str, finding: Finding) -> str:
    """The title of a clear: the watch conditions say why they cleared (the view is back, or a new view was
    adopted; cameras report again); the others are back to normal."""
    if finding.condition in WATCH_CONDITIONS and finding.title:
        return finding.title
    return cleared_title(camera_name, finding.condition)


def cleared_details(title: str, finding: Finding, now: datetime) -> dict[str, Any]:
    """What a clear merges into the alert's details."""
    return {"status": "cleared", "summary": title, "cleared_at": now.isoformat(), "now": finding.details}


# -- reading facts --------------------------------------------------------------------------------------
META_BATTERY_PCT = "battery_pct"
META_BATTERY_LOW = "battery_low"
META_TEMPERATURE_C = "temperature_c"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "low"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "0", "ok"):
        return False
    return None


def report_of(facts: Mapping[str, Any]) -> CameraReport:
    """The CameraReport of one camera's facts (keys: id, name, expected_interval_s, last_seen_at, created_at,
    meta, park_settings, overrides, email_received_at, taken_at)."""
    meta = facts.get("meta") or {}
    park_health = (facts.get("park_settings") or {}).get("health")
    cam_health = (facts.get("overrides") or {}).get("health")
    return CameraReport(
        camera_id=facts["id"],
        name=facts["name"],
        expected_interval_s=facts["expected_interval_s"],
        last_seen_at=facts.get("last_seen_at"),
        registered_at=facts.get("created_at"),
        battery_pct=_number(meta.get(META_BATTERY_PCT)),
        battery_low=_flag(meta.get(META_BATTERY_LOW)),
        temperature_c=_number(meta.get(META_TEMPERATURE_C)),
        clock_skew_s=clock_skew_s(facts.get("email_received_at"), facts.get("taken_at")),
        last_close_person_at=facts.get("last_close_person_at"),
        thresholds=Thresholds.merged(park_health, cam_health),
    )


def clock_skew_s(received_at: datetime | None, taken_at: datetime | None) -> float | None:
    if received_at is None or taken_at is None:
        return None
    return (received_at - taken_at).total_seconds()
