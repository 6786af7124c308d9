"""What a SendGrid Inbound Parse POST says, in both modes, as one ``InboundEmail``.

- Default ("parsed") mode: multipart/form-data fields ``headers``, ``text``, ``html``, ``from``, ``to``,
  ``cc``, ``subject``, ``envelope`` (JSON), ``dkim``, ``SPF``, ``sender_ip``, ``charsets`` (JSON: the charset
  of each text field), ``attachments`` (a count), ``attachment-info`` (JSON), ``content-ids`` and the files
  ``attachment1..N`` (inline images included, with a content-id).
- Raw mode ("send raw"): the whole MIME message in field ``email``; parsed with the standard library's
  parser and the modern policy (``email.policy.default``); every leaf part that is not the text body is an
  attachment, through nested multiparts, inline images and attached messages alike.

The multipart body is decoded with werkzeug's sans-IO decoder (a dependency of ``azure-functions``), which
keeps every part as bytes, so binary parts survive whatever their headers say. A POST that is not a SendGrid
form raises ``Rejected`` with the reason; everything else becomes an InboundEmail, defects noted.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Literal

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from .reasons import (
    MALFORMED_FORM,
    NOT_MULTIPART,
    NOT_SENDGRID,
    RAW_NOT_EMAIL,
    TOO_MANY_ATTACHMENTS,
    Rejected,
)

_ATTACHMENT_FIELD = re.compile(r"^attachment(\d{1,4})$")
MIN_YEAR, MAX_YEAR = 1900, 2200  # a Date outside is a broken clock (and overflows once moved to a zone)
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass
class FormPart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Attachment:
    index: int  # 1-based, in the order of the email
    filename: str | None  # safe: no path or control characters
    original_filename: str | None  # as the email named it
    content_type: str | None  # as declared (the bytes decide, see images.py)
    data: bytes
    content_id: str | None = None
    inline: bool = False

    @property
    def filename_changed(self) -> bool:
        return (self.original_filename or None) != (self.filename or None)


@dataclass
class InboundEmail:
    mode: Literal["parsed", "raw"]
    sender: str | None = None  # the From header as written
    sender_address: str | None = None  # its address, lower case
    envelope_from: str | None = None
    envelope_to: list[str] = field(default_factory=list)
    to_field: str | None = None
    recipients: list[str] = field(default_factory=list)  # to + cc + envelope to, lower case
    subject: str = ""
    text: str = ""
    message_id: str | None = None
    date: datetime | None = None
    spf: str | None = None
    dkim: str | None = None
    sender_ip: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    @property
    def spf_pass(self) -> bool:
        return (self.spf or "").strip().lower() == "pass"

    @property
    def dkim_pass(self) -> bool:
        value = (self.dkim or "").strip().lower()
        return value == "pass" or re.search(r":\s*pass\b", value) is not None


# ---------------------------------------------------------------------------------------- the form
_FEED_CHUNK = 64 * 1024


def decode_form(body: bytes, content_type: str | None, *, max_parts: int) -> list[FormPart]:
    """The parts of a multipart/form-data body, as bytes; Rejected when it is not one."""
    mimetype, options = parse_options_header(content_type or "")
    mimetype = mimetype.lower()
    boundary = options.get("boundary")
    if mimetype != "multipart/form-data" or not boundary:
        raise Rejected(
            NOT_MULTIPART,
            f"Content-Type {mimetype or 'missing'}"
            + ("" if mimetype != "multipart/form-data" else " without a boundary"),
        )
    decoder = MultipartDecoder(boundary.encode("latin-1", "replace"), max_parts=max_parts)
    parts: list[FormPart] = []
    current: FormPart | None = None
    chunks: list[bytes] = []
    view, fed, ended = memoryview(body), 0, False
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, NeedData) and not ended:
                # Fed in chunks, as the decoder is made to be: it then looks for the boundary with a plain
                # find in a small buffer; given a whole 2 MB photo at once it re-scans it with a regex.
                if fed < len(body):
                    decoder.receive_data(view[fed : fed + _FEED_CHUNK])
                    fed += _FEED_CHUNK
                else:
                    decoder.receive_data(None)
                    ended = True
                continue
            if isinstance(event, (Field, File)):
                current = FormPart(
                    event.name or "",  # a part without a name: "" (names are matched as strings)
                    event.filename if isinstance(event, File) else None,
                    event.headers.get("content-type"),
                    b"",
                )
                chunks = []
            elif isinstance(event, Data):
                if current is None:
                    raise ValueError("data outside a part")
                chunks.append(event.data)
                if not event.more_data:
                    current.data = b"".join(chunks)
                    parts.append(current)
                    current = None
            elif isinstance(event, Epilogue):
                break
            elif isinstance(event, NeedData):
                raise ValueError("the body ends before the closing boundary")
    except RequestEntityTooLarge:
        raise Rejected(TOO_MANY_ATTACHMENTS, f"more than {max_parts} form parts") from None
    except (ValueError, KeyError, IndexError) as exc:
        raise Rejected(MALFORMED_FORM, str(exc) or type(exc).__name__) from None
    if not parts:
        raise Rejected(MALFORMED_FORM, "no form parts")
    return parts


def _charset(name: str | None) -> str:
    """The codec of a declared charset; utf-8 for unknown names and for codecs that are not text encodings
    (base64, hex, rot13, zlib: ``bytes.decode`` refuses them)."""
    try:
        info = codecs.lookup(name or "utf-8")
    except LookupError:
        return "utf-8"
    return info.name if getattr(info, "_is_text_encoding", True) else "utf-8"


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, "replace")
    except (LookupError, UnicodeError):  # idna, punycode: no 'replace' error handling
        return data.decode("utf-8", "replace")


class _Form:
    def __init__(self, parts: list[FormPart]):
        self.parts = parts
        self._by_name: dict[str, FormPart] = {}
        for p in parts:
            self._by_name.setdefault(p.name, p)
        self.charsets: dict[str, str] = {}
        raw = self._by_name.get("charsets")
        if raw is not None:
            try:
                data = json.loads(raw.data.decode("utf-8", "replace"))
                if isinstance(data, dict):
                    self.charsets = {str(k): str(v) for k, v in data.items()}
            except ValueError:
                pass

    def has(self, name: str) -> bool:
        return name in self._by_name

    def raw(self, name: str) -> bytes | None:
        part = self._by_name.get(name)
        return part.data if part is not None else None

    def text(self, *names: str) -> str | None:
        for name in names:
            part = self._by_name.get(name)
            if part is not None:
                return _decode(part.data, _charset(self.charsets.get(name)))
        return None

    def json(self, name: str, defects: list[str]):
        text = self.text(name)
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            defects.append(f"{name}: not JSON")
            return None


# -------------------------------------------------------------------------------------------- helpers
def safe_filename(name: str | None) -> str | None:
    """The last path component, without control characters or leading dots; None when nothing is left."""
    if name is None:
        return None
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE_FILENAME.sub("", base).strip().lstrip(".").strip()
    return base[:200] or None


def _addresses(*values: str | None) -> list[str]:
    out: list[str] = []
    for _name, addr in getaddresses([v for v in values if v]):
        addr = re.sub(r"[\x00-\x1f\x7f]", "", addr).strip().lower()
        if "@" in addr and addr not in out:
            out.append(addr)
    return out


def _header(msg: EmailMessage, name: str) -> str | None:
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - a malformed header is a defect, not a crash
        raw = msg.get_all(name, failobj=None) if hasattr(msg, "get_all") else None
        value = raw[0] if raw else None
    if value is None:
        return None
    return str(value).strip() or None


def _message_id(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().strip("<>").strip()
    return value[:900] or None


def _date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        defects.append(f"Date header unreadable: {value[:80]!r}")
        return None
    if dt is None:
        return None
    if not MIN_YEAR <= dt.year <= MAX_YEAR:
        defects.append(f"Date header year {dt.year} is not a clock's")
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------- the modes
def parse_request(body: bytes, content_type: str | None, *, max_parts: int = 200) -> InboundEmail:
    """The InboundEmail of a SendGrid POST (either mode); Rejected when it is not one."""
    form = _Form(decode_form(body, content_type, max_parts=max_parts))
    if form.has("email"):
        return _parse_raw(form)
    if not (form.has("from") or form.has("headers") or form.has("to")):
        names = sorted({p.name for p in form.parts})[:10]
        raise Rejected(NOT_SENDGRID, f"no email, from, to or headers field (fields: {', '.join(names)})")
    return _parse_default(form)


def _common(form: _Form, email: InboundEmail) -> None:
    email.sender = form.text("from")
    email.to_field = form.text("to")
    email.subject = (form.text("subject") or "").strip()
    email.spf = (form.text("SPF", "spf") or "").strip() or None
    email.dkim = (form.text("dkim", "DKIM") or "").strip() or None
    email.sender_ip = (form.text("sender_ip") or "").strip() or None
    envelope = form.json("envelope", email.defects)
    if isinstance(envelope, dict):
        to = envelope.get("to")
        email.envelope_to = _addresses(*(to if isinstance(to, list) else [to] if isinstance(to, str) else []))
        frm = envelope.get("from")
        email.envelope_from = frm.strip().lower() if isinstance(frm, str) and frm.strip() else None
    elif envelope is not None:
        email.defects.append("envelope: not a JSON object")


def _finish(email: InboundEmail, cc: str | None) -> InboundEmail:
    senders = _addresses(email.sender)
    email.sender_address = senders[0] if senders else None
    for addr in _addresses(email.to_field, cc) + email.envelope_to:
        if addr not in email.recipients:
            email.recipients.append(addr)
    return email


def _parse_default(form: _Form) -> InboundEmail:
    email = InboundEmail(mode="parsed")
    _common(form, email)
    email.text = form.text("text") or ""
    headers_raw = form.raw("headers") or b""
    hdrs = BytesHeaderParser(policy=policy.default).parsebytes(headers_raw) if headers_raw else EmailMessage()
    email.message_id = _message_id(_header(hdrs, "Message-ID"))
    email.date = _date(_header(hdrs, "Date"), email.defects)
    if not email.subject:
        email.subject = _header(hdrs, "Subject") or ""
    if not email.sender:
        email.sender = _header(hdrs, "From")
    info = form.json("attachment-info", email.defects)
    info = info if isinstance(info, dict) else {}
    files = []
    for part in form.parts:
        m = _ATTACHMENT_FIELD.match(part.name)
        if m:
            files.append((int(m.group(1)), part))
    files.sort(key=lambda item: item[0])
    declared = (form.text("attachments") or "").strip()
    if declared.isdigit() and int(declared) != len(files):
        email.defects.append(f"attachments field says {declared}, the form has {len(files)}")
    for position, (number, part) in enumerate(files, start=1):
        meta = info.get(f"attachment{number}")
        meta = meta if isinstance(meta, dict) else {}
        original = part.filename or meta.get("filename") or meta.get("name")
        content_id = meta.get("content-id") or None
        email.attachments.append(
            Attachment(
                index=position,
                filename=safe_filename(original),
                original_filename=original,
                content_type=(meta.get("type") or part.content_type or None),
                data=part.data,
                content_id=content_id,
                inline=bool(content_id),
            )
        )
    return _finish(email, form.text("cc"))


def _parse_raw(form: _Form) -> InboundEmail:
    email = InboundEmail(mode="raw")
    _common(form, email)
    raw = form.raw("email") or b""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    if not raw.strip() or not msg.keys():
        raise Rejected(RAW_NOT_EMAIL, "the email field has no MIME headers")
    email.message_id = _message_id(_header(msg, "Message-ID"))
    email.date = _date(_header(msg, "Date"), email.defects)
    email.sender = email.sender or _header(msg, "From")
    email.to_field = email.to_field or _header(msg, "To")
    email.subject = email.subject or (_header(msg, "Subject") or "")
    email.defects.extend(type(d).__name__ for d in msg.defects)
    cc = form.text("cc") or _header(msg, "Cc")
    index = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        try:
            original = part.get_filename()
        except Exception:  # noqa: BLE001 - an unreadable filename is recorded as none
            original = None
            email.defects.append("unreadable attachment filename")
        if ctype.startswith("text/") and disposition != "attachment" and not original:
            if ctype == "text/plain" and not email.text:
                try:
                    email.text = part.get_content()
                except (LookupError, UnicodeError, AssertionError):
                    email.text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
            continue
        index += 1
        data = part.get_payload(decode=True) or b""
        content_id = _header(part, "Content-ID")
        email.attachments.append(
            Attachment(
                index=index,
                filename=safe_filename(original),
                original_filename=original,
                content_type=ctype,
                data=data,
                content_id=content_id.strip("<>") if content_id else None,
                inline=disposition == "inline" or (disposition is None and content_id is not None),
            )
        )
    return _finish(email, cc)
