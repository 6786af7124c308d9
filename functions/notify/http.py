"""The one HTTP transport of every channel adapter (EarthRanger, CMORE, webhook, SendGrid, Telegram, ...).

An adapter builds one :class:`Transport` per notifier and calls :meth:`Transport.request`; it gets back a
2xx ``httpx.Response`` or one of the named errors of :mod:`functions.notify.base`:

* a timeout or a transport failure (refused, reset, DNS, broken answer): :class:`TransientDeliveryError`,
  with ``ambiguous`` set when the request may have been carried out by the server (see :func:`ambiguous`);
* 401 / 403: :class:`PermanentDeliveryError` (the credentials are wrong or lack a permission);
* 408, 425, 429, 5xx: :class:`TransientDeliveryError` with ``retry_after`` from the ``Retry-After`` header
  (delta-seconds or HTTP-date); the queue's retry mechanism (functions/middleware/retry.py) honours it;
* any other non-2xx (3xx included: redirects are never followed) :class:`PermanentDeliveryError`.

Error messages carry the service, what was being done, the status and a short reason: the HTTP reason phrase
or a known error code of the answer (``{"code": "invalid_token"}``), never the remote body, which may echo
what we sent or hold anything (``last_error`` is shown on the ops page and in the CLI). Secret values handed
to the transport (``secrets=``) are redacted from every message it builds.

Statuses an adapter handles itself (EarthRanger's 409 "file already received", CMORE's 401 that asks for a
new login) are passed in ``accept=`` and come back as responses.
"""

from __future__ import annotations

import http as _http
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .base import (
    DeliveryError,
    HttpSettings,
    PermanentDeliveryError,
    TransientDeliveryError,
    redact,
    tls_context,
)

TRANSIENT_STATUSES = frozenset({408, 425, 429})
AMBIGUOUS_STATUSES = frozenset({502, 504})  # a gateway answered: the upstream may have finished the request
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,47}$")
_CODE_KEYS = ("code", "error_code", "error", "errorCode", "status_code_name")


def parse_retry_after(value: str | None, cap: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date), None if absent or unparseable; capped at
    ``cap`` when given."""
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
        if seconds < 0:
            return None
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())
    return seconds if cap is None else min(cap, seconds)


def reason_of(response: httpx.Response) -> str:
    """A short reason for a non-2xx answer that cannot leak the remote body: a known error code of a JSON
    answer (a single token such as ``invalid_token``, ``rate_limited``), else the HTTP reason phrase."""
    code = None
    if "json" in (response.headers.get("Content-Type") or "") and len(response.content) <= 65536:
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key in _CODE_KEYS:
                value = data.get(key)
                if isinstance(value, str) and _CODE.match(value):
                    code = value
                    break
    if code:
        return code
    try:
        return _http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return (response.reason_phrase or "").strip()[:40] or "unknown status"


def error_for_status(
    service: str,
    status: int,
    reason: str = "",
    retry_after: float | None = None,
    *,
    hint: str = "",
) -> DeliveryError:
    """The error a non-2xx answer means: 408/425/429/5xx transient (502/504 ambiguous), 401/403 and other
    4xx (and 3xx) permanent. ``reason`` must be short and safe (see :func:`reason_of`); ``hint`` says what
    to fix."""
    reason = re.sub(r"\s+", " ", reason or "").strip()[:80]
    msg = f"{service} answered {status}" + (f" {reason}" if reason else "") + (f": {hint}" if hint else "")
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientDeliveryError(
            msg, retry_after=retry_after, status=status, ambiguous=status in AMBIGUOUS_STATUSES
        )
    return PermanentDeliveryError(msg, status=status)


def error_for_response(
    service: str, response: httpx.Response, *, hint: str = "", secrets: Sequence[str] = ()
) -> DeliveryError:
    """The named error of a non-2xx ``response`` (status, short reason, Retry-After), secrets redacted."""
    err = error_for_status(
        service,
        response.status_code,
        reason_of(response),
        parse_retry_after(response.headers.get("Retry-After")),
        hint=hint,
    )
    if secrets:
        err.args = (redact(str(err), *secrets),)
    return err


def body_of(response: httpx.Response) -> Any:
    """An answer's JSON; None for an empty body (write endpoints of some services send one), the raw text
    when the body is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def ambiguous(exc: BaseException) -> bool:
    """Whether a failed request may have been carried out by the server anyway.

    Yes: a read/write timeout, a connection that broke after the request was sent, a broken answer, and a
    502/504 from a gateway. No: a refused connection, a connect or pool timeout, a name that does not resolve
    (the request never left), and every answer the service gave itself (4xx, 429, 500, 503).
    Works on httpx exceptions and on the errors :class:`Transport` raises.
    """
    if isinstance(exc, DeliveryError):
        return bool(getattr(exc, "ambiguous", False)) or exc.status in AMBIGUOUS_STATUSES
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout | httpx.ConnectError):
        return False
    return isinstance(
        exc, httpx.TimeoutException | httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError
    )


class Transport:
    """An httpx client with the process's TLS context, the project's User-Agent and timeouts, whose
    failures are the named delivery errors. One per notifier; ``close()`` releases it."""

    def __init__(
        self,
        service: str,
        http: HttpSettings,
        *,
        timeout_s: float | None = None,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
    ):
        self.service = service
        self._secrets: list[str] = [s for s in secrets if s]
        kwargs: dict[str, Any] = {}
        if base_url:
            kwargs["base_url"] = base_url.rstrip("/") + "/"
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout_s or http.timeout_s, connect=http.connect_timeout_s),
            headers={"User-Agent": http.user_agent, **(headers or {})},
            verify=tls_context(),
            follow_redirects=False,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"Transport({self.service})"

    def add_secret(self, value: str | None) -> None:
        """Redact ``value`` (a token obtained at run time) from the messages of later errors too."""
        if value and value not in self._secrets:
            self._secrets.append(value)

    def scrub(self, text: str) -> str:
        return redact(text, *self._secrets)

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str = "",
        accept: Collection[int] = (),
        hint: str = "",
        **httpx_kwargs: Any,
    ) -> httpx.Response:
        """Send one request; a 2xx answer (or one whose status is in ``accept``) is returned, everything
        else raised as a named error. ``what`` ("create event") and ``hint`` ("check event_type") go into
        the error message. A relative ``url`` is resolved against ``base_url``."""
        label = f"{self.service} {what}".strip()
        if self.client.base_url and not url.startswith(("http://", "https://")):
            url = url.lstrip("/")
        try:
            response = self.client.request(method, url, **httpx_kwargs)
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(
                f"{label}: timed out ({type(exc).__name__})", ambiguous=ambiguous(exc)
            ) from None
        except httpx.TransportError as exc:
            raise TransientDeliveryError(
                f"{label}: connection failed ({type(exc).__name__})", ambiguous=ambiguous(exc)
            ) from None
        if response.is_success or response.status_code in accept:
            return response
        raise error_for_response(label, response, hint=hint, secrets=self._secrets)

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """:meth:`request`, then the answer's JSON (None for an empty 2xx body, which write endpoints of
        some services send; the raw text when the body is not JSON)."""
        return body_of(self.request(method, url, **kwargs))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "AMBIGUOUS_STATUSES",
    "TRANSIENT_STATUSES",
    "Transport",
    "ambiguous",
    "body_of",
    "error_for_response",
    "error_for_status",
    "parse_retry_after",
    "reason_of",
]
