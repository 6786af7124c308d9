"""Cuddeback CuddeLink: a network of cameras (a "home" camera relaying its satellites) sends through the
vendor's cloud.

Facts (TNC animl-email-relay ``src/cameras.py`` and its test email; ARCHITECTURE.md "Camera email formats"):
- one vendor sender for every owner: ``...@images.cuddelink.com`` (so the sender names no camera:
  ``vendor_shared``);
- the subject is ``<camera name> - <m/d/yyyy> - <h:mm AM|PM>``: the network's (home) camera and the time;
- photos are attached; each photo's own camera is in its EXIF ``UserComment``, comma-separated ``key=value``
  pairs, ``ID=<camera id>``; one email can carry photos of several cameras of the network, so the camera is
  decided per photo. ``MA=`` (a 12-hex-digit hardware address in the sample) is read as the camera's serial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import (
    AttachedPhotosBrand,
    BrandReading,
    PhotoRef,
    clean_id,
    exif_time,
    find,
    key_values,
    make_datetime,
    subject_of,
)


class CuddeLink(AttachedPhotosBrand):
    name = "cuddelink"
    vendor_shared = True
    sender_domains = ("cuddelink.com",)
    markers = (r"\bCuddeLink\b",)

    _SUBJECT = (
        r"^\s*(?P<camera>[^\r\n]{1,64}?)\s+-\s+(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})"
        r"(?:\s+-\s+(?P<h>\d{1,2}):(?P<min>\d{2})\s*(?P<ap>[AP]M)?)?"
    )

    def _subject(self, email):
        return find(self._SUBJECT, subject_of(email), email)

    def camera_id(self, email):
        m = self._subject(email)
        return m.group("camera") if m else None

    def taken_at(self, email):
        m = self._subject(email)
        if not m:
            return None, None
        hour, minute = int(m.group("h") or 0), int(m.group("min") or 0)
        if m.group("ap"):
            hour = hour % 12 + (12 if m.group("ap").upper() == "PM" else 0)
        return make_datetime(int(m.group("y")), int(m.group("m")), int(m.group("d")), hour, minute), None

    def photo(self, email, index: int, filename, tags: Mapping[str, Any], reading: BrandReading) -> PhotoRef:
        pairs = key_values(tags.get("UserComment"))
        return PhotoRef(
            attachment_index=index,
            url=None,
            filename=filename,
            camera_id=clean_id(pairs.get("ID")),
            serial=clean_id(pairs.get("MA")) or clean_id(tags.get("BodySerialNumber")),
            taken_at=exif_time(tags),
            tz=None,
        )


BRAND = CuddeLink()
