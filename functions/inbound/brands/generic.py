"""The fallback for any camera no brand module recognises: the camera names itself in the subject or body.

Formats (the ones TrapAlert matched before brands were plugins, identify.py's built-in patterns): body lines
"Camera Name: X" / "Camera ID: X" / "Cam: X"; a subject "[X]"; "CAM01"-like ids anywhere. A serial from
"IMEI: <15 digits>" / "Serial: X" / "S/N: X" in the body, or EXIF BodySerialNumber per photo. The sender is
taken as the camera's own (not vendor-shared): it still has to be registered (identify.py).
"""

from __future__ import annotations

from .common import _ID, AttachedPhotosBrand, find, subject_of, text_of


class Generic(AttachedPhotosBrand):
    name = "generic"
    vendor_shared = False

    def detect(self, email) -> int:
        return 1  # always possible, never preferred

    def camera_id(self, email):
        body, subject = text_of(email), subject_of(email)
        for source, text in (
            (
                r"(?m)^[ \t]{0,8}Cam(?:era)?[ \t]{0,3}(?:Name|ID)?[ \t]{0,3}[:=][ \t]{0,3}(?P<camera>"
                + _ID
                + ")",
                body,
            ),
            (r"\[[ \t]{0,3}(?P<camera>" + _ID + r")[ \t]{0,3}\]", subject),
            (r"(?<![A-Za-z0-9])(?P<camera>CAM[-_ ]?\d{1,4})(?![0-9])", subject),
            (r"(?<![A-Za-z0-9])(?P<camera>CAM[-_ ]?\d{1,4})(?![0-9])", body),
        ):
            m = find(source, text, email)
            if m:
                return m.group("camera")
        return None


BRAND = Generic()
