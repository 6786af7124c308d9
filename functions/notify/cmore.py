"""CMORE (CSIR Command and Control Collaborator) adapter, with httpx.

Requests, relative to ``base_url`` (``https://<server>/za/WebAPI/api``):

``POST /token/login``
    form ``username``, ``password``, ``clientType=SoftwareClient``, ``uniqueId``. The answer's token (JSON
    ``token`` / ``access_token`` / ``Token``, or a bare JSON string) is cached per process and per
    (server, user, uniqueId) and sent as ``Authorization: Token <token>``. A 401 on any call drops the
    cached token, logs in again and repeats the call once.

``GET /v2/tags/getfull``
    the tag catalogue (large and slow), cached per server for ``tags_ttl_s``. Tags and fields are looked up
    by *name* (case-insensitive) so the channel config does not carry numeric ids: an item is a tag when it
    has ``id``/``tagId`` and ``name``/``tagName``; its fields are in ``fields`` (``id``/``fieldId``,
    ``name``/``fieldName``). A list, or an object with the list under ``data``/``tags``/``items``.

``POST /v2/messages/events``
    JSON ``{description, latitude, longitude, altitude, accuracy, dateOccurred, uploadType: "Generated",
    ownerGroupId, tags: [{tagId, values: [{fieldId, value}]}]}``. The new message's id is read from
    ``id`` / ``messageId`` / ``rootMessageId`` (or ``data.<same>``), and kept as the root message id.

Comments (the photo, and every update) — our reading of the CMORE API, configurable as ``comment_path``:
``POST /v2/messages/comments``, a form with the fields ``rootMessageId``, ``description``, ``dateOccurred``
(ISO 8601) and ``uploadType=Generated``; with a photo it is ``multipart/form-data`` with one more part,
``file`` (``<photo_filename>``, ``image/jpeg``), without one ``application/x-www-form-urlencoded`` (the
same fields; a form binder reads both alike). The comment's id is read like the event's.

Timeouts, connection errors, 5xx and 429 (with Retry-After) raise TransientDeliveryError; other 4xx raise
PermanentDeliveryError. Retries with backoff are the queue's job, not this adapter's.

Duplicate window that stays open (issue 13): every event's description ends with the delivery reference
(``TrapAlert ref TA<alert id>C<channel id>``, :func:`delivery_reference`), but CMORE offers no way we know of
to find an event by it: the open-source integration (PADAS ``gundi-integration-cmore``,
``app/datasource/client.py``) only *writes* messages (``/v2/messages/events``, ``/comment``) and reads tags,
the classification tree and gateway mappings. So a create that timed out after CMORE committed it is
created again on the next attempt; the adapter records ``ambiguous_creates`` in the partial state and logs
a warning naming the reference, so an operator can find and close the duplicate.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .base import (
    AlertNotice,
    Channel,
    ChannelConfigError,
    DeliveryError,
    DeliveryResult,
    HttpSettings,
    PermanentDeliveryError,
    SecretResolver,
    TransientDeliveryError,
    delivery_reference,
    error_for_status,
    http_url,
    parse_config,
    parse_retry_after,
    redact,
    tls_context,
)

log = logging.getLogger(__name__)

TEMPLATE_FIELDS = (
    "park",
    "camera",
    "zone",
    "categories",
    "max_conf",
    "confidence_pct",
    "image_count",
    "title",
    "summary",
    "photo_url",
    "map_url",
    "ops_url",
    "alert_id",
    "time",
)
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_ANY_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class TagMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str = Field(min_length=1, description="tag name as CMORE shows it")
    fields: dict[str, str] = Field(
        default_factory=dict, description="field name -> value template, e.g. {'Camera': '{camera}'}"
    )
    when: list[str] | None = Field(default=None, description="only when one of these categories was seen")

    @field_validator("fields")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for name, template in v.items():
            unknown = sorted(set(_ANY_PLACEHOLDER.findall(template)) - set(TEMPLATE_FIELDS))
            if unknown:
                raise ValueError(
                    f"field {name!r}: unknown placeholders {unknown}; known: {list(TEMPLATE_FIELDS)}"
                )
        return v


class CmoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="https://<server>/za/WebAPI/api")
    username: str | None = None
    username_setting: str | None = None
    password_setting: str
    unique_id: str = "trapalert"
    owner_group_id: int | str
    tags: list[TagMapping] = Field(default_factory=list)
    description_template: str = "{title}\n{summary}\nCamera {camera} ({park}). Photo: {photo_url}"
    altitude: float = 0.0
    accuracy: float = 10.0
    comment_path: str = "/v2/messages/comments"
    photo_comment: bool = True
    tags_ttl_s: float = Field(default=3600.0, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)
    ref_prefix: str = Field(default="TA", pattern=r"^[A-Za-z]{1,12}$")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v, "https://server/za/WebAPI/api")

    @field_validator("description_template")
    @classmethod
    def _desc(cls, v: str) -> str:
        unknown = sorted(set(_ANY_PLACEHOLDER.findall(v)) - set(TEMPLATE_FIELDS))
        if unknown:
            raise ValueError(f"unknown placeholders {unknown}; known: {list(TEMPLATE_FIELDS)}")
        return v

    @model_validator(mode="after")
    def _user(self) -> CmoreConfig:
        if not (self.username or self.username_setting):
            raise ValueError("give username or username_setting")
        return self


def render(template: str, values: dict[str, Any]) -> str:
    """Replace ``{name}`` placeholders (only the known names; no attribute access, unlike str.format)."""
    return _PLACEHOLDER.sub(
        lambda m: "" if values.get(m.group(1)) is None else str(values[m.group(1)]), template
    )


def template_values(notice: AlertNotice) -> dict[str, Any]:
    return {
        "park": notice.park.name,
        "camera": notice.camera.name,
        "zone": notice.camera.zone or "",
        "categories": notice.what_seen(),
        "max_conf": f"{notice.max_conf:.2f}",
        "confidence_pct": f"{notice.max_conf:.0%}",
        "image_count": notice.image_count,
        "title": notice.title,
        "summary": notice.summary,
        "photo_url": notice.photo_url or "",
        "map_url": notice.map_url or "",
        "ops_url": notice.ops_url or "",
        "alert_id": notice.alert_id,
        "time": notice.local_time("updated").strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# ------------------------------------------------------------------------------- per-process caches
_lock = threading.Lock()
_tokens: dict[tuple[str, str, str], str] = {}
_tags: dict[str, tuple[float, dict[str, tuple[Any, dict[str, Any]]]]] = {}


def clear_caches() -> None:
    """Forget cached tokens and tag catalogues (tests; a credential rotation)."""
    with _lock:
        _tokens.clear()
        _tags.clear()


def _first(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if d.get(k) not in (None, ""):
            return d[k]
    return None


def _message_id(answer: Any) -> str | None:
    if isinstance(answer, int | str) and str(answer).strip():
        return str(answer)
    if isinstance(answer, dict):
        found = _first(answer, "id", "messageId", "rootMessageId", "Id", "MessageId")
        if found is None and isinstance(answer.get("data"), dict | int | str):
            return _message_id(answer["data"])
        return None if found is None else str(found)
    return None


def _index_tags(payload: Any) -> dict[str, tuple[Any, dict[str, Any]]]:
    """tag name (lower) -> (tag id, {field name (lower): field id})."""
    items = payload
    if isinstance(payload, dict):
        items = _first(payload, "data", "tags", "items", "Tags") or []
    index: dict[str, tuple[Any, dict[str, Any]]] = {}
    for tag in items if isinstance(items, list) else []:
        if not isinstance(tag, dict):
            continue
        tag_id = _first(tag, "id", "tagId", "Id", "TagId")
        name = _first(tag, "name", "tagName", "Name", "TagName")
        if tag_id is None or not name:
            continue
        fields: dict[str, Any] = {}
        for f in _first(tag, "fields", "tagFields", "Fields") or []:
            if isinstance(f, dict):
                fid = _first(f, "id", "fieldId", "Id", "FieldId")
                fname = _first(f, "name", "fieldName", "Name", "FieldName")
                if fid is not None and fname:
                    fields[str(fname).strip().lower()] = fid
        index[str(name).strip().lower()] = (tag_id, fields)
    return index


class CmoreNotifier:
    kind = "cmore"
    config_model = CmoreConfig

    def __init__(
        self,
        config: CmoreConfig,
        username: str,
        password: str,
        http: HttpSettings | None = None,
        *,
        channel_id: int | None = None,
    ):
        http = http or HttpSettings()
        self.config = config
        self._channel_id = channel_id
        self._username = username
        self._password = password
        self._cache_key = (config.base_url, username, config.unique_id)
        timeout = httpx.Timeout(config.timeout_s or http.timeout_s, connect=http.connect_timeout_s)
        self._client = httpx.Client(
            base_url=config.base_url + "/",
            timeout=timeout,
            headers={"User-Agent": http.user_agent},
            verify=tls_context(),
        )

    @classmethod
    def from_channel(cls, channel: Channel, secrets: SecretResolver, http: HttpSettings) -> CmoreNotifier:
        cfg = parse_config(CmoreConfig, channel)
        username = cfg.username if cfg.username else secrets(cfg.username_setting or "")
        return cls(cfg, username, secrets(cfg.password_setting), http, channel_id=channel.id)

    def __repr__(self) -> str:
        return f"CmoreNotifier({self.config.base_url})"

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------------------------ HTTP
    def _send(self, what: str, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self._client.request(method, path.lstrip("/"), **kw)
        except httpx.TimeoutException as exc:
            err = TransientDeliveryError(f"CMORE {what}: timed out")
            err.ambiguous = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)  # type: ignore[attr-defined]
            raise err from None
        except httpx.TransportError as exc:
            err = TransientDeliveryError(f"CMORE {what}: connection failed ({type(exc).__name__})")
            # sent, then the connection broke (not refused, not a failed connect)
            err.ambiguous = isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)  # type: ignore[attr-defined]
            raise err from None

    def _check(self, what: str, response: httpx.Response) -> Any:
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                return response.text
        detail = redact(response.text[:300], self._password, _tokens.get(self._cache_key))
        raise error_for_status(
            f"CMORE {what}",
            response.status_code,
            detail,
            parse_retry_after(response.headers.get("Retry-After")),
        )

    def _login(self) -> str:
        form = {
            "username": self._username,
            "password": self._password,
            "clientType": "SoftwareClient",
            "uniqueId": self.config.unique_id,
        }
        response = self._send("login", "POST", "/token/login", data=form)
        if response.status_code in (400, 401, 403):
            where = self.config.username_setting or "username"
            raise PermanentDeliveryError(
                f"CMORE login refused ({response.status_code}) for the user in {where}: check "
                f"{where} / {self.config.password_setting}",
                status=response.status_code,
            )
        answer = self._check("login", response)
        token = answer if isinstance(answer, str) else None
        if isinstance(answer, dict):
            token = _first(answer, "token", "access_token", "Token", "accessToken")
        if not token or not isinstance(token, str):
            raise TransientDeliveryError("CMORE login: answer without a token")
        token = token.strip().strip('"')
        with _lock:
            _tokens[self._cache_key] = token
        return token

    def _token(self) -> str:
        with _lock:
            token = _tokens.get(self._cache_key)
        return token or self._login()

    def _authed(self, what: str, method: str, path: str, **kw: Any) -> Any:
        token = self._token()
        response = self._send(what, method, path, headers={"Authorization": f"Token {token}"}, **kw)
        if response.status_code == 401:  # expired or revoked: log in again, once
            with _lock:
                if _tokens.get(self._cache_key) == token:
                    del _tokens[self._cache_key]
            token = self._login()
            response = self._send(what, method, path, headers={"Authorization": f"Token {token}"}, **kw)
            if response.status_code == 401:
                raise PermanentDeliveryError(f"CMORE {what}: 401 again right after a fresh login", status=401)
        return self._check(what, response)

    # ------------------------------------------------------------------------------------ tags
    def tag_index(self) -> dict[str, tuple[Any, dict[str, Any]]]:
        now = time.monotonic()
        with _lock:
            cached = _tags.get(self.config.base_url)
        if cached and now - cached[0] < self.config.tags_ttl_s:
            return cached[1]
        index = _index_tags(self._authed("tag list", "GET", "/v2/tags/getfull"))
        with _lock:
            _tags[self.config.base_url] = (now, index)
        return index

    def event_tags(self, notice: AlertNotice) -> list[dict[str, Any]]:
        mappings = [m for m in self.config.tags if m.when is None or set(m.when) & set(notice.categories)]
        if not mappings:
            return []
        index = self.tag_index()
        values = template_values(notice)
        out = []
        for m in mappings:
            found = index.get(m.tag.strip().lower())
            if found is None:
                raise ChannelConfigError(
                    f"CMORE tag {m.tag!r} not found on {self.config.base_url} (known: "
                    f"{', '.join(sorted(index)[:20]) or 'none'})"
                )
            tag_id, fields = found
            tag_values = []
            for fname, template in m.fields.items():
                fid = fields.get(fname.strip().lower())
                if fid is None:
                    raise ChannelConfigError(
                        f"CMORE tag {m.tag!r} has no field {fname!r} "
                        f"(fields: {', '.join(sorted(fields)) or 'none'})"
                    )
                tag_values.append({"fieldId": fid, "value": render(template, values)})
            out.append({"tagId": tag_id, "values": tag_values})
        return out

    # ------------------------------------------------------------------------------------ messages
    def reference(self, notice: AlertNotice) -> str:
        return delivery_reference(notice.alert_id, self._channel_id, self.config.ref_prefix)

    def event_body(self, notice: AlertNotice) -> dict[str, Any]:
        description = render(self.config.description_template, template_values(notice)).strip()
        return {
            "description": f"{description}\nTrapAlert ref {self.reference(notice)}".strip(),
            "latitude": notice.camera.latitude,
            "longitude": notice.camera.longitude,
            "altitude": self.config.altitude,
            "accuracy": self.config.accuracy,
            "dateOccurred": notice.started_at.isoformat(),
            "uploadType": "Generated",
            "ownerGroupId": self.config.owner_group_id,
            "tags": self.event_tags(notice),
        }

    def _comment(self, root_id: str, notice: AlertNotice, text: str, with_photo: bool) -> str | None:
        data = {
            "rootMessageId": root_id,
            "description": text,
            "dateOccurred": notice.updated_at.isoformat(),
            "uploadType": "Generated",
        }
        files = None
        if with_photo and notice.photo_jpeg:
            files = {"file": (notice.photo_filename, notice.photo_jpeg, "image/jpeg")}
        answer = self._authed("comment", "POST", self.config.comment_path, data=data, files=files)
        return _message_id(answer)

    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult:
        state: dict[str, Any] = dict(resume.state) if resume else {}
        root = state.get("root_message_id")
        if not root:
            ambiguous = int(state.get("ambiguous_creates") or 0)
            if ambiguous:
                log.warning(
                    "CMORE: creating %s again after %d ambiguous attempt(s); CMORE has no lookup by "
                    "reference, so check for a duplicate event with that reference",
                    self.reference(notice),
                    ambiguous,
                )
            try:
                root = _message_id(
                    self._authed("create event", "POST", "/v2/messages/events", json=self.event_body(notice))
                )
            except TransientDeliveryError as exc:
                if getattr(exc, "ambiguous", False) or exc.status in (502, 504):
                    exc.partial = DeliveryResult(state={**state, "ambiguous_creates": ambiguous + 1})
                raise
            if not root:
                raise TransientDeliveryError("CMORE create event: answer without a message id")
            state = {"root_message_id": root, "comments": [], "photos": []}
        if (
            self.config.photo_comment
            and notice.photo_jpeg
            and notice.photo_filename not in state.get("photos", [])
        ):
            try:
                cid = self._comment(root, notice, f"Photo: {notice.title}", with_photo=True)
            except DeliveryError as exc:
                exc.partial = DeliveryResult(external_id=root, state=state)
                raise
            state = {
                **state,
                "photos": [*state.get("photos", []), notice.photo_filename][-200:],
                "comments": [*state.get("comments", []), cid][-200:],
            }
        return DeliveryResult(external_id=root, state=state)

    def send_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult:
        state = dict(previous.state)
        root = state.get("root_message_id") or previous.external_id
        if not root:
            return self.send_new(notice)
        key = notice.update_key()
        if key in state.get("updates", []):
            return DeliveryResult(external_id=root, state=state)
        text = (
            f"Update: {notice.image_count} photo(s) so far; seen: {notice.what_seen()}; "
            f"max confidence {notice.max_conf:.0%}."
            + (f" Original photo: {notice.photo_url}" if notice.photo_url else "")
        )
        with_photo = self.config.photo_comment and notice.photo_filename not in state.get("photos", [])
        cid = self._comment(str(root), notice, text, with_photo=with_photo)
        photos = list(state.get("photos", []))
        if with_photo and notice.photo_jpeg:
            photos.append(notice.photo_filename)
        state.update(
            root_message_id=root,
            photos=photos[-200:],
            comments=[*state.get("comments", []), cid][-200:],
            updates=[*state.get("updates", []), key][-200:],
        )
        return DeliveryResult(external_id=str(root), state=state)
