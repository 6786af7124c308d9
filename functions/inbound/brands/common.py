"""What every brand module shares: the reading it returns, the brand interface, bounded texts, EXIF, and the
status lines (battery, SD card, temperature, date) that camera firmwares write.

Every pattern here runs through ``functions.inbound.patterns.safe_compile`` (the `regex` module with a
timeout) on texts already cut to ``MAX_TEXT_CHARS``: no input can make a brand slow. Patterns are written
to be linear anyway (no nested quantifiers, bounded repetitions).

Times: ``taken_at`` is time-zone aware when the email says the zone (RidgeTec's ``data-timezone``);
otherwise it is the camera's *naive local time* and ``tz`` is None: the camera's (or its park's) time zone
applies, as for EXIF times without an offset (functions/inbound/images.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex

from ..parse_sendgrid import InboundEmail
from ..patterns import SafePattern, safe_compile

MAX_TEXT_CHARS = 20_000  # of a body (text or HTML) a brand looks at; the subject is cut by the parser
MAX_SUBJECT_CHARS = 1_000
MAX_PHOTOS = 50  # photo references one email may give (attachments or links)

ExifReader = Callable[[int], Mapping[str, Any]]


@dataclass(frozen=True)
class PhotoRef:
    """One photo of the email: an attachment (``attachment_index``, 1-based as in InboundEmail) or a link
    (``url``), with the camera it names (``camera_id``/``serial``, None = the email's) and its time."""

    attachment_index: int | None
    url: str | None
    filename: str | None
    camera_id: str | None
    serial: str | None
    taken_at: datetime | None
    tz: str | None


@dataclass
class BrandReading:
    """What a brand module read in one email. ``vendor_shared``: the sender address is the vendor's, shared by
    every owner of the brand, so it names no camera by itself. ``link_hosts``: the https hosts photos given
    as links may be fetched from."""

    brand: str
    vendor_shared: bool = False
    camera_id: str | None = None
    serial: str | None = None
    taken_at: datetime | None = None
    tz: str | None = None
    battery_pct: float | None = None
    battery_low: bool | None = None
    sd_free_mb: float | None = None
    sd_total_mb: float | None = None
    temperature_c: float | None = None
    photos: list[PhotoRef] = field(default_factory=list)
    link_hosts: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def status(self) -> dict[str, float | bool]:
        """The health facts reported (the keys of inbound_emails.meta the camera health check reads);
        a fact not reported is left out."""
        out: dict[str, float | bool] = {}
        for key in ("battery_pct", "battery_low", "sd_free_mb", "sd_total_mb", "temperature_c"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@runtime_checkable
class Brand(Protocol):
    name: str
    vendor_shared: bool
    link_hosts: tuple[str, ...]

    def detect(self, email: InboundEmail) -> int:
        """0: not this brand; higher: stronger evidence (10 the sender's domain, 5 a subject/body marker)."""
        ...

    def read(self, email: InboundEmail, exif: ExifReader) -> BrandReading: ...


# ------------------------------------------------------------------------------------------ texts
def subject_of(email: InboundEmail) -> str:
    return (email.subject or "")[:MAX_SUBJECT_CHARS]


def text_of(email: InboundEmail) -> str:
    return (email.text or "")[:MAX_TEXT_CHARS]


def html_of(email: InboundEmail) -> str:
    """The HTML body (SendGrid's ``html`` field / the text/html part), cut; "" when the parser kept none."""
    return (getattr(email, "html", None) or "")[:MAX_TEXT_CHARS]


def sender_domain(email: InboundEmail) -> str:
    """The domain of the From address, else of the envelope sender (lower case, "" when none)."""
    for addr in (email.sender_address, email.envelope_from):
        if addr and "@" in addr:
            return addr.rsplit("@", 1)[1].strip(" >").lower()
    return ""


def domain_is(domain: str, *suffixes: str) -> bool:
    """``domain`` is one of ``suffixes`` or a subdomain of one (``images.cuddelink.com``)."""
    return any(domain == s or domain.endswith("." + s) for s in suffixes)


def display_name(email: InboundEmail) -> str | None:
    """The display name of the From header (``GL-VLTEb-211679 <noreply1@hcowireless.com>`` -> the id)."""
    from email.utils import parseaddr

    name, _ = parseaddr((email.sender or "")[:500])
    name = name.strip().strip('"').strip()
    return name or None


@lru_cache(maxsize=512)
def pattern(source: str, flags: int = regex.IGNORECASE) -> SafePattern:
    """A brand pattern, compiled once, run with a timeout (functions/inbound/patterns.py)."""
    return safe_compile(source, flags, name=f"brand:{source[:40]}")


def find(source: str, text: str, email: InboundEmail | None = None, flags: int = regex.IGNORECASE):
    """The first match of ``source`` in ``text`` (None also on timeout; the defect goes on the email)."""
    return pattern(source, flags).search(text, defects=email.defects if email is not None else None)


_ID = r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,62}[A-Za-z0-9])?"


SERIAL_LINE = r"\b(?:IMEI|Serial(?:[ \t]{0,2}(?:No|Number))?|S/N)[ \t]{0,3}[:=#][ \t]{0,3}(?P<s>" + _ID + ")"


def clean_id(value: str | None) -> str | None:
    """A camera id or serial as written, trimmed; None when empty or not id-like."""
    if value is None:
        return None
    value = value.strip().strip("\"'[]()<>").strip()
    if not value or len(value) > 64 or any(c in value for c in "\r\n\t\x00"):
        return None
    return value


# ------------------------------------------------------------------------------------ status lines
def parse_battery(text: str, email: InboundEmail | None = None) -> tuple[float | None, bool | None]:
    """(percent, low) from "Battery:100%", "Batt 15%", "Battery level: 85 %", "BAT: 60%"; low from
    "Low battery" / "Battery low" / "Battery: Low"."""
    pct: float | None = None
    m = find(
        r"\bbat(?:t|tery)?\.?[ \t]{0,3}(?:level)?[ \t]{0,3}[:=]?[ \t]{0,3}(\d{1,3})[ \t]{0,2}%", text, email
    )
    if m:
        value = int(m.group(1))
        pct = float(value) if 0 <= value <= 100 else None
    low = None
    if find(
        r"\b(?:low[ \t]{1,3}batt(?:ery)?|batt(?:ery)?[ \t]{0,3}:?[ \t]{0,3}(?:low|empty))\b", text, email
    ):
        low = True
    return pct, low


def parse_temperature(text: str, email: InboundEmail | None = None) -> float | None:
    """°C from "Temperature:21℃", "Temp:19 Celsius Degree", "Temp: 31C", "Temperature: -2 °C", "Temp 88F"."""
    m = find(
        r"\btemp(?:erature)?\.?[ \t]{0,3}[:=]?[ \t]{0,3}(-?\d{1,3}(?:[.,]\d{1,2})?)[ \t]{0,3}"
        r"(℃|℉|°[ \t]?[CF]\b|[CF]\b|celsius|fahrenheit)",
        text,
        email,
    )
    if not m:
        return None
    value = float(m.group(1).replace(",", "."))
    unit = m.group(2).lower()
    fahrenheit = unit in ("℉", "fahrenheit") or unit.endswith("f")
    celsius = (value - 32) * 5 / 9 if fahrenheit else value
    return round(celsius, 1) if -60 <= celsius <= 90 else None


_UNIT_MB = {
    "k": 1 / 1024,
    "kb": 1 / 1024,
    "m": 1.0,
    "mb": 1.0,
    "g": 1024.0,
    "gb": 1024.0,
    "t": 1024**2,
    "tb": 1024**2,
}


def parse_sd(text: str, email: InboundEmail | None = None) -> tuple[float | None, float | None]:
    """(free MB, total MB) from "SD card free space: 14.7GB of 14.8GB", "SD:15115M/15189M",
    "SD: 12.3GB/29.7GB"."""
    m = find(
        r"\bSD(?:[ \t]{0,3}card)?(?:[ \t]{0,3}free[ \t]{0,3}space)?[ \t]{0,3}[:=][ \t]{0,3}"
        r"(\d{1,7}(?:\.\d{1,3})?)[ \t]{0,2}([KMGT]B?)[ \t]{0,3}(?:of|/)[ \t]{0,3}"
        r"(\d{1,7}(?:\.\d{1,3})?)[ \t]{0,2}([KMGT]B?)\b",
        text,
        email,
    )
    if not m:
        return None, None
    free = float(m.group(1)) * _UNIT_MB[m.group(2).lower()]
    total = float(m.group(3)) * _UNIT_MB[m.group(4).lower()]
    if total <= 0 or free > total * 1.01:
        return None, None
    return round(free, 1), round(total, 1)


def parse_status(subject: str, text: str, email: InboundEmail | None = None) -> dict[str, float | bool]:
    """Battery, SD card and temperature a camera reports in its subject and body (the first of each wins):
    the keys battery_pct, battery_low, sd_free_mb, sd_total_mb, temperature_c, each only when reported.
    (The one parser of these facts: the brands and process-email's status line both use it.)"""
    haystack = f"{subject[:MAX_SUBJECT_CHARS]}\n{text[:MAX_TEXT_CHARS]}"
    out: dict[str, float | bool] = {}
    pct, low = parse_battery(haystack, email)
    if pct is not None:
        out["battery_pct"] = pct
    if low:
        out["battery_low"] = True
    free, total = parse_sd(haystack, email)
    if free is not None and total is not None:
        out["sd_free_mb"], out["sd_total_mb"] = free, total
    temp = parse_temperature(haystack, email)
    if temp is not None:
        out["temperature_c"] = temp
    return out


def apply_status(reading: BrandReading, subject: str, text: str, email: InboundEmail | None = None) -> None:
    for key, value in parse_status(subject, text, email).items():
        setattr(reading, key, value)


def parse_body_datetime(text: str, email: InboundEmail | None = None) -> datetime | None:
    """The camera's local time from "Date:31.05.2024" / "Date:30/05/2024" (day first) with "Time:17:08:02",
    "Date:30/05/2024  17:02:06" or "Date & Time:(31/05/2024  17:02:20)"; naive (see the module docstring)."""
    m = find(
        r"\bDate(?:[ \t]{0,2}&[ \t]{0,2}Time)?[ \t]{0,2}:[ \t]{0,2}\(?(\d{1,2})[./](\d{1,2})[./](\d{4})"
        r"(?:[ \t]{1,4}(\d{1,2}):(\d{2}):(\d{2}))?",
        text,
        email,
    )
    if not m:
        return None
    day, month, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if m.group(4) is not None:
        hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6))
    else:
        t = find(r"\bTime[ \t]{0,2}:[ \t]{0,2}(\d{1,2}):(\d{2}):(\d{2})", text, email)
        if not t:
            return None
        hh, mm, ss = int(t.group(1)), int(t.group(2)), int(t.group(3))
    return make_datetime(year, month, day, hh, mm, ss)


def make_datetime(
    year: int, month: int, day: int, hh: int = 0, mm: int = 0, ss: int = 0, tz: str | None = None
) -> datetime | None:
    """A datetime (aware in ``tz`` when it names a zone), or None for an impossible date or a dead clock."""
    try:
        value = datetime(year, month, day, hh, mm, ss)
    except ValueError:
        return None
    if not 1990 <= value.year <= 2200:
        return None
    zone = valid_zone(tz)
    return value.replace(tzinfo=ZoneInfo(zone)) if zone else value


def valid_zone(tz: str | None) -> str | None:
    """``tz`` when it is an IANA zone name this machine knows, else None."""
    if not tz or len(tz) > 64:
        return None
    try:
        ZoneInfo(tz.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return tz.strip()


# ------------------------------------------------------------------------------------------- EXIF
_EXIF_IFD = 0x8769
_TAGS = {0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model", 0x0131: "Software", 0x0132: "DateTime"}
_SUB_TAGS = {
    0x9003: "DateTimeOriginal",
    0x9011: "OffsetTimeOriginal",
    0x9286: "UserComment",
    0xA431: "BodySerialNumber",
}
_COMMENT_PREFIXES = (b"ASCII\x00\x00\x00", b"UNICODE\x00", b"JIS\x00\x00\x00\x00\x00", b"\x00" * 8)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        for prefix in _COMMENT_PREFIXES:
            if value.startswith(prefix):
                body = value[len(prefix) :]
                if prefix.startswith(b"UNICODE"):
                    enc = "utf-16-be" if body[:1] == b"\x00" else "utf-16-le"
                    return body.decode(enc, "replace").strip("\x00 ")[:2000]
                value = body
                break
        return value.decode("utf-8", "replace").strip("\x00 ")[:2000] or None
    if isinstance(value, str):
        return value.strip("\x00 ")[:2000] or None
    return None


def read_exif(data: bytes) -> dict[str, str]:
    """The EXIF text tags brands use (Make, Model, Software, ImageDescription, DateTimeOriginal,
    OffsetTimeOriginal, UserComment, BodySerialNumber) of a JPEG/PNG; {} for anything unreadable."""
    if not (data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"):
        return {}
    try:
        from PIL import Image

        exif = Image.open(io.BytesIO(data)).getexif()
        out = {name: _text(exif.get(tag)) for tag, name in _TAGS.items()}
        sub = exif.get_ifd(_EXIF_IFD)
        out.update({name: _text(sub.get(tag)) for tag, name in _SUB_TAGS.items()})
    except Exception:  # noqa: BLE001 - unreadable EXIF is no EXIF (images.py judges the photo itself)
        return {}
    return {k: v for k, v in out.items() if v}


def exif_reader(email: InboundEmail) -> ExifReader:
    """``exif(attachment_index)`` over the email's attachments, each read once."""
    by_index = {a.index: a for a in email.attachments}
    cache: dict[int, Mapping[str, Any]] = {}

    def exif(index: int) -> Mapping[str, Any]:
        if index not in cache:
            att = by_index.get(index)
            cache[index] = read_exif(att.data) if att is not None else {}
        return cache[index]

    return exif


def key_values(text: str | None, limit: int = 64) -> dict[str, str]:
    """``"ID=WAI 01,MA=1B14,BP=50%"`` -> {"ID": "WAI 01", "MA": "1B14", "BP": "50%"} (keys upper case;
    the first of a repeated key wins; pieces without '=' are skipped)."""
    out: dict[str, str] = {}
    for piece in (text or "")[:4000].split(",")[:limit]:
        key, eq, value = piece.partition("=")
        key = key.strip().upper()
        if eq and key and len(key) <= 32 and key not in out:
            out[key] = value.strip()
    return out


def exif_time(tags: Mapping[str, Any]) -> datetime | None:
    """DateTimeOriginal ("2023:10:29 14:02:20") as naive local time (aware with OffsetTimeOriginal)."""
    m = regex.match(
        r"\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})", str(tags.get("DateTimeOriginal") or "")
    )
    if not m:
        return None
    value = make_datetime(*(int(g) for g in m.groups()))
    off = regex.match(r"\s*([+-])(\d{2}):?(\d{2})\s*$", str(tags.get("OffsetTimeOriginal") or ""))
    if value is not None and off and int(off.group(2)) < 24:
        from datetime import timedelta, timezone

        sign = 1 if off.group(1) == "+" else -1
        value = value.replace(
            tzinfo=timezone(sign * timedelta(hours=int(off.group(2)), minutes=int(off.group(3))))
        )
    return value


# ---------------------------------------------------------------------------------- base classes
class AttachedPhotosBrand:
    """A brand whose photos are attachments: the default ``read`` takes the camera id from ``camera_id()``,
    the status lines from the subject and body, and one PhotoRef per attachment (EXIF serial and time)."""

    name = "generic"
    vendor_shared = False
    link_hosts: tuple[str, ...] = ()
    sender_domains: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()  # patterns (subject or body) that say "this brand"

    def detect(self, email: InboundEmail) -> int:
        score = 10 if self.sender_domains and domain_is(sender_domain(email), *self.sender_domains) else 0
        text = subject_of(email) + "\n" + text_of(email)[:4000]
        if any(find(m, text, email) for m in self.markers):
            score += 5
        return score

    def camera_id(self, email: InboundEmail) -> str | None:
        return None

    def serial(self, email: InboundEmail) -> str | None:
        """ "IMEI: 861234567890123" / "Serial: X" / "Serial No: X" / "S/N: X" in the body."""
        m = find(SERIAL_LINE, text_of(email), email)
        return m.group("s") if m else None

    def taken_at(self, email: InboundEmail) -> tuple[datetime | None, str | None]:
        return parse_body_datetime(text_of(email), email), None

    def photo(
        self,
        email: InboundEmail,
        index: int,
        filename: str | None,
        tags: Mapping[str, Any],
        reading: BrandReading,
    ) -> PhotoRef:
        return PhotoRef(
            attachment_index=index,
            url=None,
            filename=filename,
            camera_id=None,
            serial=clean_id(tags.get("BodySerialNumber")),
            taken_at=exif_time(tags),
            tz=None,
        )

    def read(self, email: InboundEmail, exif: ExifReader) -> BrandReading:
        reading = BrandReading(self.name, self.vendor_shared, link_hosts=tuple(self.link_hosts))
        reading.camera_id = clean_id(self.camera_id(email))
        reading.serial = clean_id(self.serial(email))
        reading.taken_at, reading.tz = self.taken_at(email)
        apply_status(reading, subject_of(email), text_of(email), email)
        for att in email.attachments[:MAX_PHOTOS]:
            reading.photos.append(self.photo(email, att.index, att.filename, exif(att.index), reading))
        if len(email.attachments) > MAX_PHOTOS:
            reading.notes.append(f"only the first {MAX_PHOTOS} of {len(email.attachments)} attachments read")
        return reading


class CloudBrand(AttachedPhotosBrand):
    """A cellular brand whose cameras usually send through the vendor's cloud: a sender domain with the
    brand's word in it (``word``) is strong evidence and means the sender is shared by every owner
    (``vendor_shared``); otherwise a subject/body marker decides. The camera id comes from ``id_patterns``
    (each with a group ``camera``) over the subject, then the body ("Camera Name: X" / "Camera ID: X")."""

    word = ""
    id_patterns: tuple[str, ...] = ()
    body_id = (
        r"(?m)^[ \t]{0,8}Cam(?:era)?[ \t]{0,3}(?:Name|ID)[ \t]{0,3}[:=][ \t]{0,3}(?P<camera>" + _ID + ")"
    )

    def from_vendor(self, email: InboundEmail) -> bool:
        return bool(self.word) and self.word in sender_domain(email)

    def detect(self, email: InboundEmail) -> int:
        return super().detect(email) + (10 if self.from_vendor(email) else 0)

    def camera_id(self, email: InboundEmail) -> str | None:
        for source in self.id_patterns:
            m = find(source, subject_of(email), email)
            if m:
                return m.group("camera")
        m = find(self.body_id, text_of(email), email)
        return m.group("camera") if m else None

    def read(self, email: InboundEmail, exif: ExifReader) -> BrandReading:
        reading = super().read(email, exif)
        reading.vendor_shared = self.from_vendor(email)
        return reading
