"""Battery and temperature read from camera emails (the keys camera health reads): the one status parser,
functions/inbound/brands/common.py parse_status."""

from __future__ import annotations

import pytest

from functions.inbound.brands import parse_status as camera_status


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        ("CAM07 2026-11-21 03:12 Battery: 85% Temp: 21C", "", {"battery_pct": 85, "temperature_c": 21.0}),
        ("Spypoint photo", "Batt 15%\nTemperature: -2 °C", {"battery_pct": 15, "temperature_c": -2.0}),
        ("Bushnell", "Temp 88F", {"temperature_c": 31.1}),
        ("LOW BATTERY - KN-07", "", {"battery_low": True}),
        ("Battery level: 7 %", "battery low", {"battery_pct": 7, "battery_low": True}),
        ("Battery: 250%", "Temp: 400C", {}),  # impossible values are not believed
        ("Plain photo from KN-07", "No status here. Template 5C", {}),
    ],
)
def test_camera_status(subject, text, expected):
    assert camera_status(subject, text) == expected


def test_status_reported_in_an_email_is_recorded_for_camera_health(registry, webhook_host, db):
    from tests.inbound.conftest import email_rows, payload, post

    r = post(webhook_host, payload(subject="CAM01 motion Battery: 9% Temp: 35C"))
    assert r.status_code == 200
    meta = email_rows(db)[-1]["meta"]
    assert meta["battery_pct"] == 9 and meta["temperature_c"] == 35.0
