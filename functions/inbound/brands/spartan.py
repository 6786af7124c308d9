"""Spartan (HCO wireless, GoLive and others): sent through HCO's cloud.

Facts (TNC animl-email-relay ``src/cameras.py`` and its test email; ARCHITECTURE.md "Camera email formats"):
the sender is ``...@hcowireless.com`` for every owner (``vendor_shared``); its display name is the camera
id; the subject is ``<yyyy-mm-dd hh:mm:ss> - <camera id>`` (the camera's local time); photos attached.
"""

from __future__ import annotations

from .common import AttachedPhotosBrand, display_name, find, make_datetime, subject_of


class Spartan(AttachedPhotosBrand):
    name = "spartan"
    vendor_shared = True
    sender_domains = ("hcowireless.com",)
    markers = ()

    def camera_id(self, email):
        m = find(r"\s-\s*([A-Za-z0-9][A-Za-z0-9_.\-]{0,62})\s*$", subject_of(email), email)
        return m.group(1) if m else display_name(email)

    def taken_at(self, email):
        m = find(r"^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})\b", subject_of(email), email)
        if not m:
            return None, None
        return make_datetime(*(int(g) for g in m.groups())), None


BRAND = Spartan()
