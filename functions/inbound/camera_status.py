"""What a camera says about itself in its email: battery and temperature.

Many camera traps (Bushnell, Spypoint, Browning, Reconyx cellular models, generic 4G traps) print a status
line in the subject or body, e.g. "Battery: 85%", "Batt 15%", "Temp: 31C", "Temperature: -2 °C",
"Temp 88F", or "Low battery". Whatever is found goes into inbound_emails.meta under the keys the camera
health check reads: battery_pct (0-100), battery_low (bool), temperature_c (°C). A value not reported is
left out, so health conditions the camera does not report are neither raised nor cleared.
"""

from __future__ import annotations

import re

_BATTERY = re.compile(r"\bbat(?:t|tery)?\.?\s*(?:level)?\s*[:=]?\s*(\d{1,3})\s*%", re.IGNORECASE)
_TEMPERATURE = re.compile(r"\btemp(?:erature)?\.?\s*[:=]?\s*(-?\d{1,3}(?:[.,]\d)?)\s*°?\s*([CF])\b",
                          re.IGNORECASE)
_LOW_BATTERY = re.compile(r"\b(?:low\s+batt(?:ery)?|batt(?:ery)?\s+(?:low|empty))\b", re.IGNORECASE)


def camera_status(subject: str, text: str) -> dict[str, float | bool]:
    """The battery and temperature a camera reports in ``subject`` and ``text`` (first match wins)."""
    found: dict[str, float | bool] = {}
    haystack = f"{subject}\n{text[:20_000]}"
    if m := _BATTERY.search(haystack):
        pct = int(m.group(1))
        if 0 <= pct <= 100:
            found["battery_pct"] = pct
    if _LOW_BATTERY.search(haystack):
        found["battery_low"] = True
    if m := _TEMPERATURE.search(haystack):
        value = float(m.group(1).replace(",", "."))
        celsius = (value - 32) * 5 / 9 if m.group(2).upper() == "F" else value
        if -60 <= celsius <= 90:
            found["temperature_c"] = round(celsius, 1)
    return found
