"""Builds SendGrid Inbound Parse POST bodies in the real format, in both modes.

Used by the tests, the benchmark (bench/inbound.py) and `trapalert simulate camera`: what it builds is what
SendGrid sends (multipart/form-data with boundary ``xYzZY``, the same field names, ``attachment-info`` and
``content-ids`` JSON, ``{@domain : pass}`` DKIM text), so the webhook is exercised as in production.

    payload = build_payload(sender="cam01@traps.example.org", to="park-x@alerts.example.org",
                            subject="CAM01 motion", images=[ImageFile("IMG_0001.JPG", jpeg_bytes)])
    httpx.post(url, content=payload.body, headers=payload.headers(signer=signer, function_key=key))
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import quote

from .signature import WebhookSigner

BOUNDARY = "xYzZY"  # the boundary SendGrid uses


@dataclass
class ImageFile:
    filename: str | None
    data: bytes
    content_type: str = "image/jpeg"
    inline: bool = False
    content_id: str | None = None


@dataclass
class Payload:
    body: bytes
    content_type: str
    message_id: str | None
    mode: str

    def headers(
        self,
        *,
        signer: WebhookSigner | None = None,
        function_key: str | None = None,
        timestamp: int | None = None,
    ) -> dict[str, str]:
        """HTTP headers to POST this payload with (signature and function key when given)."""
        out = {"Content-Type": self.content_type, "User-Agent": "Sendlib/1.0 (TrapAlert payload builder)"}
        if signer is not None:
            out.update(signer.headers(self.body, timestamp))
        if function_key is not None:
            out["x-functions-key"] = function_key
        return out


@dataclass
class _Field:
    name: str
    value: bytes
    filename: str | None = None
    content_type: str | None = None


@dataclass
class FormBuilder:
    """multipart/form-data, written the way SendGrid writes it."""

    boundary: str = BOUNDARY
    fields: list[_Field] = field(default_factory=list)

    def add(
        self, name: str, value: str | bytes, *, filename: str | None = None, content_type: str | None = None
    ) -> FormBuilder:
        self.fields.append(
            _Field(name, value.encode() if isinstance(value, str) else value, filename, content_type)
        )
        return self

    def build(self) -> bytes:
        out = bytearray()
        for f in self.fields:
            out += f"--{self.boundary}\r\n".encode()
            disposition = f'form-data; name="{f.name}"'
            if f.filename is not None:
                disposition += "; " + _filename_param(f.filename)
            out += f"Content-Disposition: {disposition}\r\n".encode()
            if f.content_type:
                out += f"Content-Type: {f.content_type}\r\n".encode()
            out += b"\r\n" + f.value + b"\r\n"
        out += f"--{self.boundary}--\r\n".encode()
        return bytes(out)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"


def _filename_param(name: str) -> str:
    if name.isascii():
        return 'filename="' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "filename*=UTF-8''" + quote(name, safe="")


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip("> ") if "@" in address else "example.org"


def build_payload(
    *,
    sender: str,
    to: str,
    subject: str,
    images: list[ImageFile] | tuple = (),
    text: str = "",
    html: str | None = None,
    mode: str = "parsed",
    message_id: str | None | bool = True,
    date: datetime | None = None,
    spf: str = "pass",
    dkim: str | None = "pass",
    envelope_from: str | None = None,
    envelope_to: list[str] | None = None,
    cc: str | None = None,
    extra_headers: dict[str, str] | None = None,
    sender_ip: str = "203.0.113.7",
    nested: bool = True,
    boundary: str = BOUNDARY,
) -> Payload:
    """A SendGrid Inbound Parse POST. ``message_id``: True for a fresh one, None/False for none, or a value.
    ``dkim``: 'pass'/'fail'/... becomes SendGrid's ``{@domain : pass}``; None leaves the field out."""
    if mode not in ("parsed", "raw"):
        raise ValueError("mode is 'parsed' or 'raw'")
    if message_id is True:
        message_id = make_msgid(domain=_domain(sender))
    elif message_id is False:
        message_id = None
    date = date or datetime.now(UTC)
    envelope = {"to": envelope_to or [to], "from": envelope_from or _address_of(sender)}
    dkim_text = None if dkim is None else f"{{@{_domain(sender)} : {dkim}}}"
    for i, img in enumerate(images, start=1):
        if img.inline and not img.content_id:
            img.content_id = f"ii_{uuid.uuid4().hex[:12]}{i}"
    form = FormBuilder(boundary=boundary)
    if mode == "raw":
        mime = _mime(sender, to, subject, text, html, images, message_id, date, cc, extra_headers, nested)
        if dkim_text is not None:
            form.add("dkim", dkim_text)
        form.add("email", mime)
        form.add("to", to).add("from", sender).add("sender_ip", sender_ip)
        form.add("envelope", json.dumps(envelope)).add("subject", subject)
        form.add("charsets", json.dumps({"to": "UTF-8", "subject": "UTF-8", "from": "UTF-8"}))
        form.add("SPF", spf)
        return Payload(form.build(), form.content_type, message_id, mode)

    header_lines = [
        "MIME-Version: 1.0",
        f"From: {sender}",
        f"Date: {format_datetime(date)}",
        f"Subject: {subject}",
        f"To: {to}",
    ]
    if cc:
        header_lines.append(f"Cc: {cc}")
    if message_id:
        header_lines.append(f"Message-ID: {message_id}")
    for k, v in (extra_headers or {}).items():
        header_lines.append(f"{k}: {v}")
    header_lines.append('Content-Type: multipart/mixed; boundary="000000000000a1b2c3"')
    form.add("headers", "\n".join(header_lines) + "\n")
    if dkim_text is not None:
        form.add("dkim", dkim_text)
    if images:
        info, cids = {}, {}
        for i, img in enumerate(images, start=1):
            entry = {"filename": img.filename, "name": img.filename, "type": img.content_type}
            if img.inline:
                entry["content-id"] = img.content_id
                cids[img.content_id] = f"attachment{i}"
            info[f"attachment{i}"] = entry
        if cids:
            form.add("content-ids", json.dumps(cids))
    form.add("to", to)
    if cc:
        form.add("cc", cc)
    if html is not None:
        form.add("html", html)
    form.add("from", sender).add("text", text).add("sender_ip", sender_ip)
    form.add("envelope", json.dumps(envelope))
    form.add("attachments", str(len(images)))
    form.add("subject", subject)
    if images:
        form.add("attachment-info", json.dumps(info))
    form.add(
        "charsets",
        json.dumps({"to": "UTF-8", "html": "UTF-8", "subject": "UTF-8", "from": "UTF-8", "text": "UTF-8"}),
    )
    form.add("SPF", spf)
    for i, img in enumerate(images, start=1):
        form.add(
            f"attachment{i}",
            img.data,
            filename=img.filename if img.filename is not None else "",
            content_type=img.content_type,
        )
    return Payload(form.build(), form.content_type, message_id, mode)


def _address_of(value: str) -> str:
    from email.utils import parseaddr

    return parseaddr(value)[1] or value


def _mime(sender, to, subject, text, html, images, message_id, date, cc, extra_headers, nested) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    if message_id:
        msg["Message-ID"] = message_id
    for k, v in (extra_headers or {}).items():
        msg[k] = v
    msg.set_content(text or " ")
    inline = [img for img in images if img.inline]
    if nested or inline or html is not None:
        body_html = (
            html
            or "<html><body>"
            + "".join(f'<img src="cid:{img.content_id}">' for img in inline)
            + "</body></html>"
        )
        msg.add_alternative(body_html, subtype="html")
        html_part = msg.get_payload()[-1]
        for img in inline:
            maintype, _, subtype = img.content_type.partition("/")
            html_part.add_related(
                img.data,
                maintype,
                subtype or "octet-stream",
                cid=f"<{img.content_id}>",
                filename=img.filename,
                disposition="inline",
            )
    for img in images:
        if img.inline:
            continue
        maintype, _, subtype = img.content_type.partition("/")
        msg.add_attachment(img.data, maintype, subtype or "octet-stream", filename=img.filename)
    return msg.as_bytes()
