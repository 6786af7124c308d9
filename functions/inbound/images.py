"""Is an attachment a usable photo, and what does it say about itself.

- The bytes decide the format, not the declared type: JPEG (FF D8 FF) and PNG are scored; HEIC/HEIF, GIF,
  WebP, TIFF, BMP are recorded as ``unsupported`` (kept in the raw email); anything else is not an image.
  Video clips (MP4/MOV/3GP ``ftyp`` brands, RIFF AVI) are told apart first, by video.py
  (``inspect_attachment``), and stored as clips.
- Pillow reads the dimensions from the header first: over MAX_IMAGE_PIXELS is a decompression bomb and is
  rejected before any pixel is decoded. Then the image is decoded (JPEG at 1/8 scale, PNG chunk CRCs), so a
  truncated or corrupt file is rejected here with its reason rather than failing in the detector.
- EXIF: DateTimeOriginal (else DateTimeDigitized) read as the camera's local time (its OffsetTimeOriginal
  when the camera wrote one, else the camera's time zone, else the park's), GPS position, orientation.
  Without an EXIF time the email's Date header is used, else the time of receipt; ``taken_at_source``
  records which.
- Blob name: ``<park>/<camera>/<yyyy-mm-dd>/<sha256>.<ext>``, deterministic, so a retry writes the same blob.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from PIL import Image, UnidentifiedImageError

from .. import names
from ..statuses import AttachmentStatus
from .reasons import (
    CORRUPT_IMAGE,
    EMPTY_ATTACHMENT,
    NOT_AN_IMAGE,
    TOO_MANY_PIXELS,
    UNSUPPORTED_FORMAT,
    with_detail,
)

SUPPORTED = {"jpeg": ("image/jpeg", "jpg"), "png": ("image/png", "png")}

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED, _OFFSET_ORIGINAL = 0x9003, 0x9004, 0x9011
_ORIENTATION = 0x0112


def sniff(data: bytes) -> str | None:
    """The format by magic bytes: jpeg, png, heic, gif, webp, tiff, bmp, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[4:8] == b"ftyp" and data[8:12] in (
        b"heic",
        b"heix",
        b"hevc",
        b"heim",
        b"heis",
        b"mif1",
        b"msf1",
        b"avif",
    ):
        return "avif" if data[8:12] == b"avif" else "heic"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:2] == b"BM":
        return "bmp"
    return None


@dataclass
class ImageCheck:
    status: AttachmentStatus
    reason: str | None
    sha256: str
    size_bytes: int
    format: str | None = None
    content_type: str | None = None
    ext: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    taken_at_source: str | None = None
    gps_latitude: float | None = None
    gps_longitude: float | None = None
    orientation: int | None = None

    def facts(self) -> dict[str, Any]:
        """What an images row records of the checked bytes (its columns of the same names)."""
        return {
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "width": self.width,
            "height": self.height,
            "taken_at": self.taken_at,
            "taken_at_source": self.taken_at_source,
            "gps_latitude": self.gps_latitude,
            "gps_longitude": self.gps_longitude,
            "orientation": self.orientation,
        }

    def time_metadata(self) -> dict[str, str]:
        """The photo's time as blob metadata."""
        return {
            "taken_at": self.taken_at.isoformat() if self.taken_at else "",
            "taken_at_source": self.taken_at_source or "",
        }


def new_check(data: bytes, email_date: datetime | None, received_at: datetime) -> ImageCheck:
    """The check every photo or clip starts from: ``rejected``, its sha256, size and fallback time; no
    bytes at all: reason EMPTY_ATTACHMENT, and nothing more to check."""
    check = ImageCheck(
        status="rejected", reason=None, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)
    )
    _fallback_time(check, email_date, received_at)
    if not data:
        check.reason = EMPTY_ATTACHMENT
    return check


def media_type(declared_type: str | None) -> str:
    """A declared Content-Type without its parameters, lower case ("" when none)."""
    return (declared_type or "").lower().split(";")[0].strip()


def zone(name: str | None) -> ZoneInfo | timezone:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def inspect_image(
    data: bytes,
    *,
    declared_type: str | None,
    max_pixels: int,
    tz: str | None,
    email_date: datetime | None,
    received_at: datetime,
) -> ImageCheck:
    """Check one attachment; never raises for bad input (the reason says what is wrong)."""
    check = new_check(data, email_date, received_at)
    if not data:
        return check
    fmt = sniff(data)
    check.format = fmt
    declared = media_type(declared_type)
    if fmt is None:
        if declared in ("image/jpeg", "image/jpg", "image/pjpeg", "image/png"):
            check.reason = with_detail(
                CORRUPT_IMAGE, f"declared {declared} but the bytes are not a JPEG or PNG"
            )
        elif declared.startswith("image/"):
            check.status, check.reason = "unsupported", with_detail(UNSUPPORTED_FORMAT, declared)
        else:
            check.status, check.reason = "unsupported", with_detail(NOT_AN_IMAGE, declared or "unknown type")
        return check
    if fmt not in SUPPORTED:
        check.status, check.reason = "unsupported", with_detail(UNSUPPORTED_FORMAT, fmt)
        check.content_type = f"image/{fmt}"
        return check
    check.content_type, check.ext = SUPPORTED[fmt]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            check.width, check.height = width, height
            if width <= 0 or height <= 0:
                check.reason = with_detail(CORRUPT_IMAGE, f"{width}x{height} pixels")
                return check
            if width * height > max_pixels:
                check.reason = with_detail(
                    TOO_MANY_PIXELS, f"{width}x{height} = {width * height} pixels, limit {max_pixels}"
                )
                return check
            if fmt == "jpeg":
                _check_jpeg_ends(img, data)
                _read_exif(img, check, tz)
            else:
                img.verify()  # chunk CRCs; the image object is unusable afterwards
                _read_exif(Image.open(io.BytesIO(data)), check, tz)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        check.reason = with_detail(TOO_MANY_PIXELS, str(exc)[:200])
        return check
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        IndexError,
        TypeError,
        RuntimeError,
        struct.error,
    ) as exc:
        check.reason = with_detail(CORRUPT_IMAGE, f"{type(exc).__name__}: {exc}"[:200])
        return check
    check.status = "stored"
    return check


def _check_jpeg_ends(img: Image.Image, data: bytes) -> None:
    """A JPEG must end its scan data with an end-of-image marker: a photo cut off in transfer (the usual
    corruption: a camera losing signal mid-upload) has none. Checked on the bytes rather than by decoding
    (~10 ms of CPU per MB): the detector decodes every photo anyway, and one it cannot read is recorded by
    process-image as ``unreadable_image``, permanently, like a rejection here. 0xFFD9 cannot occur inside
    scan data (0xFF is stuffed there), but can in an EXIF thumbnail, hence "after the first scan"."""
    scan_start = img.fp.tell() if img.fp is not None else 0  # Pillow stops reading at the first scan
    if scan_start < 4 or data.rfind(b"\xff\xd9") < scan_start:
        raise SyntaxError("no end-of-image marker after the scan data (cut off)")


def _fallback_time(check: ImageCheck, email_date: datetime | None, received_at: datetime) -> None:
    if email_date is not None:
        check.taken_at, check.taken_at_source = email_date, "email_date"
    else:
        check.taken_at, check.taken_at_source = received_at, "received"


_EXIF_TIME = re.compile(r"^\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")


def _exif_datetime(value, offset, tz: str | None) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    m = _EXIF_TIME.match(str(value or ""))
    if not m:
        return None
    try:
        naive = datetime(*(int(g) for g in m.groups()))
    except ValueError:
        return None
    if not 1990 <= naive.year <= 2200:
        return None  # "0000:00:00 00:00:00", cameras with a dead clock battery, "9999:12:31" (overflows)
    if isinstance(offset, bytes):
        offset = offset.decode("ascii", "replace")
    om = _OFFSET.match(str(offset or ""))
    if om and int(om.group(2)) * 60 + int(om.group(3)) < 24 * 60:  # "+99:99" is no offset: the zone decides
        sign = 1 if om.group(1) == "+" else -1
        return naive.replace(
            tzinfo=timezone(sign * timedelta(hours=int(om.group(2)), minutes=int(om.group(3))))
        )
    return naive.replace(tzinfo=zone(tz))


def _gps_coord(values, ref) -> float | None:
    try:
        d, m, s = (float(v) for v in values)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if str(ref or "").strip().upper() in ("S", "W"):
        value = -value
    return value


def _read_exif(img: Image.Image, check: ImageCheck, tz: str | None) -> None:
    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - unreadable EXIF is no EXIF
        return
    if not exif:
        return
    orientation = exif.get(_ORIENTATION)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        check.orientation = orientation
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001
        sub = {}
    taken = _exif_datetime(
        sub.get(_DATETIME_ORIGINAL) or sub.get(_DATETIME_DIGITIZED), sub.get(_OFFSET_ORIGINAL), tz
    )
    if taken is not None:
        check.taken_at, check.taken_at_source = taken, "exif"
    try:
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:  # noqa: BLE001
        gps = {}
    if gps and 2 in gps and 4 in gps:
        lat, lon = _gps_coord(gps.get(2), gps.get(1)), _gps_coord(gps.get(4), gps.get(3))
        if (
            lat is not None
            and lon is not None
            and -90 <= lat <= 90
            and -180 <= lon <= 180
            and not (lat == 0 and lon == 0)
        ):
            check.gps_latitude, check.gps_longitude = round(lat, 7), round(lon, 7)


_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def path_segment(value: str) -> str:
    """A blob path segment: letters, digits, dot, dash, underscore (no '..', never empty)."""
    seg = _SLUG.sub("-", value).strip("-.") or "unnamed"
    return seg[:100]


def blob_name(park_slug: str, camera_name: str, check: ImageCheck, tz: str | None) -> str:
    """``<park>/<camera>/<yyyy-mm-dd>/<sha256>.<ext>``; the date is the local date the photo was taken."""
    taken = check.taken_at or datetime.now(UTC)
    day = taken.astimezone(zone(tz)).date().isoformat()
    return f"{path_segment(park_slug)}/{path_segment(camera_name)}/{day}/{check.sha256}.{check.ext or 'bin'}"


def store_photo(
    storage,
    data: bytes,
    check: ImageCheck,
    *,
    park_slug: str,
    park_id: int,
    camera_name: str,
    camera_id: int,
    tz: str | None,
    correlation_id: str,
    filename: str,
    **extra: str,
) -> str:
    """Put a stored photo or clip (emailed, uploaded or fetched by link) in the images container under its
    :func:`blob_name`; the name. Its metadata: park and camera (names and ids), sha256, correlation id, file
    name, then ``extra``. Deterministic name: a retry writes the same blob."""
    name = blob_name(park_slug, camera_name, check, tz)
    storage.put_blob(
        names.IMAGES_CONTAINER,
        name,
        data,
        content_type=check.content_type,
        metadata={
            "park": park_slug,
            "park_id": str(park_id),
            "camera": camera_name,
            "camera_id": str(camera_id),
            "sha256": check.sha256,
            "correlation_id": correlation_id,
            "filename": filename,
            **extra,
        },
    )
    return name
