"""Email adapter: SendGrid (the ``sendgrid`` SDK), a local outbox directory, or plain SMTP.

Every mode sends the same message: a subject with park, camera and what was seen; a plain-text body and an
HTML body in which every dynamic value is escaped (``html.escape``) and only http(s) links are rendered;
the annotated photo inline (``cid:alert-photo``) and attached; a map link to the camera and the time-limited
link to the original photo (``notice.photo_url``, produced by the caller with an expiry of hours).

``sendgrid``  POST {host}/v3/mail/send with ``Authorization: Bearer <key from api_key_setting>``. Non-2xx:
              429 and 5xx are transient (Retry-After kept), other 4xx permanent. External id: X-Message-Id.
``outbox``    writes one RFC 5322 ``.eml`` file per message into ``outbox_dir`` (atomically), so the local
              demo shows an alert without any account. External id: the Message-ID.
``smtp``      sends the same message to ``smtp_host:smtp_port`` (optionally STARTTLS and login with
              secrets named by ``smtp_username_setting`` / ``smtp_password_setting``).
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
import smtplib
import uuid
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
    error_for_status,
    is_http_url,
    parse_config,
    parse_retry_after,
)

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


def build_message(notice: AlertNotice, cfg: EmailConfig, message_id: str | None = None) -> EmailMessage:
    """The alert as a MIME message (outbox and SMTP modes): alternative text/HTML, related inline photo,
    the photo attached again."""
    with_photo = bool(cfg.attach_photo and notice.photo_jpeg)
    msg = EmailMessage()
    msg["Subject"] = subject_for(notice, cfg.subject_prefix)
    msg["From"] = formataddr((_one_line(cfg.from_name), cfg.from_address))
    msg["To"] = ", ".join(cfg.to)
    if cfg.cc:
        msg["Cc"] = ", ".join(cfg.cc)
    if cfg.reply_to:
        msg["Reply-To"] = cfg.reply_to
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain=cfg.from_address.split("@", 1)[1])
    msg["X-TrapAlert-Alert-Id"] = str(notice.alert_id)
    msg["X-TrapAlert-Correlation-Id"] = _one_line(notice.correlation_id)[:200]
    msg.set_content(text_body(notice))
    msg.add_alternative(html_body(notice, with_photo), subtype="html")
    if with_photo:
        assert notice.photo_jpeg is not None
        html_part = msg.get_payload()[1]
        html_part.add_related(
            notice.photo_jpeg,
            "image",
            "jpeg",
            cid=f"<{PHOTO_CID}>",
            filename=notice.photo_filename,
            disposition="inline",
        )
        msg.add_attachment(notice.photo_jpeg, "image", "jpeg", filename=notice.photo_filename)
    return msg


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
        self._api_key = api_key
        self._smtp_credentials = smtp_credentials
        self._timeout = config.timeout_s or (http or HttpSettings()).timeout_s
        if config.mode == "sendgrid":
            from sendgrid import SendGridAPIClient

            self._sg = SendGridAPIClient(api_key, host=config.host.rstrip("/"))

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

    # -- sendgrid
    def sendgrid_body(self, notice: AlertNotice) -> dict[str, Any]:
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

        with_photo = bool(self.config.attach_photo and notice.photo_jpeg)
        mail = Mail(
            from_email=Email(self.config.from_address, _one_line(self.config.from_name)),
            to_emails=[To(a) for a in self.config.to],
            subject=subject_for(notice, self.config.subject_prefix),
            plain_text_content=text_body(notice),
            html_content=html_body(notice, with_photo),
        )
        for a in self.config.cc:
            mail.personalizations[0].add_cc(Email(a))
        if self.config.reply_to:
            mail.reply_to = Email(self.config.reply_to)
        if with_photo:
            assert notice.photo_jpeg is not None
            b64 = base64.b64encode(notice.photo_jpeg).decode("ascii")
            mail.add_attachment(
                Attachment(
                    FileContent(b64),
                    FileName(notice.photo_filename),
                    FileType("image/jpeg"),
                    Disposition("inline"),
                    ContentId(PHOTO_CID),
                )
            )
            mail.add_attachment(
                Attachment(
                    FileContent(b64),
                    FileName(notice.photo_filename),
                    FileType("image/jpeg"),
                    Disposition("attachment"),
                )
            )
        mail.add_custom_arg(CustomArg("alert_id", str(notice.alert_id)))
        if notice.correlation_id:
            mail.add_custom_arg(CustomArg("correlation_id", notice.correlation_id[:200]))
        return mail.get()

    def _send_sendgrid(self, notice: AlertNotice) -> DeliveryResult:
        from python_http_client.exceptions import HTTPError

        body = self.sendgrid_body(notice)
        try:
            response = self._sg.client.mail.send.post(request_body=body, timeout=self._timeout)
        except HTTPError as exc:
            headers = exc.headers or {}
            retry_after = parse_retry_after(headers.get("Retry-After") if hasattr(headers, "get") else None)
            detail = (
                exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            )
            if exc.status_code in (401, 403):
                raise PermanentDeliveryError(
                    f"SendGrid rejected the API key in setting {self.config.api_key_setting} "
                    f"({exc.status_code})",
                    status=exc.status_code,
                ) from None
            raise error_for_status("SendGrid", exc.status_code, detail, retry_after) from None
        except TimeoutError:
            raise TransientDeliveryError("SendGrid: timed out") from None
        except (URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientDeliveryError(f"SendGrid: connection failed ({reason})") from None
        if not 200 <= response.status_code < 300:
            raise error_for_status("SendGrid", response.status_code)
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return DeliveryResult(external_id=message_id, state={"mode": "sendgrid", "message_id": message_id})

    # -- outbox
    def _send_outbox(self, notice: AlertNotice) -> DeliveryResult:
        msg = build_message(notice, self.config)
        outbox = Path(self.config.outbox_dir or ".")
        try:
            outbox.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            name = f"{stamp}-alert{notice.alert_id}-{notice.kind}-{uuid.uuid4().hex[:8]}.eml"
            tmp = outbox / f".{name}.tmp"
            tmp.write_bytes(msg.as_bytes())
            os.replace(tmp, outbox / name)
        except OSError as exc:
            raise TransientDeliveryError(f"outbox {outbox}: {exc.strerror or exc}") from None
        return DeliveryResult(external_id=msg["Message-ID"], state={"mode": "outbox", "file": name})

    # -- smtp
    def _send_smtp(self, notice: AlertNotice) -> DeliveryResult:
        msg = build_message(notice, self.config)
        try:
            with smtplib.SMTP(self.config.smtp_host, self.config.smtp_port, timeout=self._timeout) as smtp:
                if self.config.smtp_starttls:
                    smtp.starttls()
                if self._smtp_credentials:
                    smtp.login(*self._smtp_credentials)
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentDeliveryError(
                f"SMTP login refused ({exc.smtp_code}) for {self.config.smtp_username_setting}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise TransientDeliveryError(f"SMTP {exc.smtp_code}", status=exc.smtp_code) from None
            raise PermanentDeliveryError(f"SMTP {exc.smtp_code}", status=exc.smtp_code) from None
        except smtplib.SMTPRecipientsRefused:
            raise PermanentDeliveryError("SMTP: all recipients refused") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientDeliveryError(
                f"SMTP {self.config.smtp_host}:{self.config.smtp_port}: {exc}"
            ) from None
        return DeliveryResult(external_id=msg["Message-ID"], state={"mode": "smtp"})

    def _send(self, notice: AlertNotice) -> DeliveryResult:
        if self.config.mode == "sendgrid":
            return self._send_sendgrid(notice)
        if self.config.mode == "outbox":
            return self._send_outbox(notice)
        return self._send_smtp(notice)

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
