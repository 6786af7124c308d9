"""The reasons recorded on inbound_emails.reason and images.reason (a code, then ': ' and details).

An email that can never be processed is *recorded* with one of these reasons and answered 200: SendGrid
retries any non-2xx for three days, and retrying a permanently bad email only delays the good ones.
"""

from __future__ import annotations

# Email level: rejected (permanently bad; the raw POST is kept in raw-emails when its size allows).
TOO_LARGE = "too_large"  # body over MAX_EMAIL_BYTES (raw not kept)
NOT_MULTIPART = "not_multipart"  # Content-Type is not multipart/form-data with a boundary
MALFORMED_FORM = "malformed_form"  # the multipart body cannot be decoded
NOT_SENDGRID = "not_sendgrid"  # a form, but without the fields SendGrid always sends
RAW_NOT_EMAIL = "raw_not_email"  # raw mode: the `email` field is not a MIME message
TOO_MANY_ATTACHMENTS = "too_many_attachments"  # more than MAX_ATTACHMENTS (raw kept: release after review)
# (also: raw mode, more than MAX_MIME_PARTS MIME parts, counted while parsing)
# raw mode: MIME nesting deeper than MAX_MIME_DEPTH, or more than MAX_MIME_LINES lines (raw kept)
MIME_TOO_COMPLEX = "mime_too_complex"
NO_IMAGES = "no_images"  # no attachment at all that looks like a photo
NO_USABLE_IMAGES = "no_usable_images"  # photos, but none usable (corrupt, HEIC, too many pixels)

# Email level: quarantined (kept with its raw POST; `trapalert inbound release ID --camera C`).
UNKNOWN_SENDER = "unknown_sender"  # no registered camera matches
AMBIGUOUS_CAMERA = "ambiguous_camera"  # several cameras match and nothing tells them apart
SPF_REQUIRED = "spf_required"  # the park requires SPF pass
DKIM_REQUIRED = "dkim_required"  # the park requires DKIM pass
CAMERA_INACTIVE = "camera_inactive"  # the camera is registered but marked inactive

# Image level.
EMPTY_ATTACHMENT = "empty_attachment"  # rejected
CORRUPT_IMAGE = "corrupt_image"  # rejected: declared or sniffed JPEG/PNG that does not decode
TOO_MANY_PIXELS = "too_many_pixels"  # rejected: over MAX_IMAGE_PIXELS (decompression bomb)
UNSUPPORTED_FORMAT = "unsupported_format"  # unsupported: HEIC, GIF, WebP, TIFF, ...
NOT_AN_IMAGE = "not_an_image"  # unsupported: a PDF, a text file, ...
FILENAME_SANITIZED = "filename_sanitized"  # stored: the filename had path/control characters (note)


def with_detail(code: str, detail: str | None = None) -> str:
    """``code: detail`` (details are cut to keep the column readable)."""
    if not detail:
        return code
    return f"{code}: {detail}"[:500]


def code_of(reason: str | None) -> str | None:
    return reason.split(":", 1)[0] if reason else None


class Rejected(Exception):
    """A permanently bad email: recorded with ``reason`` and answered 200."""

    def __init__(self, code: str, detail: str | None = None):
        super().__init__(with_detail(code, detail))
        self.code = code
        self.reason = with_detail(code, detail)
