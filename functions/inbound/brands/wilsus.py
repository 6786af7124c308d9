"""Wilsus cellular cameras, sending from the owner's own mail account (so the sender is the camera's).

Facts (ratsakatika/camera-traps ``scripts/alert_system_utils.py``; ARCHITECTURE.md "Camera email formats"):
the body writes ``Camera ID: X`` or ``CamID: X``, ``Date:dd/mm/yyyy  hh:mm:ss`` (or
``Date & Time:(dd/mm/yyyy  hh:mm:ss)``), ``Temp:19 Celsius Degree``, ``Battery:100%``, ``SD:15115M/15189M``;
photos attached.
"""

from __future__ import annotations

from .common import AttachedPhotosBrand, find, text_of


class Wilsus(AttachedPhotosBrand):
    name = "wilsus"
    vendor_shared = False
    markers = (r"\bWilsus\b",)

    _ID = r"\b(?:Camera ID|CamID)[ \t]{0,3}:[ \t]{0,3}([A-Za-z0-9][A-Za-z0-9_.\-]{0,62})"

    def detect(self, email) -> int:
        score = super().detect(email)
        body = text_of(email)
        if find(self._ID, body, email) and find(r"\bSD:\d{1,7}M/\d{1,7}M|\bCelsius Degree\b", body, email):
            score += 4
        return score

    def camera_id(self, email):
        m = find(self._ID, text_of(email), email)
        return m.group(1) if m else None


BRAND = Wilsus()
