"""EarthRanger (formerly DAS) adapter: the documented endpoints, through the project's one HTTP transport.

Every request goes through :class:`functions.notify.http.Transport` (``Authorization: Bearer <token>``, the
process's TLS context, our timeouts, no retries inside: the queue retries, honouring ``Retry-After`` on 429).
The URL shapes are those of PADAS ``er-client`` (``erclient/client.py``, public methods named below; its
``_api_root`` is ``<service_root>/api/v1.0``) and ``er-server`` (``das/activity/urls.py``); every answer is
wrapped ``{"data": ..., "status": {...}}`` (er-server ``ExtendedJSONRenderer``; er-client reads ``data``).

Two modes:

``event`` (default)
    ``POST /api/v1.0/activity/events`` (er-client ``post_event``) with the configured ``event_type``, time,
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

Requests (relative to ``<service_root>/api/v1.0``; er-client method in brackets):

* ``POST activity/events`` (``post_event``), ``PATCH activity/event/<id>`` (``patch_event``),
  ``POST activity/event/<id>/files/`` multipart ``filecontent.file`` + ``comment`` (``post_event_file``),
  ``POST activity/event/<id>/notes`` JSON ``{event, text}`` (``post_event_note``),
  ``GET activity/events`` with ``filter`` etc., following ``next`` (``get_events``),
  ``POST sensors/camera-trap/<provider_key>/status/`` multipart (``post_camera_trap_report``);
* for :meth:`EarthRangerNotifier.check`: ``GET activity/events/eventtypes`` (``get_event_types``, v1.0 path
  of ``api_paths.EVENT_TYPES_PATHS``; er-server ``EventTypesView`` lists only the active types of categories
  the account has a permission on), a test event ``POST activity/events`` (er-server
  ``EventCategoryPermissions``: 403 without ``<category>_create``), then ``DELETE activity/event/<id>/``
  (``delete_event``; needs ``<category>_delete``) or, when that is refused, ``PATCH`` it to ``resolved``.

Statuses: 401 (the token) and 403 (a permission of the account) are permanent and name the token *setting*,
never its value; 400 is permanent and points at ``event_type`` / ``details_keys``; 408/429/5xx and transport
failures are transient; the remote body is never copied into a message (status and reason phrase only).
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import time
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
)
from .http import Transport, ambiguous

log = logging.getLogger(__name__)

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


API_PATH = "/api/v1.0"
_API_SUFFIX = re.compile(r"/api/v\d+(\.\d+)?/?$")
TEST_EVENT_TITLE = "TrapAlert channel test (safe to delete)"


def api_root(service_root: str) -> str:
    """er-client ``_api_root``: ``<service_root>/api/v1.0`` (a service_root given with the suffix is kept)."""
    return _API_SUFFIX.sub("", service_root.rstrip("/")) + API_PATH


def _data(answer: Any) -> Any:
    """The payload of an ER answer (er-server wraps it ``{"data", "status"}``; er-client reads ``data``)."""
    if isinstance(answer, dict) and "data" in answer and ("status" in answer or len(answer) == 1):
        return answer["data"]
    return answer


def _remember(items: list[str], item: str) -> list[str]:
    return items if item in items else (items + [item])[-_MAX_REMEMBERED:]


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
        self._channel_id = channel_id
        self._api_root = api_root(config.service_root)
        self._transport = Transport(
            "EarthRanger",
            http or HttpSettings(),
            timeout_s=config.timeout_s,
            base_url=self._api_root,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            secrets=[token],
        )

    @classmethod
    def from_channel(
        cls, channel: Channel, secrets: SecretResolver, http: HttpSettings
    ) -> EarthRangerNotifier:
        cfg = parse_config(EarthRangerConfig, channel)
        return cls(cfg, secrets(cfg.token_setting), http, channel_id=channel.id)

    def __repr__(self) -> str:
        return f"EarthRangerNotifier({self.config.service_root}, mode={self.config.mode})"

    def close(self) -> None:
        self._transport.close()

    # ------------------------------------------------------------------------------------ HTTP
    def _explain(self, exc: DeliveryError, what: str) -> DeliveryError:
        """The transport's error, with what to fix for the statuses EarthRanger gives a meaning."""
        status = exc.status
        setting = self.config.token_setting
        where = f"EarthRanger {what}"
        if status == 401:
            return PermanentDeliveryError(
                f"{where}: the token in setting {setting} was rejected (401)", status=401
            )
        if status == 403:
            return PermanentDeliveryError(
                f"{where}: the account of the token in setting {setting} lacks a permission (403): its "
                "role needs create/update/read permissions on the category of event type "
                f"{self.config.event_type!r}",
                status=403,
            )
        if status == 404:
            return PermanentDeliveryError(f"{where}: not found (404), check service_root", status=404)
        if status == 400:
            return PermanentDeliveryError(
                f"{where}: rejected (400 Bad Request), check event_type {self.config.event_type!r} (it must "
                "exist on the site) and details_keys (they must match its schema); `trapalert channels test` "
                "checks the event type",
                status=400,
            )
        return exc

    def _call(self, what: str, method: str, path: str, *, accept: tuple[int, ...] = (), **kw: Any) -> Any:
        """One request; the unwrapped ``data`` of a 2xx answer (None when empty)."""
        try:
            response = self._transport.request(method, path, what=what, accept=accept, **kw)
        except DeliveryError as exc:
            err = self._explain(exc, what)
            if err is not exc:
                raise err from None
            raise
        if response.status_code in accept and not response.is_success:
            return response
        if not response.content:
            return None
        try:
            return _data(response.json())
        except ValueError:
            raise TransientDeliveryError(f"EarthRanger {what}: an answer that is not JSON") from None

    def get_events(self, what: str, *, max_results: int, **params: Any) -> list[dict[str, Any]]:
        """er-client ``get_events``: ``GET activity/events`` and its ``next`` pages, up to ``max_results``."""
        page = self._call(what, "GET", "activity/events", params=params)
        found: list[dict[str, Any]] = []
        while isinstance(page, dict):
            found += [e for e in page.get("results") or [] if isinstance(e, dict)]
            nxt = str(page.get("next") or "")
            if len(found) >= max_results or not nxt:
                break
            if not nxt.startswith(self._api_root + "/"):  # the token goes only to the configured site
                log.warning("EarthRanger %s: not following a next page on another host", what)
                break
            page = self._call(what, "GET", nxt)
        return found[:max_results]

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
        """er-client ``post_event_file``: multipart ``filecontent.file`` and ``comment``."""
        assert notice.photo_jpeg is not None
        files = {"filecontent.file": (notice.photo_filename, notice.photo_jpeg, "image/jpeg")}
        self._call(
            "attach photo",
            "POST",
            f"activity/event/{event_id}/files/",
            data={"comment": comment},
            files=files,
        )

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
            created = self._call("create event", "POST", "activity/events", json=payload)
        except DeliveryError as err:
            if isinstance(err, TransientDeliveryError) and (pending or ambiguous(err)):
                if ambiguous(err) or not pending:
                    pending = {"ref": ref, "time": payload["time"], "failed_at": time.time()}
                err.args = (f"{err} (it may have been created: {ref} is looked up before the next create)",)
                err.partial = DeliveryResult(state={**state, "mode": "event", "pending_create": pending})
            raise
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

        ``GET /activity/events`` with ``filter={"text": ref, "date_range": ...}`` (er-client ``get_events``),
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
        events = self.get_events(
            "look up event",
            filter=json.dumps(flt),
            include_notes="true",
            include_details="true",
            include_files="true",
            page_size=25,
            max_results=100,
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
                self._call("raise priority", "PATCH", f"activity/event/{event_id}", json=patch)
            except DeliveryError as exc:
                exc.partial = partial()
                raise
            state["priority"] = prio
        state = self._attach_if_needed(event_id, notice, state, comment=f"Update: {notice.title}")
        if self.config.note_on_update:
            try:
                note = {"event": str(event_id), "text": self._note_text(notice)}  # er-client post_event_note
                self._call("add note", "POST", f"activity/event/{event_id}/notes", json=note)
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
        upload = {"filecontent.file": (notice.photo_filename, notice.photo_jpeg, "image/jpeg")}
        what = "camera-trap report"
        path = f"sensors/camera-trap/{self.config.provider_key}/status/"  # er-client post_camera_trap_report
        try:
            answer = self._call(what, "POST", path, data=payload, files=upload, accept=(409,))
        except DeliveryError as err:
            if isinstance(err, TransientDeliveryError) and not group_id and ambiguous(err):
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
            raise
        if getattr(answer, "status_code", None) == 409:
            # this file name was already received: delivered before (er-server's 409 carries no group id,
            # so it is looked up when this attempt does not know it)
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
            files = _remember(files, notice.photo_filename)
            state.update(mode="camera_trap", group_id=group_id, files=files)
            return DeliveryResult(external_id=group_id, state=state)
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
        (``files[].filename``). Searched with ``GET /activity/events`` (er-client ``get_events``), first by
        the camera's name, then by time alone (a name of stop words only finds nothing in a full-text search).
        """
        lower = (first - timedelta(minutes=10)).isoformat()
        upper = (last + timedelta(minutes=10)).isoformat()
        filters = [{"date_range": {"lower": lower, "upper": upper}}]
        if camera_name.strip():
            filters.insert(0, {"text": camera_name, "date_range": {"lower": lower, "upper": upper}})
        for flt in filters:
            events = self.get_events(
                "look up camera-trap event",
                filter=json.dumps(flt),
                include_files="true",
                page_size=100,
                max_results=500,
            )
            for event in events:
                if isinstance(event, dict) and event.get("id"):
                    if any(_file_name(f) == filename for f in event.get("files") or []):
                        return str(event["id"])
        return None

    # ------------------------------------------------------------------------------------ setup check
    def check(self) -> list[str]:
        """What stops this channel from working, each saying what to fix (empty when nothing does).

        EarthRanger rejects events of an unknown type (400), refuses a category the account may not write
        (403) and silently drops ``event_details`` keys the type's schema lacks. So: the event type must be
        listed by ``GET activity/events/eventtypes`` (which lists only types of categories the account has a
        permission on), a test event of that type must be accepted, and it is then deleted (or resolved,
        when the account may not delete). Camera-trap mode checks that ``cameratrap_rep`` is visible (a test
        report would need a photo and would stay on the map)."""
        setting = self.config.token_setting
        site = self.config.service_root
        wanted = "cameratrap_rep" if self.config.mode == "camera_trap" else self.config.event_type
        try:
            listed = self._call("list event types", "GET", "activity/events/eventtypes")
        except DeliveryError as exc:
            return [str(exc)]
        types = {str(t.get("value")): t for t in listed or [] if isinstance(t, dict) and t.get("value")}
        if wanted not in types:
            near = difflib.get_close_matches(wanted, list(types), n=5, cutoff=0.5)
            return [
                f"EarthRanger event type {wanted!r} does not exist on {site}, or the account of the token in "
                f"setting {setting} has no permission on its category: create it in EarthRanger admin "
                f"(Activity > Event types, value {wanted!r}) or give the account's role permissions on its "
                "category"
                + (f"; similar types it sees: {', '.join(near)}" if near else f"; it sees {len(types)} types")
            ]
        if self.config.mode == "camera_trap":
            return []
        category = (types[wanted].get("category") or {}).get("value") or "its category"
        payload: dict[str, Any] = {
            "event_type": wanted,
            "title": TEST_EVENT_TITLE,
            "priority": 0,
            "state": "resolved",
            "event_details": {},
        }
        if self.config.ref_in == "event_details":
            payload["event_details"][self.config.ref_details_key] = "TATEST"
        try:
            created = self._call("create a test event", "POST", "activity/events", json=payload)
        except DeliveryError as exc:
            if exc.status == 403:
                return [
                    f"EarthRanger: the account of the token in setting {setting} may not create events of "
                    f"type {wanted!r}: give its role the '{category} create' permission "
                    f"(and '{category} update' for updates) in EarthRanger admin (Permission sets)"
                ]
            return [str(exc)]
        if not isinstance(created, dict) or not created.get("id"):
            return ["EarthRanger create a test event: answer without an event id"]
        problems = []
        stored = (created.get("event_details") or {}).get(self.config.ref_details_key)
        if self.config.ref_in == "event_details" and "event_details" in created and stored != "TATEST":
            problems.append(
                f"EarthRanger event type {wanted!r} drops event_details[{self.config.ref_details_key!r}] "
                '(not in its schema): add that string property to the event type, or set "ref_in": "note" '
                "(without it a create whose answer is lost can be duplicated)"
            )
        event_id = str(created["id"])
        label = f"#{created.get('serial_number')} ({event_id})"
        try:  # er-client delete_event; needs '<category> delete', which a service account may lack
            answer = self._call(
                "delete the test event", "DELETE", f"activity/event/{event_id}/", accept=(403,)
            )
            if getattr(answer, "status_code", None) != 403:
                return problems
            log.info("EarthRanger: may not delete the test event %s; resolving it", label)
            self._call(
                "resolve the test event", "PATCH", f"activity/event/{event_id}", json={"state": "resolved"}
            )
        except DeliveryError as exc:
            problems.append(
                f"EarthRanger: the test event {label} was created but could not be deleted or resolved "
                f"({exc}): remove it by hand"
            )
        return problems

    # ------------------------------------------------------------------------------------ the port
    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult:
        if self.config.mode == "camera_trap":
            return self._camera_trap(notice, resume.state if resume else {})
        return self._event_new(notice, resume)

    def send_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult:
        if self.config.mode == "camera_trap":
            return self._camera_trap(notice, previous.state)
        return self._event_update(notice, previous)
