"""Is an attachment a video clip, and what the pipeline does with one (docs/inbound.md "Video clips").

- The bytes decide, as for photos: an ISO base media file (``ftyp`` box) with an MP4/QuickTime/3GP brand,
  a QuickTime file that opens with a ``moov``/``mdat``/``wide``/``free`` atom, or a RIFF ``AVI `` file.
  A declared ``video/*`` type or a video file extension (``.mp4 .mov .avi .m4v .3gp``) with bytes that are
  none of those is a clip we cannot read: recorded ``unsupported`` with ``unsupported_video`` (kept in the
  raw email), never an error of the email.
- A clip is stored like a photo (``images/<park>/<camera>/<day>/<sha256>.<ext>``, one ``images`` row,
  content type ``video/...``) and queued for process-image, which sends it to the scoring service's
  ``/v1/detect-video`` (scoring/video.py samples and scores its frames; OpenCV lives there, not in the
  Function app) and decides its frames as one burst (functions/handlers/process_video.py).
- Over ``VIDEO_MAX_BYTES`` the clip is ``rejected`` here (``video_too_large``); its duration, frame size
  and codec are checked where it is decoded (the scoring service), and a clip that fails there is recorded
  ``failed`` with the service's reason (``unreadable_video``, ``video_too_long``, ``too_many_pixels``).
  In every case the clip's bytes are kept (the blob, else the raw email) and the other attachments of the
  email go on as if the clip were not there.
- No EXIF: the clip's time is the email's Date header, else the time of receipt; a frame's time is the
  clip's time plus the frame's offset in the clip.
"""

from __future__ import annotations

from datetime import datetime

from .images import ImageCheck, inspect_image, media_type, new_check, sniff
from .reasons import with_detail

UNSUPPORTED_VIDEO = "unsupported_video"  # unsupported: declared/named a video, but no container we read
VIDEO_TOO_LARGE = "video_too_large"  # rejected: over VIDEO_MAX_BYTES

# format -> (content type, blob extension)
VIDEO_FORMATS = {
    "mp4": ("video/mp4", "mp4"),
    "mov": ("video/quicktime", "mov"),
    "3gp": ("video/3gpp", "3gp"),
    "avi": ("video/x-msvideo", "avi"),
}
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".qt", ".avi", ".3gp", ".3g2")

# ISO/IEC 14496-12 major brands of MP4-family files (the ftyp box), as written by cameras, phones, FFmpeg
# and OpenCV; HEIC/AVIF brands are images (images.py).
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"M4VP",
    b"M4VH", b"f4v ", b"dash", b"mmp4", b"MSNV", b"NDAS", b"XAVC",
}  # fmt: skip
_QT_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def sniff_video(data: bytes) -> str | None:
    """The container by magic bytes: mp4, mov, 3gp, avi, or None."""
    if len(data) < 12:
        return None
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand == b"qt  ":
            return "mov"
        if brand[:3] in (b"3gp", b"3g2"):
            return "3gp"
        if brand in _MP4_BRANDS:
            return "mp4"
        return None
    if data[:4] == b"RIFF" and data[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if data[4:8] in _QT_ATOMS and int.from_bytes(data[:4], "big") >= 8:
        return "mov"
    return None


def looks_like_video(declared_type: str | None, filename: str | None) -> bool:
    named = (filename or "").lower().endswith(VIDEO_EXTENSIONS)
    return media_type(declared_type).startswith("video/") or named


def is_video(content_type: str | None) -> bool:
    """A stored row's content type says it is a clip (process-image sends it to /v1/detect-video)."""
    return (content_type or "").lower().startswith("video/")


def inspect_video(
    data: bytes,
    *,
    fmt: str | None,
    declared_type: str | None,
    max_bytes: int,
    email_date: datetime | None,
    received_at: datetime,
) -> ImageCheck:
    """Check one attachment that is (or claims to be) a clip; never raises for bad input."""
    check = new_check(data, email_date, received_at)
    if not data:
        return check
    if fmt is None:
        declared = media_type(declared_type) or "no declared type"
        check.status = "unsupported"
        check.reason = with_detail(UNSUPPORTED_VIDEO, f"{declared}, but not an MP4, MOV or AVI container")
        return check
    check.format = fmt
    check.content_type, check.ext = VIDEO_FORMATS[fmt]
    if len(data) > max_bytes:
        check.reason = with_detail(VIDEO_TOO_LARGE, f"{len(data)} bytes, limit {max_bytes} (VIDEO_MAX_BYTES)")
        return check
    check.status = "stored"
    return check


def inspect_attachment(
    data: bytes,
    *,
    declared_type: str | None,
    filename: str | None,
    max_pixels: int,
    video_max_bytes: int,
    tz: str | None,
    email_date: datetime | None,
    received_at: datetime,
) -> ImageCheck:
    """A photo (images.inspect_image) or a clip (inspect_video), by its bytes first, then its declared type
    or file name."""
    fmt = sniff_video(data)
    if fmt is not None or looks_like_video(declared_type, filename):
        if fmt is not None or not data or sniff(data) is None:
            return inspect_video(
                data,
                fmt=fmt,
                declared_type=declared_type,
                max_bytes=video_max_bytes,
                email_date=email_date,
                received_at=received_at,
            )
    return inspect_image(
        data,
        declared_type=declared_type,
        max_pixels=max_pixels,
        tz=tz,
        email_date=email_date,
        received_at=received_at,
    )
