"""UOVision cellular cameras, sending from the owner's own mail account (so the sender is the camera's).

Facts (ratsakatika/camera-traps ``scripts/alert_system_utils.py``; ARCHITECTURE.md "Camera email formats"):
the camera id is after the last ``_`` of the subject; the body writes ``Date:dd.mm.yyyy`` or
``Date:dd/mm/yyyy``, ``Time:hh:mm:ss``, ``Temperature:21℃``, ``Battery:100%`` and
``SD card free space: 14.7GB of 14.8GB``; photos attached.
"""

from __future__ import annotations

from .common import AttachedPhotosBrand, find, subject_of, text_of


class UOVision(AttachedPhotosBrand):
    name = "uovision"
    vendor_shared = False
    markers = (r"\bUOVision\b",)

    def detect(self, email) -> int:
        score = super().detect(email)
        body = text_of(email)
        # the status block these firmwares write, and an id after an underscore in the subject
        if "_" in subject_of(email) and find(
            r"\bTemperature:-?\d{1,3}\s?℃|\bSD card free space:", body, email
        ):
            score += 3
        return score

    def camera_id(self, email):
        subject = subject_of(email).strip()
        if "_" not in subject:
            return None
        return subject.rsplit("_", 1)[1].strip() or None


BRAND = UOVision()
