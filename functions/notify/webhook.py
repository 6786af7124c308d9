"""Webhook adapter: a signed JSON POST per alert and per update (Teams/Slack bridges, custom systems).

Body (UTF-8 JSON, the exact bytes are signed)::

    {"schema_version": 1, "event": "alert.new" | "alert.update" | "alert.health" | "alert.ops",
     "delivery_id": "<alert_id>:<update key hash>", "previous_external_id": null | "...",
     "notice": {...AlertNotice without the photo bytes; the photo is notice.photo_url...}}

Headers::

    Content-Type: application/json
    X-TrapAlert-Event: alert.new
    X-TrapAlert-Delivery: <delivery_id>          (the same on every retry of one notice: deduplicate on it)
    X-TrapAlert-Timestamp: <unix seconds>
    X-TrapAlert-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

During a secret rotation the signature header may carry several ``v1=`` values (one per secret);
:func:`verify_signature` accepts any match. 2xx is success (a JSON answer's ``id`` becomes the external id);
408/425/429/5xx/timeouts are transient; other answers, redirects included (not followed), are permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .base import (
    AlertNotice,
    Channel,
    ChannelConfigError,
    DeliveryResult,
    HttpSettings,
    SecretResolver,
    is_http_url,
    parse_config,
)
from .http import Transport

SIGNATURE_HEADER = "X-TrapAlert-Signature"
TIMESTAMP_HEADER = "X-TrapAlert-Timestamp"
EVENT_HEADER = "X-TrapAlert-Event"
DELIVERY_HEADER = "X-TrapAlert-Delivery"
_RESERVED = {h.lower() for h in (SIGNATURE_HEADER, TIMESTAMP_HEADER, EVENT_HEADER, DELIVERY_HEADER)} | {
    "content-type",
    "content-length",
    "host",
}


class _SecretUrlFilter(logging.Filter):
    """httpx logs every request URL at INFO; a URL that came from a secret setting (Slack/Teams incoming
    webhooks carry their key in the path) is shown as scheme://host/<redacted>."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()
        self._lock = threading.Lock()

    def add(self, url: str) -> None:
        with self._lock:
            self.urls.add(url)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls and isinstance(record.args, tuple):
            args = []
            for a in record.args:
                text = str(a)
                if any(text.startswith(u) or u.startswith(text) for u in self.urls):
                    parts = httpx.URL(text)
                    a = f"{parts.scheme}://{parts.host}/<redacted>"
                args.append(a)
            record.args = tuple(args)
        return True


_secret_urls = _SecretUrlFilter()
logging.getLogger("httpx").addFilter(_secret_urls)


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    url_setting: str | None = Field(
        default=None, description="app setting holding the URL, when it is secret"
    )
    secret_setting: str = Field(description="name of the app setting holding the HMAC secret")
    headers: dict[str, str] = Field(default_factory=dict, description="extra, non-secret headers")
    send_updates: bool = True
    timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not is_http_url(v):
            raise ValueError("must be an http(s) URL")
        return v

    @model_validator(mode="after")
    def _one_url(self) -> WebhookConfig:
        if bool(self.url) == bool(self.url_setting):
            raise ValueError("give exactly one of url and url_setting")
        return self

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        clash = sorted(k for k in v if k.lower() in _RESERVED)
        if clash:
            raise ValueError(f"headers set by TrapAlert cannot be overridden: {clash}")
        bad = sorted(
            k for k, val in v.items() if "\n" in val or "\r" in val or not re.match(r"^[!-9;-~]+$", k)
        )
        if bad:
            raise ValueError(f"invalid header names or values: {bad}")
        return v


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_headers(secret: str | bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {SIGNATURE_HEADER: f"t={ts},v1={sign(secret, ts, body)}", TIMESTAMP_HEADER: str(ts)}


def verify_signature(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """For receivers: True when ``body`` (the raw bytes) carries a valid, fresh TrapAlert signature.

    ``headers`` may be any mapping (names compared case-insensitively). The timestamp inside the signature
    header is the one signed; it must be within ``tolerance_s`` of ``now`` (replay protection), and if
    ``X-TrapAlert-Timestamp`` is present it must agree.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    header = lower.get(SIGNATURE_HEADER.lower())
    if not header:
        return False
    ts: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                ts = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value.strip().lower())
    if ts is None or not candidates:
        return False
    sent_ts = lower.get(TIMESTAMP_HEADER.lower())
    if sent_ts is not None and sent_ts.strip() != str(ts):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)


class WebhookNotifier:
    kind = "webhook"
    config_model = WebhookConfig

    def __init__(
        self, config: WebhookConfig, secret: str, http: HttpSettings | None = None, url: str | None = None
    ):
        http = http or HttpSettings()
        self.config = config
        self._secret = secret
        self._url = url or config.url or ""
        if not is_http_url(self._url):
            raise ChannelConfigError(
                f"webhook: the URL in setting {config.url_setting} is not an http(s) URL"
            )
        if config.url_setting:
            _secret_urls.add(self._url)
        # the one HTTP transport (redirects are never followed); a URL from a secret setting is redacted
        self._transport = Transport(
            "webhook",
            http,
            timeout_s=config.timeout_s,
            secrets=[secret, self._url if config.url_setting else ""],
        )

    @classmethod
    def from_channel(cls, channel: Channel, secrets: SecretResolver, http: HttpSettings) -> WebhookNotifier:
        cfg = parse_config(WebhookConfig, channel)
        url = secrets(cfg.url_setting) if cfg.url_setting else cfg.url
        return cls(cfg, secrets(cfg.secret_setting), http, url=url)

    def __repr__(self) -> str:
        where = self.config.url or f"<url in {self.config.url_setting}>"
        return f"WebhookNotifier({where})"

    def close(self) -> None:
        self._transport.close()

    @staticmethod
    def delivery_id(notice: AlertNotice) -> str:
        return f"{notice.alert_id}:{hashlib.sha256(notice.update_key().encode()).hexdigest()[:16]}"

    def body(self, notice: AlertNotice, previous: DeliveryResult | None) -> bytes:
        doc: dict[str, Any] = {
            "schema_version": 1,
            "event": f"alert.{notice.kind}",
            "delivery_id": self.delivery_id(notice),
            "previous_external_id": previous.external_id if previous else None,
            "notice": notice.public_dict(),
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def _post(self, notice: AlertNotice, previous: DeliveryResult | None) -> DeliveryResult:
        body = self.body(notice, previous)
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            EVENT_HEADER: f"alert.{notice.kind}",
            DELIVERY_HEADER: self.delivery_id(notice),
            **signature_headers(self._secret, body),
        }
        response = self._transport.request("POST", self._url, what="POST", content=body, headers=headers)
        external_id = self.delivery_id(notice)
        try:
            answer = response.json()
            if isinstance(answer, dict) and isinstance(answer.get("id"), str | int):
                external_id = str(answer["id"])
        except ValueError:
            pass
        return DeliveryResult(external_id=external_id, state={"delivery_id": self.delivery_id(notice)})

    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult:
        if resume is not None and resume.external_id:
            return resume
        return self._post(notice, None)

    def send_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult:
        if not self.config.send_updates:
            return previous
        result = self._post(notice, previous)
        return DeliveryResult(
            external_id=previous.external_id or result.external_id,
            state={**previous.state, "last_delivery_id": result.state["delivery_id"]},
        )
