"""Email adapter: one rendering of the alert, sent by one of three transports.

**Rendering** (:func:`render`, pure): a :class:`RenderedEmail` from a notice and the channel's config: a
subject with park, camera and what was seen; a plain-text body and an HTML body in which every dynamic value
is escaped (``html.escape``) and only http(s) links are rendered; the annotated photo inline
(``cid:alert-photo``) and attached; a map link to the camera and the time-limited link to the original photo
(``notice.photo_url``, produced by the caller with an expiry of hours). :func:`build_message` turns it into a
MIME message, :func:`sendgrid_body` into a SendGrid v3 ``mail/send`` body.

**Transports** (each ``send(rendered) -> DeliveryResult``, raising the named delivery errors):

``sendgrid``  :class:`SendGridTransport`: POST {host}/v3/mail/send with ``Authorization: Bearer <key from
              api_key_setting>`` through the official ``sendgrid`` SDK (its own HTTP client,
              ``python_http_client``; not a raw HTTP call, so not :mod:`functions.notify.http`). Non-2xx:
              429 and 5xx are transient (Retry-After kept), 401/403 name the key's setting, other 4xx
              permanent; the message keeps the status and reason, never SendGrid's body. External id:
              X-Message-Id.
``outbox``    :class:`OutboxTransport`: one RFC 5322 ``.eml`` file per message in ``outbox_dir``
              (atomically), so the local demo shows an alert without any account. External id: Message-ID.
``smtp``      :class:`SmtpTransport`: the same MIME message to ``smtp_host:smtp_port`` (optionally STARTTLS
              and login with secrets named by ``smtp_username_setting`` / ``smtp_password_setting``).
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
import smtplib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any, Literal
from urllib.error import URLError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .base import (
    AlertNotice,
    Channel,
    DeliveryResult,
    HttpSettings,
    PermanentDeliveryError,
    SecretResolver,
    TransientDeliveryError,
    is_http_url,
    parse_config,
)
from .http import error_for_status, parse_retry_after

log = logging.getLogger(__name__)

PHOTO_CID = "alert-photo"
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


class _NoHeaderLogs(logging.Filter):
    """python_http_client logs request headers (the API key) at DEBUG: drop those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "HEADERS" not in str(record.msg)


logging.getLogger("python_http_client.client").addFilter(_NoHeaderLogs())


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["sendgrid", "outbox", "smtp"] = "sendgrid"
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    from_address: str = "alerts@trapalert.local"
    from_name: str = "TrapAlert"
    reply_to: str | None = None
    subject_prefix: str = "[TrapAlert]"
    send_updates: bool = True
    attach_photo: bool = True
    # sendgrid
    api_key_setting: str = "SENDGRID_API_KEY"
    host: str = "https://api.sendgrid.com"
    # outbox
    outbox_dir: str | None = None
    # smtp
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, gt=0, lt=65536)
    smtp_starttls: bool = False
    smtp_username_setting: str | None = None
    smtp_password_setting: str | None = None
    timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not _ADDRESS.match(a.strip())]
        if bad:
            raise ValueError(f"not email addresses: {bad}")
        return [a.strip() for a in v]

    @field_validator("from_address")
    @classmethod
    def _from(cls, v: str) -> str:
        if not _ADDRESS.match(v.strip()):
            raise ValueError(f"not an email address: {v!r}")
        return v.strip()

    @model_validator(mode="after")
    def _mode(self) -> EmailConfig:
        if self.mode == "outbox" and not self.outbox_dir:
            raise ValueError("mode outbox needs outbox_dir (a directory for .eml files)")
        if self.mode == "sendgrid" and not is_http_url(self.host):
            raise ValueError("host must be an http(s) URL")
        if bool(self.smtp_username_setting) != bool(self.smtp_password_setting):
            raise ValueError("give both smtp_username_setting and smtp_password_setting, or neither")
        return self


# ------------------------------------------------------------------------------------------ content
def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def _http_url(url: str | None) -> str | None:
    return url if url and re.match(r"^https?://", url, re.I) else None


def subject_for(notice: AlertNotice, prefix: str = "[TrapAlert]") -> str:
    update = "Update: " if notice.kind == "update" else ""
    if notice.kind in ("health", "ops"):  # no detection, so no confidence to show
        subject = f"{prefix} {notice.title or notice.what_seen()} ({notice.park.name})"
    else:
        subject = (
            f"{prefix} {update}{notice.what_seen()} at {notice.camera.name} ({notice.park.name}), "
            f"{notice.max_conf:.0%}"
        )
    return _one_line(subject)[:250]


def text_body(notice: AlertNotice) -> str:
    when = notice.local_time("started")
    lines = [
        notice.title,
        "",
        notice.summary,
        "",
        f"Park:        {notice.park.name}",
        f"Camera:      {notice.camera.name}"
        + (f" (zone {notice.camera.zone})" if notice.camera.zone else ""),
        f"Seen:        {notice.what_seen()}"
        + ("" if notice.kind in ("health", "ops") else f" (max confidence {notice.max_conf:.0%})"),
        f"First photo: {when:%Y-%m-%d %H:%M:%S %Z}",
        f"Photos:      {notice.image_count}",
    ]
    if notice.camera.has_location:
        lines.append(f"Position:    {notice.camera.latitude:.5f}, {notice.camera.longitude:.5f}")
    if _http_url(notice.map_url):
        lines.append(f"Map:         {notice.map_url}")
    if _http_url(notice.photo_url):
        lines.append(f"Original photo (link expires in hours): {notice.photo_url}")
    if _http_url(notice.ops_url):
        lines.append(f"Alert:       {notice.ops_url}")
    lines += ["", f"Alert {notice.alert_id} · ref {notice.correlation_id}"]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def html_body(notice: AlertNotice, with_photo: bool) -> str:
    e = html.escape
    when = notice.local_time("started")
    rows = [
        ("Park", notice.park.name),
        ("Camera", notice.camera.name + (f" (zone {notice.camera.zone})" if notice.camera.zone else "")),
        ("Seen", f"{notice.what_seen()} (max confidence {notice.max_conf:.0%})"),
        ("First photo", f"{when:%Y-%m-%d %H:%M:%S %Z}"),
        ("Photos", str(notice.image_count)),
    ]
    if notice.camera.has_location:
        rows.append(("Position", f"{notice.camera.latitude:.5f}, {notice.camera.longitude:.5f}"))
    table = "".join(
        f'<tr><th align="left" style="padding:2px 8px 2px 0">{e(k)}</th><td>{e(v)}</td></tr>' for k, v in rows
    )
    links = []
    for label, url in (
        ("Map of the camera", notice.map_url),
        ("Original photo (link expires in hours)", notice.photo_url),
        ("Open the alert", notice.ops_url),
    ):
        if _http_url(url):
            links.append(f'<a href="{e(url or "", quote=True)}">{e(label)}</a>')
    photo = (
        f'<p><img src="cid:{PHOTO_CID}" alt="{e(notice.title, quote=True)}" '
        f'style="max-width:100%;height:auto" /></p>'
        if with_photo
        else ""
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>'
        f'{e(notice.title)}</title></head><body style="font-family:sans-serif">'
        f'<h2 style="color:#b00020">{e(notice.title)}</h2>'
        f"<p>{e(notice.summary)}</p>{photo}<table>{table}</table>"
        f"<p>{' · '.join(links)}</p>"
        f'<p style="color:#777;font-size:small">Alert {e(str(notice.alert_id))} · ref '
        f"{e(notice.correlation_id)}</p></body></html>"
    )


@dataclass(frozen=True)
class RenderedEmail:
    """What every transport sends: the rendering of one notice for one channel (no I/O)."""

    subject: str
    text: str
    html: str
    photo: bytes | None  # shown inline (cid:alert-photo) and attached again, when present
    photo_filename: str
    alert_id: int
    correlation_id: str
    kind: str


def render(notice: AlertNotice, cfg: EmailConfig) -> RenderedEmail:
    """The subject, bodies and photo of ``notice`` as this channel sends them."""
    with_photo = bool(cfg.attach_photo and notice.photo_jpeg)
    return RenderedEmail(
        subject=subject_for(notice, cfg.subject_prefix),
        text=text_body(notice),
        html=html_body(notice, with_photo),
        photo=notice.photo_jpeg if with_photo else None,
        photo_filename=notice.photo_filename,
        alert_id=notice.alert_id,
        correlation_id=_one_line(notice.correlation_id)[:200],
        kind=notice.kind,
    )


def build_message(
    email: RenderedEmail | AlertNotice, cfg: EmailConfig, message_id: str | None = None
) -> EmailMessage:
    """The rendering as a MIME message (outbox and SMTP): alternative text/HTML, related inline photo, the
    photo attached again. A notice is rendered first."""
    if isinstance(email, AlertNotice):
        email = render(email, cfg)
    msg = EmailMessage()
    msg["Subject"] = email.subject
    msg["From"] = formataddr((_one_line(cfg.from_name), cfg.from_address))
    msg["To"] = ", ".join(cfg.to)
    if cfg.cc:
        msg["Cc"] = ", ".join(cfg.cc)
    if cfg.reply_to:
        msg["Reply-To"] = cfg.reply_to
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain=cfg.from_address.split("@", 1)[1])
    msg["X-TrapAlert-Alert-Id"] = str(email.alert_id)
    msg["X-TrapAlert-Correlation-Id"] = email.correlation_id
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    if email.photo is not None:
        html_part = msg.get_payload()[1]
        html_part.add_related(
            email.photo,
            "image",
            "jpeg",
            cid=f"<{PHOTO_CID}>",
            filename=email.photo_filename,
            disposition="inline",
        )
        msg.add_attachment(email.photo, "image", "jpeg", filename=email.photo_filename)
    return msg


def sendgrid_body(email: RenderedEmail, cfg: EmailConfig) -> dict[str, Any]:
    """The rendering as a SendGrid v3 ``mail/send`` body (built with the SDK's ``Mail`` helpers)."""
    from sendgrid.helpers.mail import (
        Attachment,
        ContentId,
        CustomArg,
        Disposition,
        Email,
        FileContent,
        FileName,
        FileType,
        Mail,
        To,
    )

    mail = Mail(
        from_email=Email(cfg.from_address, _one_line(cfg.from_name)),
        to_emails=[To(a) for a in cfg.to],
        subject=email.subject,
        plain_text_content=email.text,
        html_content=email.html,
    )
    for a in cfg.cc:
        mail.personalizations[0].add_cc(Email(a))
    if cfg.reply_to:
        mail.reply_to = Email(cfg.reply_to)
    if email.photo is not None:
        b64 = base64.b64encode(email.photo).decode("ascii")
        mail.add_attachment(
            Attachment(
                FileContent(b64),
                FileName(email.photo_filename),
                FileType("image/jpeg"),
                Disposition("inline"),
                ContentId(PHOTO_CID),
            )
        )
        mail.add_attachment(
            Attachment(
                FileContent(b64),
                FileName(email.photo_filename),
                FileType("image/jpeg"),
                Disposition("attachment"),
            )
        )
    mail.add_custom_arg(CustomArg("alert_id", str(email.alert_id)))
    if email.correlation_id:
        mail.add_custom_arg(CustomArg("correlation_id", email.correlation_id))
    return mail.get()


# ---------------------------------------------------------------------------------------- transports
class SendGridTransport:
    """SendGrid's v3 API through the official SDK."""

    def __init__(self, cfg: EmailConfig, api_key: str, timeout_s: float):
        from sendgrid import SendGridAPIClient

        self.cfg = cfg
        self._timeout = timeout_s
        self._sg = SendGridAPIClient(api_key, host=cfg.host.rstrip("/"))

    def send(self, email: RenderedEmail) -> DeliveryResult:
        from python_http_client.exceptions import HTTPError

        body = sendgrid_body(email, self.cfg)
        try:
            response = self._sg.client.mail.send.post(request_body=body, timeout=self._timeout)
        except HTTPError as exc:
            headers = exc.headers or {}
            retry_after = parse_retry_after(headers.get("Retry-After") if hasattr(headers, "get") else None)
            if exc.status_code in (401, 403):
                raise PermanentDeliveryError(
                    f"SendGrid rejected the API key in setting {self.cfg.api_key_setting} "
                    f"({exc.status_code})",
                    status=exc.status_code,
                ) from None
            reason = str(getattr(exc, "reason", "") or "")
            raise error_for_status("SendGrid", exc.status_code, reason, retry_after) from None
        except TimeoutError:
            raise TransientDeliveryError("SendGrid: timed out") from None
        except (URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientDeliveryError(f"SendGrid: connection failed ({type(reason).__name__})") from None
        if not 200 <= response.status_code < 300:
            raise error_for_status("SendGrid", response.status_code)
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return DeliveryResult(external_id=message_id, state={"mode": "sendgrid", "message_id": message_id})


class OutboxTransport:
    """One ``.eml`` file per message in a directory (local demo, no account)."""

    def __init__(self, cfg: EmailConfig):
        self.cfg = cfg

    def send(self, email: RenderedEmail) -> DeliveryResult:
        msg = build_message(email, self.cfg)
        outbox = Path(self.cfg.outbox_dir or ".")
        try:
            outbox.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            name = f"{stamp}-alert{email.alert_id}-{email.kind}-{uuid.uuid4().hex[:8]}.eml"
            tmp = outbox / f".{name}.tmp"
            tmp.write_bytes(msg.as_bytes())
            os.replace(tmp, outbox / name)
        except OSError as exc:
            raise TransientDeliveryError(f"outbox {outbox}: {exc.strerror or exc}") from None
        return DeliveryResult(external_id=msg["Message-ID"], state={"mode": "outbox", "file": name})


class SmtpTransport:
    """Plain SMTP (optionally STARTTLS and login)."""

    def __init__(self, cfg: EmailConfig, credentials: tuple[str, str] | None, timeout_s: float):
        self.cfg = cfg
        self._credentials = credentials
        self._timeout = timeout_s

    def send(self, email: RenderedEmail) -> DeliveryResult:
        cfg = self.cfg
        msg = build_message(email, cfg)
        try:
            with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=self._timeout) as smtp:
                if cfg.smtp_starttls:
                    smtp.starttls()
                if self._credentials:
                    smtp.login(*self._credentials)
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentDeliveryError(
                f"SMTP login refused ({exc.smtp_code}) for {cfg.smtp_username_setting}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise TransientDeliveryError(f"SMTP {exc.smtp_code}", status=exc.smtp_code) from None
            raise PermanentDeliveryError(f"SMTP {exc.smtp_code}", status=exc.smtp_code) from None
        except smtplib.SMTPRecipientsRefused:
            raise PermanentDeliveryError("SMTP: all recipients refused") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientDeliveryError(
                f"SMTP {cfg.smtp_host}:{cfg.smtp_port}: {type(exc).__name__}"
            ) from None
        return DeliveryResult(external_id=msg["Message-ID"], state={"mode": "smtp"})


# ------------------------------------------------------------------------------------------ adapter
class EmailNotifier:
    kind = "email"
    config_model = EmailConfig

    def __init__(
        self,
        config: EmailConfig,
        *,
        api_key: str | None = None,
        smtp_credentials: tuple[str, str] | None = None,
        http: HttpSettings | None = None,
    ):
        self.config = config
        timeout = config.timeout_s or (http or HttpSettings()).timeout_s
        self.transport: SendGridTransport | OutboxTransport | SmtpTransport
        if config.mode == "sendgrid":
            self.transport = SendGridTransport(config, api_key or "", timeout)
        elif config.mode == "outbox":
            self.transport = OutboxTransport(config)
        else:
            self.transport = SmtpTransport(config, smtp_credentials, timeout)

    @classmethod
    def from_channel(cls, channel: Channel, secrets: SecretResolver, http: HttpSettings) -> EmailNotifier:
        cfg = parse_config(EmailConfig, channel)
        api_key = secrets(cfg.api_key_setting) if cfg.mode == "sendgrid" else None
        creds = None
        if cfg.mode == "smtp" and cfg.smtp_username_setting and cfg.smtp_password_setting:
            creds = (secrets(cfg.smtp_username_setting), secrets(cfg.smtp_password_setting))
        return cls(cfg, api_key=api_key, smtp_credentials=creds, http=http)

    def __repr__(self) -> str:
        return f"EmailNotifier(mode={self.config.mode}, to={len(self.config.to)} address(es))"

    def close(self) -> None:
        """Nothing to release (each send opens its own connection)."""

    def sendgrid_body(self, notice: AlertNotice) -> dict[str, Any]:
        return sendgrid_body(render(notice, self.config), self.config)

    def _send(self, notice: AlertNotice) -> DeliveryResult:
        return self.transport.send(render(notice, self.config))

    # -- the port
    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult:
        if resume is not None and resume.external_id:
            return resume
        return self._send(notice)

    def send_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult:
        if not self.config.send_updates:
            return previous
        key = notice.update_key()
        if key in previous.state.get("updates", []):
            return previous
        result = self._send(notice)
        updates = [*previous.state.get("updates", []), key][-200:]
        return DeliveryResult(
            external_id=previous.external_id or result.external_id,
            state={**previous.state, "last_message_id": result.external_id, "updates": updates},
        )
