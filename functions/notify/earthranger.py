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
    photo was delivered before: treated as success; when the group id is not known yet (the first photo's
    answer was lost), it is looked up (the event that holds that file) so later photos still join it.

Duplicate windows closed here (issue 13):

* Every event carries the delivery's reference (``TA<alert id>C<channel id>``, :func:`delivery_reference`)
  in ``event_details[ref_details_key]`` (default; it survives only when the event type's schema has that
  property: er-server ``EventDetailsSerializer._to_internal_value_inner`` silently drops keys the schema
  does not name) or, with ``ref_in: "note"``, in a note created atomically with the event (the events POST
  runs in one ``transaction.atomic()``; ``create_event`` saves ``notes`` with it).
* When a create fails *ambiguously* (read timeout, connection dropped after the request was sent, 502/504
  from a gateway) the error's ``partial`` carries ``pending_create``; the next attempt first searches
  ``GET /api/v1.0/activity/events?filter={"text": <ref>, "date_range": ...}`` (er-server
  ``EventFilteringQuerySet.by_event_filter`` / ``by_text_filter``: full-text over the event type's display,
  title, event_details and notes, every word prefix-matched, hence the whole-word check here) and adopts the
  event it finds. Not found within ``ambiguous_settle_s`` of the failure: wait (the request may still be in
  flight on the server); after that, create again.
* Camera-trap mode records the same ``pending_report`` (file name) and finds the ``group_id`` as the event
  whose files include that file name (er-server ``sensors/camera_trap.py``: ``group_id`` is the event id,
  the 409 answer carries no group id).

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
import time
from collections.abc import Callable
from datetime import datetime, timedelta
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
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from .base import (
    AlertNotice,
    Channel,
    DeliveryError,
    DeliveryResult,
    HttpSettings,
    PermanentDeliveryError,
    SecretResolver,
    TransientDeliveryError,
    delivery_reference,
    http_url,
    mentions_reference,
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
    ref_in: Literal["event_details", "note"] = Field(
        default="event_details",
        description="where the delivery reference goes: event_details[ref_details_key] (the event type's "
        "schema must have that property, or ER drops it) or a note created with the event",
    )
    ref_details_key: str = Field(default="trapalert_ref", min_length=1, max_length=100)
    ref_prefix: str = Field(default="TA", pattern=r"^[A-Za-z]{1,12}$")
    ambiguous_settle_s: float = Field(
        default=30.0,
        ge=0,
        description="after an ambiguous create, how long a lookup that finds nothing waits",
    )

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
    return items if item in items else (items + [item])[-_MAX_REMEMBERED:]


def sent_but_unanswered(exc: BaseException) -> bool:
    """Whether a failed request may have been carried out by the server (an *ambiguous* failure).

    Yes: a read timeout, a connection dropped or reset after the request was sent, a broken answer, and a
    502/504 from a gateway (the upstream may have finished). No: a refused connection, a connect timeout, a
    name that does not resolve (the request never left), and every answer ER gave itself (4xx, 429, 500,
    503: er-server runs the events POST in one transaction, so an error answer committed nothing).
    """
    if isinstance(exc, ERClientException):
        return exc.status_code in (502, 504)
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.Timeout | requests.exceptions.ChunkedEncodingError):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError wraps the cause
        return not isinstance(reason, NewConnectionError | ConnectTimeoutError | NameResolutionError)
    return False


def _file_name(record: Any) -> str | None:
    """The uploaded file name of an event file as ER lists it (``filename``, or ``usercontent.filename``)."""
    if not isinstance(record, dict):
        return None
    name = record.get("filename") or (record.get("usercontent") or {}).get("filename")
    return str(name) if name else None


def _mentions(event: dict[str, Any], ref: str) -> bool:
    texts = [str(event.get("title") or ""), json.dumps(event.get("event_details") or {})]
    texts += [str(n.get("text") or "") for n in event.get("notes") or [] if isinstance(n, dict)]
    return any(mentions_reference(t, ref) for t in texts)


class EarthRangerNotifier:
    kind = "earthranger"
    config_model = EarthRangerConfig

    def __init__(
        self,
        config: EarthRangerConfig,
        token: str,
        http: HttpSettings | None = None,
        *,
        channel_id: int | None = None,
    ):
        self.config = config
        self._token = token
        self._channel_id = channel_id
        self._client = make_client(config, token, http or HttpSettings())

    @classmethod
    def from_channel(
        cls, channel: Channel, secrets: SecretResolver, http: HttpSettings
    ) -> EarthRangerNotifier:
        cfg = parse_config(EarthRangerConfig, channel)
        return cls(cfg, secrets(cfg.token_setting), http, channel_id=channel.id)

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

    def reference(self, notice: AlertNotice) -> str:
        return delivery_reference(notice.alert_id, self._channel_id, self.config.ref_prefix)

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

    def create_payload(self, notice: AlertNotice, ref: str) -> dict[str, Any]:
        """The event of a new alert, with the delivery reference where ER keeps it verbatim."""
        payload = self.event_payload(notice)
        if self.config.ref_in == "event_details":
            payload["event_details"][self.config.ref_details_key] = ref
        else:
            payload["notes"] = [{"text": f"TrapAlert delivery reference {ref} (alert {notice.alert_id})."}]
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
            pending = state.get("pending_create")
            if pending:
                found = self._adopt_created(notice, state, pending)
                if found is not None:
                    event_id, state = found
        if not event_id:
            event_id, state = self._create(notice, state)
        state = self._attach_if_needed(event_id, notice, state, comment=notice.title)
        return DeliveryResult(external_id=event_id, state=state)

    def _create(self, notice: AlertNotice, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        pending = state.get("pending_create")
        ref = pending["ref"] if pending else self.reference(notice)
        payload = self.create_payload(notice, ref)
        try:
            created = self._client.post_event(payload)
        except (ERClientException, requests.RequestException) as exc:
            err = map_er_error(
                exc, token_setting=self.config.token_setting, token=self._token, what="create event"
            )
            if isinstance(err, TransientDeliveryError) and (pending or sent_but_unanswered(exc)):
                if sent_but_unanswered(exc) or not pending:
                    pending = {"ref": ref, "time": payload["time"], "failed_at": time.time()}
                err.args = (f"{err} (it may have been created: {ref} is looked up before the next create)",)
                err.partial = DeliveryResult(state={**state, "mode": "event", "pending_create": pending})
            raise err from None
        if not isinstance(created, dict) or not created.get("id"):
            raise TransientDeliveryError("EarthRanger create event: answer without an event id")
        event_id = str(created["id"])
        if self.config.ref_in == "event_details":
            stored = (created.get("event_details") or {}).get(self.config.ref_details_key)
            if "event_details" in created and stored != ref:
                log.warning(
                    "EarthRanger event type %s dropped event_details[%r] (not in its schema): add that "
                    "string property to the event type, or set ref_in=note; until then a create whose "
                    "answer is lost can be duplicated",
                    self.config.event_type,
                    self.config.ref_details_key,
                )
        state = {
            "mode": "event",
            "event_id": event_id,
            "serial_number": created.get("serial_number"),
            "priority": payload["priority"],
            "ref": ref,
            "files": [],
            "updates": [],
        }
        return event_id, state

    def _settle(self, pending: dict[str, Any], state: dict[str, Any], what: str) -> None:
        """After an ambiguous failure, what the search did not find yet may still be committed by ER: until
        ``ambiguous_settle_s`` after the failure, look again later (raise) rather than create it again."""
        wait = float(pending.get("failed_at") or 0) + self.config.ambiguous_settle_s - time.time()
        if wait > 0:
            raise TransientDeliveryError(
                f"{what} not found yet after an ambiguous failure; looking again in {wait:.0f} s before "
                "creating it",
                retry_after=wait,
                partial=DeliveryResult(state=state),
            )

    def _adopt_created(
        self, notice: AlertNotice, state: dict[str, Any], pending: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """After an ambiguous create: the event ER committed anyway, or None (then create it)."""
        ref = str(pending["ref"])
        try:
            event = self.find_event(ref, str(pending.get("time") or notice.started_at.isoformat()))
        except DeliveryError as exc:
            exc.partial = DeliveryResult(state=state)  # keep looking before creating
            raise
        if event is None:
            self._settle(pending, state, f"EarthRanger create event: {ref}")
            log.info("EarthRanger: %s was not created by the ambiguous attempt; creating it", ref)
            return None
        event_id = str(event["id"])
        log.warning(
            "EarthRanger: adopted event %s (%s) created by an attempt whose answer was lost", event_id, ref
        )
        files = [n for n in (_file_name(f) for f in event.get("files") or []) if n]
        return event_id, {
            "mode": "event",
            "event_id": event_id,
            "serial_number": event.get("serial_number"),
            "priority": event.get("priority") or self.priority(notice.categories),
            "ref": ref,
            "files": files[-_MAX_REMEMBERED:],
            "updates": [],
        }

    def find_event(self, ref: str, time_iso: str) -> dict[str, Any] | None:
        """The event of this delivery on ER (the oldest, if an earlier failure left two), or None.

        ``GET /activity/events`` with ``filter={"text": ref, "date_range": ...}`` (``ERClient.get_events``),
        notes included; a result counts only if it is of our event type and names ``ref`` as a whole word.
        """
        t = datetime.fromisoformat(time_iso)
        flt = {
            "text": ref,
            "date_range": {
                "lower": (t - timedelta(hours=1)).isoformat(),
                "upper": (t + timedelta(hours=1)).isoformat(),
            },
        }
        events = self._do(
            "look up event",
            lambda: list(
                self._client.get_events(
                    filter=json.dumps(flt),
                    include_notes="true",
                    include_details="true",
                    include_files="true",
                    page_size=25,
                    max_results=100,
                )
            ),
        )
        mine = [
            e
            for e in events
            if isinstance(e, dict)
            and e.get("id")
            and e.get("event_type") == self.config.event_type
            and _mentions(e, ref)
        ]
        if not mine:
            return None
        mine.sort(key=lambda e: (e.get("serial_number") or 0, str(e.get("created_at") or "")))
        if len(mine) > 1:
            log.warning(
                "EarthRanger: %d events carry %s; using the oldest, %s", len(mine), ref, mine[0]["id"]
            )
        return mine[0]

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
            details = self.event_details(notice)
            if self.config.ref_in == "event_details" and state.get("ref"):
                details[self.config.ref_details_key] = state["ref"]  # a PATCH replaces event_details
            patch = {"priority": prio, "title": notice.title, "event_details": details}
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
        pending = state.get("pending_report")
        if pending and not group_id:
            # an earlier report's answer was lost: its event is the group, if ER committed it
            t = datetime.fromisoformat(str(pending["time"]))
            try:
                group_id = self.find_camera_trap_group(
                    str(pending["filename"]), str(pending.get("camera") or ""), t, t
                )
            except DeliveryError as exc:
                exc.partial = DeliveryResult(external_id=None, state=state)
                raise
            if group_id is None:
                self._settle(pending, state, f"EarthRanger camera-trap report: {pending['filename']}")
            else:
                files = _remember(files, str(pending["filename"]))
            state.pop("pending_report", None)
            state.update(mode="camera_trap", group_id=group_id, files=files)
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
        what = "camera-trap report"
        try:
            answer = self._client.post_camera_trap_report(payload, file=file)
        except (ERClientException, requests.RequestException) as exc:
            if isinstance(exc, ERClientException) and exc.status_code == 409:
                # this file name was already received: delivered before (er-server's 409 carries no
                # group id, so it is looked up when this attempt does not know it)
                log.info("EarthRanger camera trap: %s already received (409)", notice.photo_filename)
                if not group_id:
                    try:
                        group_id = self.find_camera_trap_group(
                            notice.photo_filename, notice.camera.name, notice.started_at, notice.updated_at
                        )
                    except DeliveryError as err:
                        err.partial = DeliveryResult(state=state)
                        raise
                    if group_id is None:
                        log.warning(
                            "EarthRanger camera trap: %s was seen before (409) but no event holds it; "
                            "later photos of alert %s start a new event",
                            notice.photo_filename,
                            notice.alert_id,
                        )
                state.update(
                    mode="camera_trap", group_id=group_id, files=_remember(files, notice.photo_filename)
                )
                return DeliveryResult(external_id=group_id, state=state)
            err = map_er_error(exc, token_setting=self.config.token_setting, token=self._token, what=what)
            if isinstance(err, TransientDeliveryError) and not group_id and sent_but_unanswered(exc):
                err.partial = DeliveryResult(
                    state={
                        **state,
                        "mode": "camera_trap",
                        "pending_report": {
                            "filename": notice.photo_filename,
                            "camera": notice.camera.name,
                            "time": payload["time"],
                            "failed_at": time.time(),
                        },
                    }
                )
            raise err from None
        if isinstance(answer, dict) and answer.get("group_id"):
            group_id = str(answer["group_id"])
        state.pop("pending_report", None)
        state.update(mode="camera_trap", group_id=group_id, files=_remember(files, notice.photo_filename))
        return DeliveryResult(external_id=group_id, state=state)

    def find_camera_trap_group(
        self, filename: str, camera_name: str, first: datetime, last: datetime
    ) -> str | None:
        """The ``group_id`` of the camera-trap event holding ``filename``, or None.

        er-server ``sensors/camera_trap.py``: the group id *is* the event's id; the event is titled
        ``"<camera_name> detection"``, timed at the report's ``time``, and the photo is one of its files
        (``files[].filename``). Searched with ``GET /activity/events`` (``ERClient.get_events``), first by the
        camera's name, then by time alone (a name of stop words only finds nothing in a full-text search).
        """
        lower = (first - timedelta(minutes=10)).isoformat()
        upper = (last + timedelta(minutes=10)).isoformat()
        filters = [{"date_range": {"lower": lower, "upper": upper}}]
        if camera_name.strip():
            filters.insert(0, {"text": camera_name, "date_range": {"lower": lower, "upper": upper}})
        for flt in filters:
            events = self._do(
                "look up camera-trap event",
                lambda flt=flt: list(
                    self._client.get_events(
                        filter=json.dumps(flt), include_files="true", page_size=100, max_results=500
                    )
                ),
            )
            for event in events:
                if isinstance(event, dict) and event.get("id"):
                    if any(_file_name(f) == filename for f in event.get("files") or []):
                        return str(event["id"])
        return None

    # ------------------------------------------------------------------------------------ the port
    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult:
        if self.config.mode == "camera_trap":
            return self._camera_trap(notice, resume.state if resume else {})
        return self._event_new(notice, resume)

    def send_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult:
        if self.config.mode == "camera_trap":
            return self._camera_trap(notice, previous.state)
        return self._event_update(notice, previous)
