"""What a SendGrid Inbound Parse POST says, in both modes, as one ``InboundEmail``.

- Default ("parsed") mode: multipart/form-data fields ``headers``, ``text``, ``html``, ``from``, ``to``,
  ``cc``, ``subject``, ``envelope`` (JSON), ``dkim``, ``SPF``, ``sender_ip``, ``charsets`` (JSON: the charset
  of each text field), ``attachments`` (a count), ``attachment-info`` (JSON), ``content-ids`` and the files
  ``attachment1..N`` (inline images included, with a content-id).
- Raw mode ("send raw"): the whole MIME message in field ``email``; split by ``_Splitter`` (below) into the
  standard library's ``EmailMessage`` objects (modern policy, ``email.policy.default``); every leaf part
  that is not the text body is an attachment, through nested multiparts, inline images and attached
  messages alike.

Bounds (``ParseOptions``, from the settings MAX_SUBJECT_CHARS, MAX_BODY_CHARS, MAX_HEADER_BYTES,
MAX_MIME_PARTS, MAX_MIME_DEPTH): every input is cut or refused *while* it is read, before any pattern runs
on it, so that no 30 MB POST can make the webhook slow or crash:
- the subject, the text and HTML bodies and the address fields are cut to their maxima; what was cut is a
  defect recorded on the email (``subject_cut: 72000 bytes, kept 1000``); the email goes on;
- the ``headers`` field (default mode) and every header block of a raw message are cut at
  MAX_HEADER_BYTES, and any one header value at 16 KB before the header parser reads it;
- raw mode: the standard library's feed parser works line by line (about 1-2 us a line: 30 MB of empty
  lines took 8 s, 20,000 parts 4 s), so the MIME structure is split by ``_Splitter``: header blocks found
  with ``bytes.find`` and parsed by the standard header parser, multipart bodies cut at their delimiters by
  one compiled pattern each (C speed, whatever the line count), leaf payloads kept as the bytes parser
  keeps them. It counts parts and nesting as it creates them and stops at the first part over
  MAX_MIME_PARTS (``too_many_attachments``) or level over MAX_MIME_DEPTH (``mime_too_complex``): the email
  is rejected with that reason, its raw POST kept, answered 200. It never recurses deeper than
  MAX_MIME_DEPTH; a RecursionError anywhere in the standard library's header code (a header with thousands
  of nested comments) is caught and recorded the same way. Should the splitter fail unexpectedly, the
  standard feed parser takes over (defect ``mime_splitter_failed``), bounded the same way by
  ``_BoundedParser`` and refusing more than MAX_MIME_LINES lines;
- operator and brand patterns run under functions/inbound/patterns.py (timeouts).

Authenticated-sender facts: ``dkim_results`` (SendGrid's ``dkim`` field, ``{@a.example : pass, @b.example
: fail}``, as (domain, result) pairs; ``none`` or an absent field: no pairs) and ``spf_result`` (the ``SPF``
field's first word, lower case). SendGrid sends both fields in both modes. Raw mode also has the message's
own ``Authentication-Results`` headers (RFC 8601): anyone on the way, the sender included, can write one,
and SendGrid's documentation does not say that its MX adds one, so they are recorded
(``authentication_results``) but trusted only when their authserv-id is listed in
INBOUND_TRUSTED_AUTHSERV_IDS (empty by default): then their ``dkim=`` results are added to ``dkim_results``
(``header.d``) and their ``spf=`` result is used when the SPF field is missing. The alignment decision is
functions/domain/authenticity.py.

The multipart body is decoded with werkzeug's sans-IO decoder (a dependency of ``azure-functions``), which
keeps every part as bytes, so binary parts survive whatever their headers say. A POST that is not a SendGrid
form raises ``Rejected`` with the reason; everything else becomes an InboundEmail, defects noted.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.feedparser import BytesFeedParser
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Literal

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from .reasons import (
    MALFORMED_FORM,
    MIME_TOO_COMPLEX,
    NOT_MULTIPART,
    NOT_SENDGRID,
    RAW_NOT_EMAIL,
    TOO_MANY_ATTACHMENTS,
    Rejected,
)

log = logging.getLogger(__name__)

_ATTACHMENT_FIELD = re.compile(r"^attachment(\d{1,4})$")
MIN_YEAR, MAX_YEAR = 1900, 2200  # a Date outside is a broken clock (and overflows once moved to a zone)
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True)
class ParseOptions:
    """The bounds of parsing (docs/inbound.md, "Bounds") and the trusted Authentication-Results ids."""

    max_subject_chars: int = 1000
    max_body_chars: int = 64 * 1024  # text and HTML bodies, each
    max_address_chars: int = 16 * 1024  # from, to, cc
    max_header_bytes: int = 256 * 1024  # the headers field; a raw message's header block
    max_mime_parts: int = 200
    max_mime_depth: int = 20
    max_mime_lines: int = 500_000  # only for the standard library's parser (the fallback): ~1-2 us a line
    trusted_authserv_ids: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings) -> ParseOptions:
        """From the app settings (functions/settings.py); a missing setting keeps its default."""
        d = cls()
        ids = getattr(settings, "inbound_trusted_authserv_ids", None) or ""
        if isinstance(ids, str):
            ids = [i for i in (p.strip().lower() for p in ids.split(",")) if i]
        return cls(
            max_subject_chars=getattr(settings, "max_subject_chars", d.max_subject_chars),
            max_body_chars=getattr(settings, "max_body_chars", d.max_body_chars),
            max_address_chars=d.max_address_chars,
            max_header_bytes=getattr(settings, "max_header_bytes", d.max_header_bytes),
            max_mime_parts=getattr(settings, "max_mime_parts", d.max_mime_parts),
            max_mime_depth=getattr(settings, "max_mime_depth", d.max_mime_depth),
            max_mime_lines=getattr(settings, "max_mime_lines", d.max_mime_lines),
            trusted_authserv_ids=tuple(ids),
        )


DEFAULT_OPTIONS = ParseOptions()


@dataclass(frozen=True)
class AuthResult:
    """One result of an Authentication-Results header (RFC 8601)."""

    authserv_id: str
    method: str  # dkim, spf, dmarc, ...
    result: str  # pass, fail, none, ...
    properties: tuple[tuple[str, str], ...] = ()  # (("header.d", "example.org"), ...)
    trusted: bool = False

    def prop(self, name: str) -> str | None:
        for k, v in self.properties:
            if k == name:
                return v
        return None


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
    html: str = ""
    message_id: str | None = None
    date: datetime | None = None
    spf: str | None = None  # the SPF field as sent
    dkim: str | None = None  # the dkim field as sent
    spf_result: str | None = None  # its result, lower case: pass, fail, softfail, neutral, none, ...
    dkim_results: list[tuple[str, str]] = field(default_factory=list)  # (signing domain, result)
    authentication_results: list[AuthResult] = field(default_factory=list)  # raw mode, all of them
    sender_ip: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


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


# --------------------------------------------------------------------------------------- the bounds
MAX_HEADER_VALUE_CHARS = 16 * 1024  # any one header value, before the header parser sees it


class _BoundedPolicy(EmailPolicy):
    """``policy.default``, except that a header value is cut before it is parsed: the structured header
    parser is recursive (nested comments) and slow on long crafted values."""

    def header_fetch_parse(self, name, value):
        if isinstance(value, str) and len(value) > MAX_HEADER_VALUE_CHARS:
            value = value[:MAX_HEADER_VALUE_CHARS]
        return super().header_fetch_parse(name, value)


_POLICY = _BoundedPolicy()


class _TooComplex(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


class _BoundedParser(BytesFeedParser):
    """The standard library's feed parser, counting the MIME parts and the nesting as it creates them: the
    part over ``max_parts`` or the level over ``max_depth`` stops the parse at once (``_TooComplex``),
    before the next level's parser generator exists, so neither the part count nor the recursion grows
    past the limits. (Overrides ``FeedParser._new_message``, which every part goes through;
    tests/inbound/test_bounds.py fails if a Python version changes that.)"""

    def __init__(self, max_parts: int, max_depth: int):
        super().__init__(policy=_POLICY)
        self.max_parts, self.max_depth, self.parts = max_parts, max_depth, 0

    def _new_message(self):
        self.parts += 1
        if self.parts > self.max_parts:
            raise _TooComplex(TOO_MANY_ATTACHMENTS, f"more than {self.max_parts} MIME parts")
        if len(self._msgstack) >= self.max_depth:
            raise _TooComplex(MIME_TOO_COMPLEX, f"MIME nesting deeper than {self.max_depth} levels")
        super()._new_message()


def _line_count(raw: bytes) -> int:
    """Lines as the parser splits them (\\n, \\r and \\r\\n all end one), counted in C."""
    return raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n")


def _cut_header_block(raw: bytes, limit: int, defects: list[str]) -> bytes:
    """The message with its header block cut to ``limit`` bytes (at a line end) when it is longer."""
    head = raw[: limit + 4]
    ends = [i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0]
    if ends or len(raw) <= limit:
        return raw
    cut = raw[:limit]
    cut = cut[: max(cut.rfind(b"\n"), 0) + 1]
    rest = raw.find(b"\n\n", limit)
    rest_crlf = raw.find(b"\r\n\r\n", limit)
    starts = [i + n for i, n in ((rest, 2), (rest_crlf, 4)) if i >= 0]
    body = raw[min(starts) :] if starts else b""
    defects.append(f"headers_cut: a header block over {limit} bytes, kept {len(cut)}")
    return cut + b"\r\n" + body


MAX_DASH_LINES = 100_000  # lines beginning with "--" in one raw message (delimiter candidates)
_MAX_DELIMITER_LINE = 1000  # RFC 2046 boundaries have at most 70 characters


def _dash_lines(raw: bytes) -> list[int]:
    """The offsets of the lines that begin with ``--`` (the only places a delimiter can be), found with
    ``bytes.find``; more than MAX_DASH_LINES (a camera's email has a few dozen) is refused."""
    n = raw.count(b"\n--") + raw.count(b"\r--") + (1 if raw.startswith(b"--") else 0)
    if n > MAX_DASH_LINES:
        raise _TooComplex(MIME_TOO_COMPLEX, f"{n} lines begin with '--', limit {MAX_DASH_LINES}")
    out = [0] if raw.startswith(b"--") else []
    for needle in (b"\n--", b"\r--"):
        i = raw.find(needle)
        while i >= 0:
            out.append(i + 1)
            i = raw.find(needle, i + 1)
    return sorted(out)


def _delimiter_index(raw: bytes) -> dict[bytes, list[tuple[int, int, bool]]]:
    """Every line beginning with ``--``, by what follows the dashes (white space at the end dropped):
    ``{boundary: [(line start, start of what follows the line, is a close delimiter), ...]}`` in order. A
    line ``--X--`` is the close delimiter of X and the open one of ``X--``. Built once per message, so each
    multipart finds its delimiters by a dictionary look-up, whatever its depth."""
    index: dict[bytes, list[tuple[int, int, bool]]] = {}
    size = len(raw)
    for pos in _dash_lines(raw):
        stop = min(size, pos + 2 + _MAX_DELIMITER_LINE)
        eols = [i for i in (raw.find(b"\n", pos, stop), raw.find(b"\r", pos, stop)) if i >= 0]
        if eols:
            eol = min(eols)
            after = eol + (2 if raw.startswith(b"\r\n", eol) else 1)
        elif stop == size:
            eol = after = size
        else:
            continue  # a line too long to be a delimiter
        token = raw[pos + 2 : eol].rstrip(b" \t")
        index.setdefault(token, []).append((pos, after, False))
        if token.endswith(b"--"):
            index.setdefault(token[:-2], []).append((pos, after, True))
    return index


def _text(data: bytes) -> str:
    return data.decode("ascii", "surrogateescape")  # what the standard library's bytes parser does


def _strip_eol(raw: bytes, start: int, end: int) -> int:
    """The end of a part: the line break before a delimiter belongs to the delimiter (RFC 2046, 5.1.1)."""
    if end - start >= 2 and raw[end - 2 : end] == b"\r\n":
        return end - 2
    if end > start and raw[end - 1 : end] in (b"\n", b"\r"):
        return end - 1
    return end


class _Splitter:
    """A raw MIME message split into the standard library's EmailMessage objects without reading it line by
    line: the lines beginning with ``--`` are found and indexed once (``_delimiter_index``, ``bytes.find``);
    each header block is found with ``bytes.find`` and parsed by the standard header parser (modern policy);
    each multipart looks its delimiters up in that index, within its range; each leaf payload is kept
    as the bytes parser keeps it (ASCII with surrogate escapes), so ``get_payload(decode=True)``,
    ``get_content()`` and ``get_filename()`` work as usual. Parts are offsets into the one buffer (no
    copies per level), and are counted as they are created: the part over ``max_mime_parts`` or the level
    over ``max_mime_depth`` stops the split at once (``_TooComplex``)."""

    def __init__(self, raw: bytes, options: ParseOptions, defects: list[str]):
        self.raw, self.options, self.defects, self.parts = raw, options, defects, 0
        self.delimiters = _delimiter_index(raw)
        # header blocks of all parts together: the header parser reads line by line (~1.4 us a line)
        self.header_budget = 2 * options.max_header_bytes

    def message(self, start: int, end: int, depth: int, default_type: str | None = None) -> EmailMessage:
        self.parts += 1
        if self.parts > self.options.max_mime_parts:
            raise _TooComplex(TOO_MANY_ATTACHMENTS, f"more than {self.options.max_mime_parts} MIME parts")
        if depth >= self.options.max_mime_depth:
            raise _TooComplex(
                MIME_TOO_COMPLEX, f"MIME nesting deeper than {self.options.max_mime_depth} levels"
            )
        raw = self.raw
        if self.header_budget <= 0:
            raise _TooComplex(
                MIME_TOO_COMPLEX, f"header blocks over {2 * self.options.max_header_bytes} bytes in all"
            )
        body_start = self._head_end(start, end, min(self.options.max_header_bytes, self.header_budget))
        self.header_budget -= body_start - start
        msg = BytesHeaderParser(policy=_POLICY).parsebytes(raw[start:body_start])
        if default_type:
            msg.set_default_type(default_type)
        # a line that is not a header ends the headers: it and what follows are body (as in the stdlib)
        rest = msg.get_payload()
        if isinstance(rest, str) and rest:
            tail = rest.encode("ascii", "surrogateescape")
            if raw[body_start - len(tail) : body_start] == tail:
                body_start -= len(tail)
        if msg.get_content_maintype() == "multipart":
            self._multipart(msg, body_start, end, depth)
        elif msg.get_content_type() in ("message/rfc822", "message/global"):
            msg.set_payload(None)
            msg.attach(self.message(body_start, end, depth + 1))
        else:
            msg.set_payload(_text(raw[body_start:end]))
        return msg

    def _head_end(self, start: int, end: int, limit: int) -> int:
        """Where the body starts: after the first blank line (a header block over ``limit`` is cut at a line
        end, a defect)."""
        raw = self.raw
        if raw.startswith(b"\r\n", start, end):
            return start + 2
        if raw.startswith(b"\n", start, end):
            return start + 1
        window = min(end, start + limit + 4)
        ends = [
            (i, n)
            for i, n in ((raw.find(b"\r\n\r\n", start, window), 4), (raw.find(b"\n\n", start, window), 2))
            if i >= 0
        ]
        if ends:
            i, n = min(ends)
            return i + n
        if end - start <= limit:
            return end
        cut = raw.rfind(b"\n", start, start + limit)
        cut = cut + 1 if cut > start else start + limit
        self.defects.append(f"headers_cut: a header block over {limit} bytes, kept {cut - start}")
        return cut

    def _multipart(self, msg: EmailMessage, start: int, end: int, depth: int) -> None:
        from bisect import bisect_left
        from email import errors

        raw = self.raw
        boundary = msg.get_boundary()
        if not boundary:
            msg.defects.append(errors.NoBoundaryInMultipartDefect())
            msg.set_payload(_text(raw[start:end]))
            return
        try:
            sep = boundary.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:
            sep = boundary.encode("utf-8", "surrogateescape")
        candidates = self.delimiters.get(sep, [])
        found: list[tuple[int, int, bool]] = []  # (line start, start of what follows, is the close one)
        for entry in candidates[bisect_left(candidates, start, key=lambda e: e[0]) :]:
            if entry[0] >= end:
                break
            found.append(entry)
            if entry[2]:
                break
        if not found:
            msg.defects.append(errors.StartBoundaryNotFoundDefect())
            msg.set_payload(_text(raw[start:end]))
            return
        msg.set_payload(None)
        msg.preamble = _text(raw[start : _strip_eol(raw, start, found[0][0])]) or None
        default = "message/rfc822" if msg.get_content_subtype() == "digest" else None
        for (_, part_start, close), nxt in zip(found, found[1:] + [None], strict=True):
            if close:
                msg.epilogue = _text(raw[part_start:end]) or None
                break
            part_end = _strip_eol(raw, part_start, nxt[0]) if nxt is not None else end
            msg.attach(self.message(part_start, part_end, depth + 1, default))
        if not found[-1][2]:
            msg.defects.append(errors.CloseBoundaryNotFoundDefect())
        if not msg.is_multipart():  # only a close delimiter: no part at all
            msg.set_payload([])


def _parse_with_feedparser(raw: bytes, options: ParseOptions) -> EmailMessage:
    """The standard library's own parser, bounded: used only if the splitter fails unexpectedly. It costs
    about 1-2 us a line, so more than MAX_MIME_LINES lines are refused first."""
    lines = _line_count(raw)
    if lines > options.max_mime_lines:
        raise Rejected(MIME_TOO_COMPLEX, f"{lines} lines, limit {options.max_mime_lines}")
    parser = _BoundedParser(options.max_mime_parts, options.max_mime_depth)
    view = memoryview(raw)
    for start in range(0, len(raw), _FEED_CHUNK):
        parser.feed(bytes(view[start : start + _FEED_CHUNK]))
    return parser.close()


def parse_mime(raw: bytes, options: ParseOptions = DEFAULT_OPTIONS, defects: list[str] | None = None):
    """A raw MIME message (an EmailMessage), parsed within the bounds: header blocks cut at
    max_header_bytes (a defect); Rejected over max_mime_parts parts or max_mime_depth levels."""
    defects = defects if defects is not None else []
    try:
        try:
            return _Splitter(raw, options, defects).message(0, len(raw), 0)
        except (_TooComplex, RecursionError):
            raise
        except Exception as exc:  # noqa: BLE001 - a splitter bug must not lose the email: the stdlib's parser
            log.warning(
                "MIME splitter failed (%s: %s); the standard parser takes over", type(exc).__name__, exc
            )
            defects.append(f"mime_splitter_failed: {type(exc).__name__}")
            return _parse_with_feedparser(_cut_header_block(raw, options.max_header_bytes, defects), options)
    except _TooComplex as exc:
        raise Rejected(exc.code, exc.detail) from None
    except RecursionError:
        raise Rejected(MIME_TOO_COMPLEX, "the MIME structure nests too deep to parse") from None


def _cut(value: str, limit: int, what: str, defects: list[str], original: int | None = None) -> str:
    if len(value) <= limit and original is None:
        return value
    defects.append(
        f"{what}_cut: {original if original is not None else len(value)} "
        f"{'bytes' if original is not None else 'characters'}, kept {limit}"
    )
    return value[:limit]


def _bounded_text(form: _Form, name: str, limit: int, what: str, defects: list[str]) -> str | None:
    """A text field cut to ``limit`` characters; the bytes are cut first (4 per character at most) so that
    a 30 MB field is never decoded whole."""
    raw = form.raw(name)
    if raw is None:
        return None
    if len(raw) > limit * 4:
        text = _decode(raw[: limit * 4], _charset(form.charsets.get(name)))
        return _cut(text, limit, what, defects, original=len(raw))
    return _cut(form.text(name) or "", limit, what, defects)


# --------------------------------------------------------------------------- authenticated-sender facts
_DKIM_ENTRY = re.compile(r"^\s*@?([^\s:@{}]*)\s*:\s*([A-Za-z_-]+)\s*$")
_MAX_AUTH_CHARS = 4096


def parse_dkim(value: str | None) -> list[tuple[str, str]]:
    """SendGrid's ``dkim`` field as (signing domain, result) pairs, lower case: ``{@a.example : pass,
    @b.example : fail}`` -> [("a.example", "pass"), ("b.example", "fail")]; ``none``, empty or unreadable
    entries give nothing; a bare result (``pass``) gives ("", result), which aligns with no domain."""
    if not value:
        return []
    text = value.strip()[:_MAX_AUTH_CHARS].strip("{}").strip()
    out: list[tuple[str, str]] = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry or entry.lower() == "none":
            continue
        m = _DKIM_ENTRY.match(entry)
        if m:
            out.append((m.group(1).lower().rstrip("."), m.group(2).lower()))
        elif re.fullmatch(r"[A-Za-z_-]+", entry):
            out.append(("", entry.lower()))
    return out[:20]


def parse_spf(value: str | None) -> str | None:
    """The result word of SendGrid's ``SPF`` field (``pass``, ``softfail``, ...), lower case."""
    if not value:
        return None
    m = re.match(r"\s*([A-Za-z_-]+)", value[:200])
    return m.group(1).lower() if m else None


_AR_COMMENT = re.compile(r"\([^()]*\)")
_AR_RESINFO = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=\s*([A-Za-z0-9_-]+)(.*)$", re.S)
_AR_PROP = re.compile(r"([A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)")


def parse_authentication_results(value: str, trusted_ids: tuple[str, ...] = ()) -> list[AuthResult]:
    """One Authentication-Results header (RFC 8601) as results; ``trusted`` when its authserv-id is one of
    ``trusted_ids``. Comments are dropped; what cannot be read is skipped."""
    text = value[:_MAX_AUTH_CHARS]
    for _ in range(5):  # nested comments, a few levels; the rest of a comment is noise
        text, n = _AR_COMMENT.subn(" ", text)
        if not n:
            break
    head, _, rest = text.partition(";")
    authserv = (head.split() or [""])[0].lower()
    trusted = bool(authserv) and authserv in trusted_ids
    out = []
    for resinfo in rest.split(";")[:20]:
        m = _AR_RESINFO.match(resinfo)
        if not m:
            continue
        props = tuple((k.lower(), v.strip('"')) for k, v in _AR_PROP.findall(m.group(3))[:10])
        out.append(AuthResult(authserv, m.group(1).lower(), m.group(2).lower(), props, trusted))
    return out


def _authentication(email: InboundEmail, msg: EmailMessage, options: ParseOptions) -> None:
    """Raw mode: record the Authentication-Results headers; use the trusted ones (module docstring)."""
    try:
        values = [str(v) for n, v in msg.raw_items() if n.lower() == "authentication-results"][:10]
    except Exception:  # noqa: BLE001 - unreadable headers are a defect, not a crash
        email.defects.append("Authentication-Results unreadable")
        return
    for value in values:
        email.authentication_results.extend(parse_authentication_results(value, options.trusted_authserv_ids))
    for ar in email.authentication_results:
        if not ar.trusted:
            continue
        if ar.method == "dkim":
            domain = (ar.prop("header.d") or (ar.prop("header.i") or "").rpartition("@")[2]).lower()
            if domain and (domain, ar.result) not in email.dkim_results:
                email.dkim_results.append((domain, ar.result))
        elif ar.method == "spf" and email.spf_result is None:
            email.spf_result = ar.result


# ---------------------------------------------------------------------------------------- the modes
def parse_request(
    body: bytes,
    content_type: str | None,
    *,
    max_parts: int = 200,
    settings=None,
    options: ParseOptions | None = None,
) -> InboundEmail:
    """The InboundEmail of a SendGrid POST (either mode); Rejected when it is not one or when it is over a
    bound that refuses it (MIME parts, depth). ``options`` (or the ``settings`` they are read from) bound
    the parse; the defaults otherwise."""
    if options is None:
        options = ParseOptions.from_settings(settings) if settings is not None else DEFAULT_OPTIONS
    form = _Form(decode_form(body, content_type, max_parts=max_parts))
    if form.has("email"):
        return _parse_raw(form, options)
    if not (form.has("from") or form.has("headers") or form.has("to")):
        names = sorted({p.name for p in form.parts})[:10]
        raise Rejected(NOT_SENDGRID, f"no email, from, to or headers field (fields: {', '.join(names)})")
    return _parse_default(form, options)


def _common(form: _Form, email: InboundEmail, options: ParseOptions) -> None:
    d = email.defects
    email.sender = _bounded_text(form, "from", options.max_address_chars, "from", d)
    email.to_field = _bounded_text(form, "to", options.max_address_chars, "to", d)
    email.subject = (_bounded_text(form, "subject", options.max_subject_chars, "subject", d) or "").strip()
    email.spf = (_bounded_text(form, "SPF", _MAX_AUTH_CHARS, "SPF", d) or "").strip() or None
    if email.spf is None:
        email.spf = (_bounded_text(form, "spf", _MAX_AUTH_CHARS, "SPF", d) or "").strip() or None
    dkim = _bounded_text(form, "dkim", _MAX_AUTH_CHARS, "dkim", d)
    if dkim is None:
        dkim = _bounded_text(form, "DKIM", _MAX_AUTH_CHARS, "dkim", d)
    email.dkim = (dkim or "").strip() or None
    email.spf_result = parse_spf(email.spf)
    email.dkim_results = parse_dkim(email.dkim)
    email.sender_ip = (_bounded_text(form, "sender_ip", 100, "sender_ip", d) or "").strip() or None
    envelope = form.json("envelope", email.defects) if len(form.raw("envelope") or b"") <= 65536 else None
    if form.has("envelope") and len(form.raw("envelope") or b"") > 65536:
        email.defects.append("envelope: over 64 KB, ignored")
    if isinstance(envelope, dict):
        to = envelope.get("to")
        to = to if isinstance(to, list) else [to] if isinstance(to, str) else []
        email.envelope_to = _addresses(*[t for t in to[:50] if isinstance(t, str)])
        frm = envelope.get("from")
        email.envelope_from = frm.strip().lower()[:320] if isinstance(frm, str) and frm.strip() else None
    elif envelope is not None:
        email.defects.append("envelope: not a JSON object")


def _finish(email: InboundEmail, cc: str | None) -> InboundEmail:
    senders = _addresses(email.sender)
    email.sender_address = senders[0] if senders else None
    for addr in _addresses(email.to_field, cc) + email.envelope_to:
        if addr not in email.recipients:
            email.recipients.append(addr)
    return email


def _header_block(raw: bytes, limit: int, defects: list[str]) -> bytes:
    if len(raw) <= limit:
        return raw
    defects.append(f"headers_cut: {len(raw)} bytes, kept {limit}")
    cut = raw[:limit]
    return cut[: cut.rfind(b"\n") + 1] or cut


def _parse_default(form: _Form, options: ParseOptions) -> InboundEmail:
    email = InboundEmail(mode="parsed")
    _common(form, email, options)
    d = email.defects
    email.text = _bounded_text(form, "text", options.max_body_chars, "text", d) or ""
    email.html = _bounded_text(form, "html", options.max_body_chars, "html", d) or ""
    headers_raw = _header_block(form.raw("headers") or b"", options.max_header_bytes, d)
    try:
        hdrs = BytesHeaderParser(policy=_POLICY).parsebytes(headers_raw) if headers_raw else EmailMessage()
    except RecursionError:  # pragma: no cover - the header parser is not recursive; kept as a guard
        hdrs = EmailMessage()
        d.append("headers unreadable")
    email.message_id = _message_id(_header(hdrs, "Message-ID"))
    email.date = _date(_header(hdrs, "Date"), email.defects)
    if not email.subject:
        email.subject = _cut(_header(hdrs, "Subject") or "", options.max_subject_chars, "subject", d)
    if not email.sender:
        email.sender = _header(hdrs, "From")
    info = (
        form.json("attachment-info", email.defects)
        if len(form.raw("attachment-info") or b"") < 1 << 20
        else None
    )
    info = info if isinstance(info, dict) else {}
    files = []
    for part in form.parts:
        m = _ATTACHMENT_FIELD.match(part.name)
        if m:
            files.append((int(m.group(1)), part))
    files.sort(key=lambda item: item[0])
    declared = (form.text("attachments") or "").strip()[:20]
    if declared.isdigit() and int(declared) != len(files):
        email.defects.append(f"attachments field says {declared}, the form has {len(files)}")
    for position, (number, part) in enumerate(files, start=1):
        meta = info.get(f"attachment{number}")
        meta = meta if isinstance(meta, dict) else {}
        original = part.filename or meta.get("filename") or meta.get("name")
        original = original[:1000] if isinstance(original, str) else None
        content_id = meta.get("content-id") or None
        content_id = content_id[:900] if isinstance(content_id, str) else None
        ctype = meta.get("type") or part.content_type or None
        email.attachments.append(
            Attachment(
                index=position,
                filename=safe_filename(original),
                original_filename=original,
                content_type=ctype[:200] if isinstance(ctype, str) else None,
                data=part.data,
                content_id=content_id,
                inline=bool(content_id),
            )
        )
    return _finish(email, _bounded_text(form, "cc", options.max_address_chars, "cc", d))


def _parse_raw(form: _Form, options: ParseOptions) -> InboundEmail:
    email = InboundEmail(mode="raw")
    _common(form, email, options)
    raw = form.raw("email") or b""
    msg = parse_mime(raw, options, email.defects)
    if not raw.strip() or not msg.keys():
        raise Rejected(RAW_NOT_EMAIL, "the email field has no MIME headers")
    d = email.defects
    try:
        email.message_id = _message_id(_header(msg, "Message-ID"))
        email.date = _date(_header(msg, "Date"), d)
        email.sender = email.sender or _header(msg, "From")
        email.to_field = email.to_field or _cut(_header(msg, "To") or "", options.max_address_chars, "to", d)
        email.subject = email.subject or _cut(
            _header(msg, "Subject") or "", options.max_subject_chars, "subject", d
        )
        email.defects.extend(type(x).__name__ for x in msg.defects[:20])
        _authentication(email, msg, options)
        cc = _bounded_text(form, "cc", options.max_address_chars, "cc", d) or _header(msg, "Cc")
        _raw_parts(email, msg, options)
    except RecursionError:
        raise Rejected(MIME_TOO_COMPLEX, "a header or part nests too deep to read") from None
    return _finish(email, cc)


def _part_text(part: EmailMessage, limit: int, what: str, defects: list[str]) -> str:
    """A text part's content cut to ``limit`` characters; a long payload is cut (4 encoded characters per
    character at most, a multiple of 4 for base64) before it is decoded, so 30 MB are never decoded whole."""
    payload = part.get_payload()
    original = None
    if isinstance(payload, str) and len(payload) > limit * 4 + 4:
        original = len(payload)
        part.set_payload(payload[: limit * 4])
    try:
        text = part.get_content()
    except (LookupError, UnicodeError, AssertionError, KeyError, ValueError):
        text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return _cut(text, limit, what, defects, original=original)


def _raw_parts(email: InboundEmail, msg: EmailMessage, options: ParseOptions) -> None:
    index = 0
    d = email.defects
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
                email.text = _part_text(part, options.max_body_chars, "text", d)
            elif ctype == "text/html" and not email.html:
                email.html = _part_text(part, options.max_body_chars, "html", d)
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
                content_id=content_id.strip("<>")[:900] if content_id else None,
                inline=disposition == "inline" or (disposition is None and content_id is not None),
            )
        )
