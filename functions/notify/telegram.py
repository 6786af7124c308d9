"""Telegram: alerts to a chat (a ranger, a group, a channel) through a bot of the Telegram Bot API.

One channel is one chat: an audience (the rangers' group, the public group of a park, a warden) is a chat,
and each chat gets its own channel with its own ``people_photos`` (functions/notify/privacy.py).

Requests (https://core.telegram.org/bots/api, sections "Making requests", "sendPhoto", "sendMessage",
"ReplyParameters", "ResponseParameters"), relative to ``api_root`` (default https://api.telegram.org):

* ``POST /bot<token>/sendPhoto``: multipart/form-data with ``chat_id``, the ``photo`` file part (the
  annotated JPEG), ``caption`` (at most 1024 characters) and ``parse_mode=HTML``;
* ``POST /bot<token>/sendMessage`` (JSON: ``chat_id``, ``text`` of at most 4096 characters,
  ``parse_mode``, ``link_preview_options``) when the notice has no photo;
* an update (a new photo of the same alert) replies to the alert's first message: ``reply_parameters =
  {"message_id": <first>, "allow_sending_without_reply": true}``; the first message id is kept in
  ``DeliveryResult.state["message_id"]``.

Answers are ``{"ok": true, "result": <Message>}`` or ``{"ok": false, "error_code", "description",
"parameters"}``. 429 carries ``parameters.retry_after`` (seconds), honoured like ``Retry-After``;
400 with ``parameters.migrate_to_chat_id`` means the group became a supergroup with a new id. A user must
press *Start* in the bot's chat before the bot may write to them (otherwise 403), and a bot must be a
member of a group or an administrator of a channel to post there.

The token is part of the URL path: it is redacted from every error message and from httpx's request log.
"""

from __future__ import annotations

import html
import json
import logging
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .base import (
    AlertNotice,
    Channel,
    DeliveryResult,
    HttpSettings,
    PermanentDeliveryError,
    SecretResolver,
    TransientDeliveryError,
    http_url,
    parse_config,
)
from .http import Transport, parse_retry_after

CAPTION_MAX = 1024
TEXT_MAX = 4096
_TOKEN_IN_PATH = re.compile(r"/bot[^/\s]+/")


class _TokenPathFilter(logging.Filter):
    """httpx logs each request URL at INFO: the bot token in ``/bot<token>/`` is replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _TOKEN_IN_PATH.sub("/bot<redacted>/", a) if isinstance(a, str) else _redact_url(a)
                for a in record.args
            )
        return True


def _redact_url(value: Any) -> Any:
    text = str(value)
    return _TOKEN_IN_PATH.sub("/bot<redacted>/", text) if "/bot" in text else value


logging.getLogger("httpx").addFilter(_TokenPathFilter())


class TelegramConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chat_id: int | str = Field(description="numeric chat id (groups are negative) or @channelusername")
    token_setting: str = Field(description="name of the app setting holding the bot token (BotFather)")
    api_root: str = "https://api.telegram.org"
    send_updates: bool = True
    silent_updates: bool = True  # updates arrive without sound (disable_notification)
    timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("api_root")
    @classmethod
    def _root(cls, v: str) -> str:
        return http_url(v, "https://api.telegram.org")

    @field_validator("chat_id")
    @classmethod
    def _chat(cls, v: int | str) -> int | str:
        if isinstance(v, str):
            v = v.strip()
            if re.fullmatch(r"-?\d{1,20}", v):
                return int(v)
            if not re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}", v):
                raise ValueError("a numeric chat id (e.g. -1001234567890) or @channelusername")
        return v


def _caption(notice: AlertNotice, limit: int) -> str:
    """The HTML text of a notice: title, summary, when and where, links; cut to ``limit`` characters."""
    e = html.escape
    when = notice.local_time("updated" if notice.kind == "update" else "started")
    lines = [
        f"<b>{'Update: ' if notice.kind == 'update' else ''}{e(notice.title)}</b>",
        e(notice.summary) if notice.summary else "",
        f"{e(notice.camera.name)} · {e(notice.park.name)} · {when:%Y-%m-%d %H:%M %Z}",
    ]
    links = [
        f'<a href="{e(url, quote=True)}">{label}</a>'
        for label, url in (("map", notice.map_url), ("photo", notice.photo_url), ("console", notice.ops_url))
        if url and url.startswith(("https://", "http://"))
    ]
    if links:
        lines.append(" · ".join(links))
    text = "\n".join(line for line in lines if line)
    if len(text) <= limit:
        return text
    # too long (a huge summary): drop markup rather than cut a tag in half
    plain = html.escape(html.unescape(re.sub(r"<[^>]+>", "", text)))
    return plain[: limit - 1] + "…"


class TelegramNotifier:
    kind = "telegram"
    config_model = TelegramConfig

    def __init__(self, config: TelegramConfig, token: str, http: HttpSettings):
        self.config = config
        self._token = token
        self._transport = Transport(
            "Telegram",
            http,
            timeout_s=config.timeout_s,
            base_url=f"{config.api_root}/bot{token}",
            secrets=[token],
        )

    @classmethod
    def from_channel(cls, channel: Channel, secrets: SecretResolver, http: HttpSettings) -> TelegramNotifier:
        cfg = parse_config(TelegramConfig, channel)
        return cls(cfg, secrets(cfg.token_setting), http)

    def __repr__(self) -> str:
        return f"TelegramNotifier(chat {self.config.chat_id})"

    def close(self) -> None:
        self._transport.close()

    # ------------------------------------------------------------------ the port
    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult:
        if resume is not None and resume.state.get("message_id"):
            return resume  # the message was sent; only recording it failed
        message = self._send(notice, reply_to=None, silent=False)
        return DeliveryResult(
            external_id=str(message["message_id"]),
            state={"chat_id": self.config.chat_id, "message_id": message["message_id"], "updates": []},
        )

    def send_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult:
        if not self.config.send_updates:
            return previous
        state = dict(previous.state)
        key = notice.update_key()
        if key in state.get("updates", []):
            return previous
        first = state.get("message_id")
        message = self._send(notice, reply_to=first, silent=self.config.silent_updates)
        if first is None:  # no first message known (an older record): this one becomes it
            state["message_id"] = message["message_id"]
        state["updates"] = [*state.get("updates", []), key][-20:]
        state["chat_id"] = self.config.chat_id
        return DeliveryResult(external_id=previous.external_id or str(message["message_id"]), state=state)

    # ------------------------------------------------------------------ requests
    def _send(self, notice: AlertNotice, *, reply_to: int | None, silent: bool) -> dict[str, Any]:
        common: dict[str, Any] = {"chat_id": self.config.chat_id, "parse_mode": "HTML"}
        if silent:
            common["disable_notification"] = True
        reply = {"message_id": reply_to, "allow_sending_without_reply": True} if reply_to else None
        if notice.photo_jpeg:
            data = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in common.items()}
            data["caption"] = _caption(notice, CAPTION_MAX)
            if reply:
                data["reply_parameters"] = json.dumps(reply)
            return self._call(
                "sendPhoto",
                "send photo",
                data=data,
                files={"photo": (notice.photo_filename, notice.photo_jpeg, "image/jpeg")},
            )
        body = {**common, "text": _caption(notice, TEXT_MAX), "link_preview_options": {"is_disabled": True}}
        if reply:
            body["reply_parameters"] = reply
        return self._call("sendMessage", "send message", json=body)

    def _call(self, method: str, what: str, **kwargs: Any) -> dict[str, Any]:
        response = self._transport.request(
            "POST",
            method,
            what=what,
            accept=(400, 429),
            hint="check chat_id; a user must press Start in the bot's chat, a group must have the bot as a "
            "member, a channel as an administrator",
            **kwargs,
        )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise TransientDeliveryError(f"Telegram {what}: the answer ({response.status_code}) is not JSON")
        params = answer.get("parameters") if isinstance(answer.get("parameters"), dict) else {}
        if response.status_code == 429:
            retry_after = params.get("retry_after")
            if not isinstance(retry_after, int | float):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientDeliveryError(
                f"Telegram {what} answered 429 Too Many Requests (retry after {retry_after} s)",
                retry_after=retry_after,
                status=429,
            )
        if response.status_code == 400:
            migrated = params.get("migrate_to_chat_id")
            fix = (
                f"the group became a supergroup: set chat_id to {migrated}"
                if migrated
                else "check chat_id (a user must press Start in the bot's chat first)"
            )
            raise PermanentDeliveryError(f"Telegram {what} answered 400 Bad Request: {fix}", status=400)
        result = answer.get("result")
        if not answer.get("ok") or not isinstance(result, dict) or "message_id" not in result:
            raise PermanentDeliveryError(f"Telegram {what}: unexpected answer (no message)")
        return result
