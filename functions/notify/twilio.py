"""SMS and WhatsApp alerts through Twilio, with the official ``twilio`` package.

One kind, ``twilio``, with two channel types (``"channel"`` in the config): ``sms`` (a short text with a
time-limited link to the photo) and ``whatsapp`` (the text with the photo as media: Twilio fetches
``MediaUrl``). (One kind, not ``sms``/``whatsapp`` kinds, so that a park's own ``sms`` plugin registered as
an entry point keeps its name.) Each channel sends to a list of numbers (``to``, E.164; ``whatsapp:`` is
added for WhatsApp) from one Twilio number or WhatsApp sender
(``from_number``) or a Messaging Service (``messaging_service_sid``).

The twilio client builds the request (``POST {api_root}/2010-04-01/Accounts/{AccountSid}/Messages.json``,
form fields ``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``MediaUrl``; HTTP basic auth with the
Account SID or an API key SID and its secret; see the Message resource of the Twilio API reference). It
sends it through :class:`TransportHttpClient`, a ``twilio.http.HttpClient`` that hands every request to the
project's one HTTP transport (functions/notify/http.py: timeouts, Retry-After, named errors, secrets
redacted), so that ``api_root`` can point the client at a stand-in and errors look like every adapter's.

What may leave depends on the channel's ``people_photos`` (functions/notify/privacy.py): the photo link
is the *original* photo, so SMS and WhatsApp carry it only with ``as_is``; with ``blurred`` (the default for
these public-facing kinds) and ``none`` they send the text and the console link. (Twilio needs a public URL
for media, and only the original photo has one.)

A message cannot be recalled and Twilio has no idempotency key: each number's message SID is kept in the
result's state (and in the ``partial`` of a failure), so a retry sends only to the numbers that did not get
theirs. A timeout after Twilio accepted a message can still mean that number gets it twice.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from .base import (
    AlertNotice,
    Channel,
    DeliveryError,
    DeliveryResult,
    HttpSettings,
    PermanentDeliveryError,
    SecretResolver,
    http_url,
    parse_config,
)
from .http import Transport

log = logging.getLogger(__name__)

TWILIO_ROOT = "https://api.twilio.com"
SMS_MAX = 320  # two SMS segments of GSM-7 text
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def mask_number(number: str) -> str:
    """A phone number as it may appear in errors and logs (``+2782…567``)."""
    digits = number.removeprefix("whatsapp:")
    return digits[:4] + "…" + digits[-3:] if len(digits) > 8 else "…"


class TwilioConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms", "whatsapp"] = "sms"
    account_sid: str = Field(description="the Account SID (AC...), not a secret")
    key_sid: str | None = Field(default=None, description="an API key SID (SK...); else the Account SID")
    auth_token_setting: str = Field(description="app setting with the auth token (or the API key secret)")
    from_number: str | None = Field(default=None, description="a Twilio number / WhatsApp sender, E.164")
    messaging_service_sid: str | None = None
    to: list[str] = Field(min_length=1, max_length=50)
    api_root: str = TWILIO_ROOT
    send_updates: bool = False  # each message costs money and wakes someone: off unless asked for
    timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("account_sid")
    @classmethod
    def _account(cls, v: str) -> str:
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", v):
            raise ValueError("an Account SID: AC followed by 32 hex digits (Twilio console, Account Info)")
        return v

    @field_validator("key_sid")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"SK[0-9a-fA-F]{32}", v):
            raise ValueError("an API key SID: SK followed by 32 hex digits")
        return v

    @field_validator("messaging_service_sid")
    @classmethod
    def _service(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"MG[0-9a-fA-F]{32}", v):
            raise ValueError("a Messaging Service SID: MG followed by 32 hex digits")
        return v

    @field_validator("from_number")
    @classmethod
    def _from(cls, v: str | None) -> str | None:
        if v is not None and not _E164.match(v.removeprefix("whatsapp:")):
            raise ValueError("an E.164 number such as +14155238886")
        return v

    @field_validator("to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        bad = [mask_number(n) for n in v if not _E164.match(n.removeprefix("whatsapp:"))]
        if bad:
            raise ValueError(f"numbers must be E.164 (+<country><number>): {', '.join(bad)}")
        return list(dict.fromkeys(v))

    @field_validator("api_root")
    @classmethod
    def _root(cls, v: str) -> str:
        return http_url(v, TWILIO_ROOT)

    @model_validator(mode="after")
    def _sender(self) -> TwilioConfig:
        if bool(self.from_number) == bool(self.messaging_service_sid):
            raise ValueError("give exactly one of from_number and messaging_service_sid")
        return self


class TransportHttpClient(HttpClient):
    """A ``twilio.http.HttpClient`` that sends through :class:`functions.notify.http.Transport`.

    The twilio client builds full URLs on ``https://api.twilio.com``; they are re-based on ``api_root``.
    A 4xx is raised here with Twilio's numeric error code (never the answer's text, which echoes numbers
    and message bodies)."""

    def __init__(self, transport: Transport, api_root: str = TWILIO_ROOT, *, what: str = "request"):
        super().__init__(log, False, None)
        self._transport = transport
        self._root = api_root.rstrip("/")
        self.what = what

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if uri.startswith(TWILIO_ROOT):
            uri = self._root + uri[len(TWILIO_ROOT) :]
        kwargs: dict[str, Any] = {"params": params or None, "headers": headers, "auth": auth}
        if headers and "json" in headers.get("Content-Type", ""):
            kwargs["json"] = data
        else:
            kwargs["data"] = data
        if timeout is not None:
            kwargs["timeout"] = timeout
        response = self._transport.request(
            method,
            uri,
            what=self.what,
            accept=range(400, 429),
            **kwargs,
        )
        if response.status_code >= 400:
            code = None
            try:
                body = response.json()
                code = body.get("code") if isinstance(body, dict) else None
            except ValueError:
                pass
            code_text = (
                f", Twilio error {code} (https://www.twilio.com/docs/errors/{code})"
                if isinstance(code, int)
                else ""
            )
            fix = (
                ": check account_sid, key_sid and the auth token setting"
                if response.status_code in (401, 403)
                else ""
            )
            raise PermanentDeliveryError(
                f"Twilio {self.what} answered {response.status_code}{code_text}{fix}",
                status=response.status_code,
            )
        return TwilioResponse(response.status_code, response.text, response.headers)


class TwilioNotifier:
    """The ``twilio`` kind: :class:`SmsNotifier` or :class:`WhatsAppNotifier` after the config's channel."""

    kind = "twilio"
    channel_type: ClassVar[Literal["sms", "whatsapp"]] = "sms"
    config_model = TwilioConfig

    def __init__(self, config: TwilioConfig, secret: str, http: HttpSettings):
        self.config = config
        self._transport = Transport("Twilio", http, timeout_s=config.timeout_s, secrets=[secret])
        self._http_client = TransportHttpClient(self._transport, config.api_root)
        self._client = Client(
            username=config.key_sid or config.account_sid,
            password=secret,
            account_sid=config.account_sid,
            http_client=self._http_client,
            environment={},  # TWILIO_REGION / TWILIO_EDGE of the process must not move the requests
        )

    @classmethod
    def from_channel(cls, channel: Channel, secrets: SecretResolver, http: HttpSettings) -> TwilioNotifier:
        cfg = parse_config(TwilioConfig, channel)
        impl = WhatsAppNotifier if cfg.channel == "whatsapp" else SmsNotifier
        return impl(cfg, secrets(cfg.auth_token_setting), http)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.config.to)} numbers)"

    def close(self) -> None:
        self._transport.close()

    # ------------------------------------------------------------------ addressing
    def address(self, number: str) -> str:
        if self.channel_type == "whatsapp" and not number.startswith("whatsapp:"):
            return f"whatsapp:{number}"
        return number

    # ------------------------------------------------------------------ the port
    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult:
        sent = dict((resume.state.get("messages") if resume else None) or {})
        state = self._send_all(notice, sent, {"messages": sent, "updates": []})
        first = next(iter(state["messages"].values()), None)
        return DeliveryResult(external_id=first, state=state)

    def send_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult:
        if not self.config.send_updates:
            return previous
        key = notice.update_key()
        state = {**previous.state}
        if key in state.get("updates", []):
            return previous
        pending = dict(state.get("pending_update", {}).get(key, {}))
        done = self._send_all(notice, pending, state, update_key=key)
        done.pop("pending_update", None)
        done["updates"] = [*state.get("updates", []), key][-20:]
        return DeliveryResult(external_id=previous.external_id, state=done)

    def _send_all(
        self, notice: AlertNotice, sent: dict[str, str], state: dict[str, Any], update_key: str | None = None
    ) -> dict[str, Any]:
        """Send to every number not in ``sent`` (number -> SID); a failure carries what was sent."""
        body = self.body(notice)
        media = self.media(notice)
        for number in self.config.to:
            if number in sent:
                continue
            self._http_client.what = f"send {self.channel_type} to {mask_number(number)}"
            try:
                message = self._client.api.v2010.account.messages.create(
                    to=self.address(number),
                    from_=self.address(self.config.from_number) if self.config.from_number else None,
                    messaging_service_sid=self.config.messaging_service_sid,
                    body=body,
                    media_url=media or None,
                )
            except DeliveryError as exc:
                if sent:
                    partial = dict(state)
                    if update_key is None:
                        partial["messages"] = dict(sent)
                    else:
                        partial["pending_update"] = {update_key: dict(sent)}
                    exc.partial = DeliveryResult(
                        external_id=next(iter(partial.get("messages", {}).values()), None), state=partial
                    )
                raise
            sent[number] = message.sid
        if update_key is None:
            return {**state, "messages": sent}
        return dict(state)

    # ------------------------------------------------------------------ content
    def lines(self, notice: AlertNotice) -> list[str]:
        when = notice.local_time("updated" if notice.kind == "update" else "started")
        head = ("Update: " if notice.kind == "update" else "") + notice.title
        return [head, f"{notice.camera.name}, {when:%d %b %H:%M %Z}"]

    def body(self, notice: AlertNotice) -> str:  # pragma: no cover - the two subclasses define it
        raise NotImplementedError

    def media(self, notice: AlertNotice) -> list[str]:
        return []


class SmsNotifier(TwilioNotifier):
    """``sms``: a short text (at most two segments of plain text) with the photo link and the console link."""

    channel_type = "sms"

    def body(self, notice: AlertNotice) -> str:
        links = [u for u in (notice.photo_url, notice.ops_url) if u]
        text = " ".join(self.lines(notice))
        room = SMS_MAX - sum(len(u) + 1 for u in links)
        if room < 20:  # a very long link: the console link only
            links = [u for u in (notice.ops_url,) if u]
            room = SMS_MAX - sum(len(u) + 1 for u in links)
        if len(text) > room:
            text = text[: max(0, room - 1)].rstrip() + "…"
        return " ".join([text, *links])


class WhatsAppNotifier(TwilioNotifier):
    """``whatsapp``: the text with the photo as media (``MediaUrl``) when the channel may show it."""

    channel_type = "whatsapp"

    def body(self, notice: AlertNotice) -> str:
        parts = [*self.lines(notice)]
        if notice.summary:
            parts.append(notice.summary)
        if notice.map_url:
            parts.append(f"Map: {notice.map_url}")
        if notice.ops_url:
            parts.append(f"Console: {notice.ops_url}")
        return "\n".join(parts)[:1500]

    def media(self, notice: AlertNotice) -> list[str]:
        return [notice.photo_url] if notice.photo_url else []
