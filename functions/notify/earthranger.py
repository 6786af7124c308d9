"""EarthRanger (formerly DAS) adapter, on the official client ``earthranger-client`` (``erclient``).

Two modes:

``event`` (default)
    ``POST /api/v1.0/activity/events`` (``ERClient.post_event``) with the configured ``event_type``, time,
    location, priority (person 300 red, vehicle 200 amber, animal 100 green by default; the highest category
    wins), title, state ``new`` and ``event_details`` under configurable keys; then the annotated photo with
    ``post_event_file`` (multipart ``filecontent.file``). An update of the alert (more photos of the burst)
    goes to the *same* event: a new file and a note (``post_event_note``), and a priority raise
    (``patch_event``) when a more serious category appears. Never a second event.

``camera_trap``
    ``POST /api/v1.0/sensors/camera-trap/<provider_key>/status/`` (``post_camera_trap_report``) with the
    photo; EarthRanger answers a ``group_id`` that is kept in the state and sent with every later photo of
    the alert, so they land in the same ``cameratrap_rep`` event. 409 (file name already seen) means the
    photo was delivered before: treated as success.

How the client's behaviour is adapted (read from erclient 1.19's source):

* ``discovery=False``: no ``/.well-known/oauth-protected-resource`` fetch before the first call.
* The client mounts a 502-retrying adapter on the prefixes "http"/"https" (which requests' default
  "http://"/"https://" adapters outrank) and sets no timeout anywhere; retries belong to the queue, so the
  session gets one adapter, on all four prefixes, with no retries and our timeouts.
* ``_call`` (events, notes, patch) raises a bare ``ERClientException`` without status for most failures
  (429 and 500 included) and never reads Retry-After; ``_post_form`` (files, camera trap) uses the module
  level ``requests.post`` (no timeout, no session) and loses the status entirely. So the session gets a
  response hook that raises the client's own exception classes *with* ``status_code``, ``response_body``
  and ``retry_after`` for every non-2xx answer, and ``_post_form`` is routed through that session.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import requests
from erclient import (
    ERClient,
    ERClientBadCredentials,
    ERClientBadRequest,
    ERClientException,
    ERClientInternalError,
    ERClientNotFound,
    ERClientPermissionDenied,
    ERClientRateLimitExceeded,
    ERClientServiceUnreachable,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from requests.adapters import HTTPAdapter

from .base import (
    AlertNotice,
    Channel,
    DeliveryError,
    DeliveryResult,
    HttpSettings,
    PermanentDeliveryError,
    SecretResolver,
    TransientDeliveryError,
    http_url,
    parse_config,
    parse_retry_after,
    redact,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DETAIL_FIELDS = ("camera", "categories", "confidence", "image_count", "photo_url", "map_url", "alert_id")
_MAX_REMEMBERED = 200  # file names / update keys kept in the state for idempotency


class EarthRangerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_root: str = Field(description="https://<site>.pamdas.org (an /api/v1.0 suffix is accepted)")
    token_setting: str = Field(description="name of the app setting holding the bearer token")
    mode: Literal["event", "camera_trap"] = "event"
    provider_key: str | None = None
    event_type: str = "trapalert_detection"
    event_state: str = "new"
    priorities: dict[str, int] = Field(default_factory=lambda: {"person": 300, "vehicle": 200, "animal": 100})
    default_priority: int = 200
    details_keys: dict[str, str | None] = Field(
        default_factory=lambda: {
            "camera": "camera",
            "categories": "categories",
            "confidence": "confidence",
            "image_count": "image_count",
            "photo_url": "photo_url",
        },
        description="our field -> key in the event type's schema (None or missing: not sent)",
    )
    extra_details: dict[str, Any] = Field(default_factory=dict)
    attach_photo: bool = True
    note_on_update: bool = True
    raise_priority_on_update: bool = True
    timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("service_root")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v, "https://site.pamdas.org")

    @field_validator("priorities")
    @classmethod
    def _prio(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: p for k, p in v.items() if p not in (0, 100, 200, 300)}
        if bad:
            raise ValueError(f"priorities must be 0, 100 (green), 200 (amber) or 300 (red): {bad}")
        return v

    @field_validator("details_keys")
    @classmethod
    def _details(cls, v: dict[str, str | None]) -> dict[str, str | None]:
        unknown = sorted(set(v) - set(DETAIL_FIELDS))
        if unknown:
            raise ValueError(f"unknown detail fields {unknown}; known: {list(DETAIL_FIELDS)}")
        return v

    @model_validator(mode="after")
    def _mode(self) -> EarthRangerConfig:
        if self.mode == "camera_trap" and not self.provider_key:
            raise ValueError("mode camera_trap needs provider_key (the camera-trap source provider)")
        if self.default_priority not in (0, 100, 200, 300):
            raise ValueError("default_priority must be 0, 100, 200 or 300")
        return self


# ------------------------------------------------------------------------------------- client adaptation
_STATUS_TO_ER_EXC: dict[int, type[ERClientException]] = {
    400: ERClientBadRequest,
    401: ERClientBadCredentials,
    403: ERClientPermissionDenied,
    404: ERClientNotFound,
    429: ERClientRateLimitExceeded,
    500: ERClientInternalError,
    502: ERClientServiceUnreachable,
    503: ERClientServiceUnreachable,
    504: ERClientServiceUnreachable,
}


def _raise_for_status(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """requests response hook: every non-2xx answer becomes the client's exception class, with details."""
    if response.status_code < 400:
        return response
    cls = _STATUS_TO_ER_EXC.get(response.status_code, ERClientException)
    raise cls(
        f"{response.request.method} {requests.utils.urlparse(response.url).path}",
        status_code=response.status_code,
        response_body=response.text[:1000],
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


class _TimeoutAdapter(HTTPAdapter):
    def __init__(self, timeout: tuple[float, float]):
        super().__init__(max_retries=0)
        self._timeout = timeout

    def send(self, request, **kwargs):  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


class _ERClient(ERClient):
    """ERClient whose multipart posts go through its (configured) session instead of ``requests.post``."""

    def _post_form(self, path, body=None, files=None):
        headers = {"User-Agent": self.user_agent}
        headers.update(self.auth_headers())
        response = self._http_session.post(self._er_url(path), data=body or {}, headers=headers, files=files)
        data = response.json() if response.content else {}
        return data.get("data", data) if isinstance(data, dict) else data


def make_client(cfg: EarthRangerConfig, token: str, http: HttpSettings) -> ERClient:
    client = _ERClient(
        service_root=cfg.service_root, token=token, provider_key=cfg.provider_key, discovery=False
    )
    client.user_agent = f"{http.user_agent} {client.user_agent}"
    adapter = _TimeoutAdapter((http.connect_timeout_s, cfg.timeout_s or http.timeout_s))
    session = client._http_session
    # "http://" and "https://" (requests' own defaults) are the longest prefixes, so they decide
    for prefix in ("http://", "https://", "http", "https"):
        session.mount(prefix, adapter)
    session.hooks["response"].append(_raise_for_status)
    return client


_CALL_STATUS = re.compile(r"\b([1-5]\d\d) from ER\b")


def map_er_error(exc: Exception, *, token_setting: str, token: str, what: str) -> DeliveryError:
    """Translate what erclient/requests raised into TransientDeliveryError / PermanentDeliveryError."""
    if isinstance(exc, requests.Timeout):
        return TransientDeliveryError(f"EarthRanger {what}: timed out")
    if isinstance(exc, requests.ConnectionError):
        return TransientDeliveryError(f"EarthRanger {what}: connection failed ({type(exc).__name__})")
    if not isinstance(exc, ERClientException):
        return TransientDeliveryError(f"EarthRanger {what}: {type(exc).__name__}")
    status = exc.status_code
    if status is None:  # the client's own message: "... 500 from ER. Message: ..."
        m = _CALL_STATUS.search(str(exc))
        status = int(m.group(1)) if m else None
    body = redact(str(exc.response_body or ""), token)[:300]
    detail = f" ({body})" if body else ""
    if isinstance(exc, ERClientRateLimitExceeded) or status == 429:
        return TransientDeliveryError(
            f"EarthRanger {what}: throttled (429)", retry_after=exc.retry_after, status=429
        )
    if isinstance(exc, ERClientBadCredentials) or status == 401:
        return PermanentDeliveryError(
            f"EarthRanger {what}: the token in setting {token_setting} was rejected (401){detail}", status=401
        )
    if isinstance(exc, ERClientPermissionDenied) or status == 403:
        return PermanentDeliveryError(
            f"EarthRanger {what}: the token in setting {token_setting} lacks permission (403){detail}",
            status=403,
        )
    if isinstance(exc, ERClientNotFound) or status == 404:
        return PermanentDeliveryError(
            f"EarthRanger {what}: not found (404), check service_root{detail}", status=404
        )
    if isinstance(exc, ERClientBadRequest) or status == 400:
        return PermanentDeliveryError(
            f"EarthRanger {what}: rejected (400), check event_type and details_keys{detail}", status=400
        )
    if isinstance(exc, ERClientInternalError | ERClientServiceUnreachable) or (status and status >= 500):
        return TransientDeliveryError(f"EarthRanger {what}: server error ({status}){detail}", status=status)
    if status and 400 <= status < 500:
        return PermanentDeliveryError(f"EarthRanger {what}: rejected ({status}){detail}", status=status)
    # A failure the client could not classify: retrying is the safe default (the queue bounds it).
    return TransientDeliveryError(f"EarthRanger {what}: {redact(str(exc), token)[:300]}", status=status)


def _remember(items: list[str], item: str) -> list[str]:
    return (items + [item])[-_MAX_REMEMBERED:]


class EarthRangerNotifier:
    kind = "earthranger"
    config_model = EarthRangerConfig

    def __init__(self, config: EarthRangerConfig, token: str, http: HttpSettings | None = None):
        self.config = config
        self._token = token
        self._client = make_client(config, token, http or HttpSettings())

    @classmethod
    def from_channel(
        cls, channel: Channel, secrets: SecretResolver, http: HttpSettings
    ) -> EarthRangerNotifier:
        cfg = parse_config(EarthRangerConfig, channel)
        return cls(cfg, secrets(cfg.token_setting), http)

    def __repr__(self) -> str:
        return f"EarthRangerNotifier({self.config.service_root}, mode={self.config.mode})"

    def close(self) -> None:
        self._client._http_session.close()

    # ------------------------------------------------------------------------------------ helpers
    def _do(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except DeliveryError:
            raise
        except (ERClientException, requests.RequestException) as exc:
            raise map_er_error(
                exc, token_setting=self.config.token_setting, token=self._token, what=what
            ) from None

    def priority(self, categories: list[str]) -> int:
        prios = [self.config.priorities[c] for c in categories if c in self.config.priorities]
        return max(prios) if prios else self.config.default_priority

    def event_details(self, notice: AlertNotice) -> dict[str, Any]:
        values: dict[str, Any] = {
            "camera": notice.camera.name,
            "categories": notice.what_seen(),
            "confidence": round(notice.max_conf, 3),
            "image_count": notice.image_count,
            "photo_url": notice.photo_url,
            "map_url": notice.map_url,
            "alert_id": notice.alert_id,
        }
        details = dict(self.config.extra_details)
        for field, key in self.config.details_keys.items():
            if key and values.get(field) is not None:
                details[key] = values[field]
        return details

    def event_payload(self, notice: AlertNotice) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "event_type": self.config.event_type,
            "time": notice.started_at.isoformat(),
            "priority": self.priority(notice.categories),
            "title": notice.title,
            "state": self.config.event_state,
            "event_details": self.event_details(notice),
        }
        if notice.camera.has_location:
            payload["location"] = {"latitude": notice.camera.latitude, "longitude": notice.camera.longitude}
        return payload

    def _note_text(self, notice: AlertNotice) -> str:
        text = (
            f"Update: {notice.image_count} photo(s) so far from {notice.camera.name}; "
            f"seen: {notice.what_seen()}; max confidence {notice.max_conf:.0%}; "
            f"last photo {notice.local_time('updated'):%Y-%m-%d %H:%M:%S %Z}."
        )
        if notice.photo_url:
            text += f" Original photo: {notice.photo_url}"
        return text

    def _attach(self, event_id: str, notice: AlertNotice, comment: str) -> None:
        assert notice.photo_jpeg is not None
        with tempfile.TemporaryDirectory(prefix="trapalert-er-") as tmp:
            path = os.path.join(tmp, notice.photo_filename)
            with open(path, "wb") as fh:
                fh.write(notice.photo_jpeg)
            self._do("attach photo", lambda: self._client.post_event_file(event_id, path, comment))

    # ------------------------------------------------------------------------------------ event mode
    def _event_new(self, notice: AlertNotice, resume: DeliveryResult | None) -> DeliveryResult:
        state: dict[str, Any] = dict(resume.state) if resume else {}
        event_id = state.get("event_id")
        if not event_id:
            payload = self.event_payload(notice)
            created = self._do("create event", lambda: self._client.post_event(payload))
            if not isinstance(created, dict) or not created.get("id"):
                raise TransientDeliveryError("EarthRanger create event: answer without an event id")
            event_id = str(created["id"])
            state = {
                "mode": "event",
                "event_id": event_id,
                "serial_number": created.get("serial_number"),
                "priority": payload["priority"],
                "files": [],
                "updates": [],
            }
        state = self._attach_if_needed(event_id, notice, state, comment=notice.title)
        return DeliveryResult(external_id=event_id, state=state)

    def _attach_if_needed(
        self, event_id: str, notice: AlertNotice, state: dict[str, Any], comment: str
    ) -> dict:
        files = list(state.get("files", []))
        if self.config.attach_photo and notice.photo_jpeg and notice.photo_filename not in files:
            try:
                self._attach(event_id, notice, comment)
            except DeliveryError as exc:
                exc.partial = DeliveryResult(external_id=event_id, state=state)
                raise
            state = {**state, "files": _remember(files, notice.photo_filename)}
        return state

    def _event_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult:
        state = dict(previous.state)
        event_id = state.get("event_id") or previous.external_id
        if not event_id:
            return self._event_new(notice, None)
        state["event_id"] = event_id
        key = notice.update_key()
        if key in state.get("updates", []):
            return DeliveryResult(external_id=event_id, state=state)

        def partial() -> DeliveryResult:
            return DeliveryResult(external_id=event_id, state=dict(state))

        prio = self.priority(notice.categories)
        if self.config.raise_priority_on_update and prio > int(state.get("priority") or 0):
            patch = {"priority": prio, "title": notice.title, "event_details": self.event_details(notice)}
            try:
                self._do("raise priority", lambda: self._client.patch_event(event_id, patch))
            except DeliveryError as exc:
                exc.partial = partial()
                raise
            state["priority"] = prio
        state = self._attach_if_needed(event_id, notice, state, comment=f"Update: {notice.title}")
        if self.config.note_on_update:
            try:
                self._do("add note", lambda: self._client.post_event_note(event_id, self._note_text(notice)))
            except DeliveryError as exc:
                exc.partial = partial()
                raise
        state["updates"] = _remember(list(state.get("updates", [])), key)
        return DeliveryResult(external_id=event_id, state=state)

    # ------------------------------------------------------------------------------- camera-trap mode
    def _camera_trap(self, notice: AlertNotice, state: dict[str, Any]) -> DeliveryResult:
        if not notice.photo_jpeg:
            raise PermanentDeliveryError("EarthRanger camera_trap mode needs a photo; this notice has none")
        state = dict(state)
        files = list(state.get("files", []))
        group_id = state.get("group_id")
        if notice.photo_filename in files:
            return DeliveryResult(external_id=group_id, state=state)
        payload: dict[str, Any] = {
            "camera_name": notice.camera.name,
            "camera_description": f"{notice.park.name}"
            + (f" / {notice.camera.zone}" if notice.camera.zone else ""),
            "time": notice.updated_at.isoformat(),
        }
        if notice.camera.has_location:
            payload["location"] = json.dumps(
                {"latitude": notice.camera.latitude, "longitude": notice.camera.longitude}
            )
        if group_id:
            payload["group_id"] = group_id
        file = (notice.photo_filename, notice.photo_jpeg, "image/jpeg")
        try:
            answer = self._client.post_camera_trap_report(payload, file=file)
        except ERClientException as exc:
            if exc.status_code == 409:  # this file name was already received: delivered before
                log.info("EarthRanger camera trap: %s already received (409)", notice.photo_filename)
                state["files"] = _remember(files, notice.photo_filename)
                return DeliveryResult(external_id=group_id, state={**state, "mode": "camera_trap"})
            raise map_er_error(
                exc, token_setting=self.config.token_setting, token=self._token, what="camera-trap report"
            ) from None
        except requests.RequestException as exc:
            raise map_er_error(
                exc, token_setting=self.config.token_setting, token=self._token, what="camera-trap report"
            ) from None
        if isinstance(answer, dict) and answer.get("group_id"):
            group_id = str(answer["group_id"])
        state.update(mode="camera_trap", group_id=group_id, files=_remember(files, notice.photo_filename))
        return DeliveryResult(external_id=group_id, state=state)

    # ------------------------------------------------------------------------------------ the port
    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult:
        if self.config.mode == "camera_trap":
            return self._camera_trap(notice, resume.state if resume else {})
        return self._event_new(notice, resume)

    def send_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult:
        if self.config.mode == "camera_trap":
            return self._camera_trap(notice, previous.state)
        return self._event_update(notice, previous)
