"""CMORE (CSIR Command and Control Collaborator) adapter, as the open-source integration talks to CMORE.

The reference is PADAS ``gundi-integration-cmore`` (the integration parks use to reach CMORE in production;
it cites CSIR's CMORE API reference): ``app/datasource/client.py`` (endpoints and bodies),
``app/datasource/tag_index.py`` (the tag catalogue), ``app/actions/handlers.py`` (the event's ``messageId``
kept for later comments). Requests, relative to ``base_url`` (``https://<server>/za/WebAPI/api``), all
through the project's one HTTP transport (:mod:`functions.notify.http`):

Authentication
    ``Authorization: Token <token>``. Either an API token held in an app setting (``token_setting``, the
    integration's ``AuthenticateConfig.token``: the raw value, a ``Token `` prefix is tolerated), or a login
    ``POST /token/login`` (form ``username``, ``password``, ``clientType=SoftwareClient``, ``uniqueId``;
    ``CmoreClient.login``) whose token is cached per process and per (server, user, uniqueId); a 401 on any
    call then drops it, logs in again and repeats the call once.

``GET /v2/tags/getfull`` (``CmoreClient.get_tags``)
    the tag catalogue: a list of tag *domains*, each with ``tags[]``, each tag with ``fields[]``
    (``tag_index._build_index``). It is large and takes about 25 s in production, so it gets its own
    timeout (``tags_timeout_s``, 60 s by default), is cached per process and per (server, account) (tag
    visibility depends on the account's share group), and refreshed in the background after ``tags_ttl_s``:
    a stale catalogue keeps serving deliveries while one refresh runs; only the very first load blocks.

Tags are configured by **id** (``{"tag": 501, "fields": {"9001": "{camera}"}}``): CMORE tag and field
names are mutable (the integration prefers ids for that reason). A tag or field given by name is refused
with a :class:`ChannelConfigError` that lists the ids that name matches, so the operator can paste them.

``POST /v2/messages/events`` (``CmoreClient.post_event``)
    JSON ``{description, latitude, longitude, altitude, accuracy, dateOccurred, uploadType: "Generated",
    ownerGroupId, tags: [{tagId, values: [{fieldId, value}]}]}``. The answer's ``messageId``
    (``handlers._extract_message_id``) is kept as the root message id in ``DeliveryResult.state``.

``POST /comment`` (no ``v2`` prefix; ``CmoreClient.post_comment`` / ``post_comment_with_file``)
    updates and photos: JSON ``{description, rootMessageId, uploadType}``, or, with the photo, multipart with
    the same fields plus a ``file`` part (media comments are how the CMORE UI shows photos). Write endpoints
    may answer 2xx with an empty body (``client._safe_json``): a comment's id is kept when there is one.

Timeouts, connection errors, 5xx, 408 and 429 (with Retry-After) raise TransientDeliveryError; other 4xx
raise PermanentDeliveryError (the integration's ``_giveup_on_client_error``). Retries with backoff are the
queue's job (functions/middleware/retry.py), not this adapter's.

Duplicate window that stays open (issue 13): every event's description ends with the delivery reference
(``TrapAlert ref TA<alert id>C<channel id>``, :func:`delivery_reference`), but CMORE offers no way we know of
to find an event by it (the integration only writes messages and reads tags, the classification tree and
gateway mappings). So a create that failed *ambiguously* (:func:`functions.notify.http.ambiguous`: a read
timeout, a reset after sending, 502/504) is created again on the next attempt; the adapter records
``ambiguous_creates`` in the partial state and logs a warning naming the reference, so an operator can
find and close the duplicate.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
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
    http_url,
    parse_config,
)
from .http import Transport, ambiguous, body_of

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
_MAX_REMEMBERED = 200


def _is_id(ref: int | str) -> bool:
    return isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdecimal())


class TagMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: int | str = Field(description="the CMORE tag id (a name is refused with the ids it matches)")
    fields: dict[str, str] = Field(
        default_factory=dict, description="field id -> value template, e.g. {'9001': '{camera}'}"
    )
    when: list[str] | None = Field(default=None, description="only when one of these categories was seen")

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: int | str) -> int | str:
        if isinstance(v, str) and not v.strip():
            raise ValueError("give the CMORE tag id")
        return int(v) if _is_id(v) else v

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
    token_setting: str | None = Field(default=None, description="app setting holding a CMORE API token")
    username: str | None = None
    username_setting: str | None = None
    password_setting: str | None = None
    unique_id: str = "trapalert"
    owner_group_id: int = Field(description="the ShareGroupId events are posted to")
    tags: list[TagMapping] = Field(default_factory=list)
    description_template: str = "{title}\n{summary}\nCamera {camera} ({park}). Photo: {photo_url}"
    altitude: float = 0.0
    accuracy: float = 10.0
    photo_comment: bool = True
    tags_ttl_s: float = Field(default=3600.0, ge=0)
    tags_timeout_s: float = Field(
        default=60.0, gt=0, description="read timeout of GET /v2/tags/getfull (about 25 s in production)"
    )
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
    def _auth(self) -> CmoreConfig:
        login = bool(self.username or self.username_setting or self.password_setting)
        if self.token_setting and login:
            raise ValueError("give token_setting, or a login (username/username_setting + password_setting)")
        if not self.token_setting:
            if not (self.username or self.username_setting):
                raise ValueError("give token_setting, or username or username_setting")
            if not self.password_setting:
                raise ValueError("a login needs password_setting")
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


# ------------------------------------------------------------------------------------------ catalogue
@dataclass(frozen=True)
class TagInfo:
    id: int
    name: str
    domain: str
    fields: dict[int, str] = field(default_factory=dict)  # field id -> name


@dataclass(frozen=True)
class Catalogue:
    """The tags one account sees (``tag_index._build_index``: domains -> tags -> fields)."""

    tags: dict[int, TagInfo]

    @classmethod
    def parse(cls, payload: Any) -> Catalogue:
        tags: dict[int, TagInfo] = {}
        for domain in payload if isinstance(payload, list) else []:
            if not isinstance(domain, dict):
                continue
            for tag in domain.get("tags") or []:
                if not isinstance(tag, dict) or not _is_id(tag.get("id", "")) or not tag.get("name"):
                    continue
                fields = {
                    int(f["id"]): str(f["name"])
                    for f in tag.get("fields") or []
                    if isinstance(f, dict) and _is_id(f.get("id", "")) and f.get("name")
                }
                tid = int(tag["id"])
                tags[tid] = TagInfo(tid, str(tag["name"]), str(domain.get("name") or ""), fields)
        return cls(tags)

    def tags_named(self, name: str) -> list[TagInfo]:
        key = name.strip().casefold()
        return [t for t in self.tags.values() if t.name.strip().casefold() == key]


def _ids_text(tags: list[TagInfo]) -> str:
    return ", ".join(f"{t.id} (domain {t.domain!r})" if t.domain else str(t.id) for t in tags)


# ------------------------------------------------------------------------------- per-process caches
_lock = threading.Lock()
_tokens: dict[tuple[str, str, str], str] = {}
_catalogues: dict[tuple[str, str], tuple[float, Catalogue]] = {}
_refreshing: dict[tuple[str, str], threading.Thread | None] = {}


def clear_caches() -> None:
    """Forget cached tokens and tag catalogues (tests; a credential rotation)."""
    join_refreshes()
    with _lock:
        _tokens.clear()
        _catalogues.clear()


def join_refreshes(timeout: float = 120.0) -> None:
    """Wait for the background catalogue refreshes that are running (tests, shutdown)."""
    with _lock:
        threads = [t for t in _refreshing.values() if t is not None]
    for t in threads:
        t.join(timeout)


def _message_id(answer: Any) -> str | None:
    """``messageId`` of a CMORE write answer (``handlers._extract_message_id``); ``id`` for comments."""
    if isinstance(answer, dict):
        for key in ("messageId", "id", "rootMessageId"):
            value = answer.get(key)
            if isinstance(value, int | str) and str(value).strip():
                return str(value).strip()
        if isinstance(answer.get("data"), dict):
            return _message_id(answer["data"])
    return None


class CmoreNotifier:
    kind = "cmore"
    config_model = CmoreConfig

    def __init__(
        self,
        config: CmoreConfig,
        username: str | None = None,
        password: str | None = None,
        http: HttpSettings | None = None,
        *,
        channel_id: int | None = None,
        token: str | None = None,
    ):
        self.config = config
        self._http = http or HttpSettings()
        self._channel_id = channel_id
        self._username = username or ""
        self._password = password or ""
        self._api_token = None
        if token:
            raw = token.strip()
            self._api_token = raw[6:].strip() if raw.lower().startswith("token ") else raw
        who = self._username if self._api_token is None else f"token:{config.token_setting}"
        self._cache_key = (config.base_url, who, config.unique_id)
        self._catalogue_key = (config.base_url, who)
        self._transport = Transport(
            "CMORE",
            self._http,
            timeout_s=config.timeout_s,
            base_url=config.base_url,
            secrets=[s for s in (self._password, self._api_token) if s],
        )

    @classmethod
    def from_channel(cls, channel: Channel, secrets: SecretResolver, http: HttpSettings) -> CmoreNotifier:
        cfg = parse_config(CmoreConfig, channel)
        if cfg.token_setting:
            return cls(cfg, http=http, channel_id=channel.id, token=secrets(cfg.token_setting))
        username = cfg.username if cfg.username else secrets(cfg.username_setting or "")
        return cls(cfg, username, secrets(cfg.password_setting or ""), http, channel_id=channel.id)

    def __repr__(self) -> str:
        return f"CmoreNotifier({self.config.base_url})"

    def close(self) -> None:
        self._transport.close()

    def _clone(self) -> CmoreNotifier:
        """A notifier with its own HTTP client (for the background catalogue refresh)."""
        return CmoreNotifier(
            self.config,
            self._username,
            self._password,
            self._http,
            channel_id=self._channel_id,
            token=self._api_token,
        )

    # ------------------------------------------------------------------------------------ auth
    def _login(self) -> str:
        form = {
            "username": self._username,
            "password": self._password,
            "clientType": "SoftwareClient",
            "uniqueId": self.config.unique_id,
        }
        response = self._transport.request(
            "POST", "/token/login", what="login", data=form, accept=(400, 401, 403)
        )
        if response.status_code in (400, 401, 403):
            where = self.config.username_setting or "username"
            raise PermanentDeliveryError(
                f"CMORE login refused ({response.status_code}) for the user in {where}: check "
                f"{where} / {self.config.password_setting}",
                status=response.status_code,
            )
        answer = body_of(response)
        token = answer if isinstance(answer, str) else None
        if isinstance(answer, dict):
            for key in ("token", "securityToken", "access_token", "Token", "accessToken"):
                if isinstance(answer.get(key), str) and answer[key].strip():
                    token = answer[key]
                    break
        if not token or not isinstance(token, str):
            raise TransientDeliveryError("CMORE login: answer without a token")
        token = token.strip().strip('"')
        self._transport.add_secret(token)
        with _lock:
            _tokens[self._cache_key] = token
        return token

    def _token(self) -> str:
        if self._api_token is not None:
            return self._api_token
        with _lock:
            token = _tokens.get(self._cache_key)
        if token:
            self._transport.add_secret(token)
        return token or self._login()

    def _authed(self, what: str, method: str, path: str, **kw: Any) -> Any:
        token = self._token()
        headers = {"Authorization": f"Token {token}"}
        response = self._transport.request(method, path, what=what, headers=headers, accept=(401,), **kw)
        if response.status_code == 401:
            if self._api_token is not None:
                raise PermanentDeliveryError(
                    f"CMORE {what}: the API token in setting {self.config.token_setting} was rejected (401)",
                    status=401,
                )
            with _lock:  # expired or revoked: log in again, once
                if _tokens.get(self._cache_key) == token:
                    del _tokens[self._cache_key]
            headers = {"Authorization": f"Token {self._login()}"}
            response = self._transport.request(method, path, what=what, headers=headers, accept=(401,), **kw)
            if response.status_code == 401:
                raise PermanentDeliveryError(f"CMORE {what}: 401 again right after a fresh login", status=401)
        return body_of(response)

    # ------------------------------------------------------------------------------------ tags
    def load_catalogue(self) -> Catalogue:
        """``GET /v2/tags/getfull`` now (with its own long read timeout), and cache it."""
        timeout = httpx.Timeout(self.config.tags_timeout_s, connect=self._http.connect_timeout_s)
        catalogue = Catalogue.parse(self._authed("tag catalogue", "GET", "/v2/tags/getfull", timeout=timeout))
        with _lock:
            _catalogues[self._catalogue_key] = (time.monotonic(), catalogue)
        log.info("CMORE %s: %d tags visible", self.config.base_url, len(catalogue.tags))
        return catalogue

    def _refresh_in_background(self) -> None:
        key = self._catalogue_key
        with _lock:
            if key in _refreshing:
                return
            _refreshing[key] = None  # claimed; the thread replaces it below
        worker = self._clone()

        def run() -> None:
            try:
                worker.load_catalogue()
            except Exception as exc:  # noqa: BLE001 - the stale catalogue stays; the next use tries again
                log.warning("CMORE %s: tag catalogue refresh failed: %s", self.config.base_url, exc)
            finally:
                worker.close()
                with _lock:
                    _refreshing.pop(key, None)

        thread = threading.Thread(target=run, name="cmore-tags-refresh", daemon=True)
        with _lock:
            _refreshing[key] = thread
        thread.start()

    def catalogue(self) -> Catalogue:
        """The cached catalogue; a stale one is used while a background refresh runs (the first blocks)."""
        with _lock:
            cached = _catalogues.get(self._catalogue_key)
        if cached is None:
            return self.load_catalogue()
        if time.monotonic() - cached[0] >= self.config.tags_ttl_s:
            self._refresh_in_background()
        return cached[1]

    def _resolve(self, catalogue: Catalogue, m: TagMapping) -> tuple[TagInfo, dict[int, str]]:
        """The tag of one mapping and its field id -> template; ChannelConfigError says what to fix."""
        if not isinstance(m.tag, int):
            named = catalogue.tags_named(m.tag)
            hint = (
                f'it matches tag id {_ids_text(named)}: configure "tag": {named[0].id}'
                if named
                else "no tag of that name is visible to this account"
            )
            raise ChannelConfigError(
                f"CMORE tag {m.tag!r} is configured by name; tags are configured by id (names change): {hint}"
            )
        tag = catalogue.tags.get(m.tag)
        if tag is None:
            raise ChannelConfigError(
                f"CMORE tag id {m.tag} is not visible to this account on {self.config.base_url} "
                f"(subscribe the share group to its tag domain, or fix the id; "
                f"{len(catalogue.tags)} tags visible)"
            )
        values: dict[int, str] = {}
        for ref, template in m.fields.items():
            if _is_id(ref) and int(ref) in tag.fields:
                values[int(ref)] = template
                continue
            if _is_id(ref):
                raise ChannelConfigError(
                    f"CMORE tag {tag.id} ({tag.name!r}) has no field id {ref} (fields: "
                    + (", ".join(f"{i} {n!r}" for i, n in tag.fields.items()) or "none")
                    + ")"
                )
            ids = [i for i, n in tag.fields.items() if n.strip().casefold() == ref.strip().casefold()]
            raise ChannelConfigError(
                f"CMORE field {ref!r} of tag {tag.id} is configured by name; fields are configured by id: "
                + (
                    f"it matches field id {', '.join(map(str, ids))}"
                    if ids
                    else "the tag has no field of that name"
                )
            )
        return tag, values

    def event_tags(self, notice: AlertNotice) -> list[dict[str, Any]]:
        mappings = [m for m in self.config.tags if m.when is None or set(m.when) & set(notice.categories)]
        if not mappings:
            return []
        catalogue = self.catalogue()
        values = template_values(notice)
        out = []
        for m in mappings:
            tag, fields = self._resolve(catalogue, m)
            out.append(
                {
                    "tagId": tag.id,
                    "values": [{"fieldId": fid, "value": render(t, values)} for fid, t in fields.items()],
                }
            )
        return out

    def check(self) -> list[str]:
        """What stops this channel from working (empty when nothing does): the credentials, and each
        configured tag and field against the catalogue this account sees (names answered with their ids)."""
        try:
            catalogue = self.load_catalogue()
        except DeliveryError as exc:
            return [str(exc)]
        problems = []
        for m in self.config.tags:
            try:
                self._resolve(catalogue, m)
            except ChannelConfigError as exc:
                problems.append(str(exc))
        return problems

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
        """``POST /comment``: JSON, or multipart with the photo as the ``file`` part."""
        if with_photo and notice.photo_jpeg:
            data = {"description": text, "rootMessageId": str(root_id), "uploadType": "Generated"}
            files = {"file": (notice.photo_filename, notice.photo_jpeg, "image/jpeg")}
            answer = self._authed("photo comment", "POST", "/comment", data=data, files=files)
        else:
            root: int | str = int(root_id) if _is_id(root_id) else root_id
            body = {"description": text, "rootMessageId": root, "uploadType": "Generated"}
            answer = self._authed("comment", "POST", "/comment", json=body)
        return _message_id(answer)

    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult:
        state: dict[str, Any] = dict(resume.state) if resume else {}
        root = state.get("root_message_id")
        if not root:
            attempts = int(state.get("ambiguous_creates") or 0)
            if attempts:
                log.warning(
                    "CMORE: creating %s again after %d ambiguous attempt(s); CMORE has no lookup by "
                    "reference, so check for a duplicate event with that reference",
                    self.reference(notice),
                    attempts,
                )
            body = self.event_body(notice)
            try:
                root = _message_id(self._authed("create event", "POST", "/v2/messages/events", json=body))
            except TransientDeliveryError as exc:
                if ambiguous(exc):
                    exc.partial = DeliveryResult(state={**state, "ambiguous_creates": attempts + 1})
                raise
            if not root:
                raise TransientDeliveryError("CMORE create event: answer without a messageId")
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
                "photos": [*state.get("photos", []), notice.photo_filename][-_MAX_REMEMBERED:],
                "comments": [*state.get("comments", []), cid][-_MAX_REMEMBERED:],
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
        with_photo = bool(
            self.config.photo_comment
            and notice.photo_jpeg
            and notice.photo_filename not in state.get("photos", [])
        )
        cid = self._comment(str(root), notice, text, with_photo=with_photo)
        photos = list(state.get("photos", []))
        if with_photo:
            photos.append(notice.photo_filename)
        state.update(
            root_message_id=root,
            photos=photos[-_MAX_REMEMBERED:],
            comments=[*state.get("comments", []), cid][-_MAX_REMEMBERED:],
            updates=[*state.get("updates", []), key][-_MAX_REMEMBERED:],
        )
        return DeliveryResult(external_id=str(root), state=state)
