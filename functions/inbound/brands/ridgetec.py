"""RidgeTec (Lookout 4G LTE and others): the photo is a link, not an attachment.

Facts (TNC animl-email-relay ``src/cameras.py``, ``src/parsers.py`` and its test email; ARCHITECTURE.md
"Camera email formats"): the sender is ``no-reply@ridgetec.com`` for every owner (``vendor_shared``); the
body is HTML only; the photo is an ``<img>`` whose ``src`` is an https link on ``portal.ridgetec.com``, with
the attributes ``data-filename``, ``data-date-time-created`` (``yyyy-mm-dd hh:mm:ss``, local time),
``data-timezone`` (an IANA zone name), ``data-imei`` (the camera's modem: its serial) and
``data-account-id``; the subject is the name the owner gave the camera.

The links are fetched later, by process-image (functions/inbound/links.py), from ``link_hosts`` only.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

from .common import (
    MAX_PHOTOS,
    BrandReading,
    PhotoRef,
    clean_id,
    domain_is,
    find,
    html_of,
    make_datetime,
    sender_domain,
    subject_of,
    valid_zone,
)

_ATTRS = ("data-filename", "data-date-time-created", "data-timezone", "data-imei", "data-account-id")


class _Images(HTMLParser):
    """Collects the <img> tags that carry RidgeTec's photo attributes (linear in the input)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag.lower() != "img" or len(self.found) >= MAX_PHOTOS:
            return
        values = {k.lower(): (v or "") for k, v in attrs[:50] if k}
        if values.get("src") and any(a in values for a in _ATTRS):
            self.found.append(values)

    handle_startendtag = handle_starttag


class RidgeTec:
    name = "ridgetec"
    vendor_shared = True
    link_hosts = ("portal.ridgetec.com",)

    def detect(self, email) -> int:
        score = 10 if domain_is(sender_domain(email), "ridgetec.com") else 0
        html = html_of(email)
        if "data-imei" in html and "data-date-time-created" in html:
            score += 5
        return score

    def read(self, email, exif) -> BrandReading:
        reading = BrandReading(self.name, self.vendor_shared, link_hosts=self.link_hosts)
        reading.camera_id = clean_id(subject_of(email)) if subject_of(email).strip() else None
        parser = _Images()
        try:
            parser.feed(html_of(email))
            parser.close()
        except Exception as exc:  # noqa: BLE001 - broken HTML: whatever was found before counts
            reading.notes.append(f"html: {type(exc).__name__}")
        for tag in parser.found:
            url = tag["src"].strip()
            tz = valid_zone(tag.get("data-timezone"))
            taken = None
            m = find(
                r"^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})",
                tag.get("data-date-time-created", ""),
            )
            if m:
                taken = make_datetime(*(int(g) for g in m.groups()), tz=tz)
            if urlsplit(url).scheme.lower() not in ("https", "http"):
                reading.notes.append(f"img src is not a web link: {url[:80]!r}")
                continue
            reading.photos.append(
                PhotoRef(
                    attachment_index=None,
                    url=url[:2000],
                    filename=clean_id(tag.get("data-filename")),
                    camera_id=None,
                    serial=clean_id(tag.get("data-imei")),
                    taken_at=taken,
                    tz=tz,
                )
            )
            if tag.get("data-account-id"):
                note = f"account {tag['data-account-id'][:32]}"
                if note not in reading.notes:
                    reading.notes.append(note)
        if reading.photos:
            first = reading.photos[0]
            reading.serial, reading.taken_at, reading.tz = first.serial, first.taken_at, first.tz
        for att in email.attachments[:MAX_PHOTOS]:  # an attached photo too, should a firmware send one
            reading.photos.append(PhotoRef(att.index, None, att.filename, None, None, None, None))
        return reading


BRAND = RidgeTec()
