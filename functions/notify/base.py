"""The notification port: what an alert looks like to a channel, and what a channel adapter promises.

Every adapter (built-in or third-party) turns an :class:`AlertNotice` into requests to one external system
and answers with a :class:`DeliveryResult`, or raises one of the three named errors below. Adapters hold no
database state: whatever they need to update the same remote object later (an EarthRanger event id, a
camera-trap ``group_id``, a CMORE root message id) goes into ``DeliveryResult.state``, which the caller
stores with the delivery record and hands back as ``previous`` for updates.

Secrets never appear in a channel's config: the config names the app setting that holds the secret
(``{"token_setting": "EARTHRANGER_TOKEN_PARKX"}``) and the adapter asks a :class:`SecretResolver` for
its value when it is built. Secret values are never logged, never put in errors, never stored.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

NOTICE_SCHEMA_VERSION = 1

Category = str  # "person" | "vehicle" | "animal" (MegaDetector names); adapters accept any string


# ---------------------------------------------------------------------------------------------------- errors
class NotifyError(Exception):
    """Base of every error an adapter raises on purpose."""


class DeliveryError(NotifyError):
    """A delivery failed.

    ``partial`` is set when something was already created on the remote side before the failure (an
    EarthRanger event whose photo upload then failed, a CMORE event whose photo comment failed). The caller
    stores it like a successful result and passes it back on the next attempt (``send_new(notice,
    resume=partial)`` or ``send_update(notice, previous=partial)``) so that nothing is created twice.
    """

    def __init__(self, message: str, *, status: int | None = None, partial: DeliveryResult | None = None):
        super().__init__(message)
        self.status = status
        self.partial = partial


class TransientDeliveryError(DeliveryError):
    """Try again later: timeouts, connection errors, 5xx, 429. ``retry_after`` in seconds when known."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        partial: DeliveryResult | None = None,
        ambiguous: bool = False,
    ):
        super().__init__(message, status=status, partial=partial)
        self.retry_after = retry_after
        # the request may have been carried out remotely (read timeout, reset after sending, 502/504):
        # see functions.notify.http.ambiguous
        self.ambiguous = ambiguous


class PermanentDeliveryError(DeliveryError):
    """The remote system rejected the request for good (bad request, unknown event type, bad credentials).

    Retrying the same request will not help; the message says what to fix.
    """


class ChannelConfigError(PermanentDeliveryError):
    """The channel's configuration is invalid or a secret setting it names is missing.

    A subclass of PermanentDeliveryError: retrying cannot help until an operator fixes the channel.
    """


# ---------------------------------------------------------------------------------------------------- models
class ParkRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int
    slug: str
    name: str


class CameraRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int
    name: str
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    timezone: str = "UTC"
    zone: str | None = None

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None


class DetectionRef(BaseModel):
    """One detection in MegaDetector form: ``bbox`` = [x_min, y_min, width, height], normalized, top-left."""

    model_config = ConfigDict(frozen=True)
    category: Category
    conf: float = Field(ge=0, le=1)
    bbox: tuple[float, float, float, float]


class AlertNotice(BaseModel):
    """Everything a channel needs to tell rangers about one alert (or one update of it).

    ``photo_jpeg`` is the annotated photo (see :mod:`functions.notify.annotate`) of the image that caused
    this notice; it is never serialized (``model_dump`` leaves it out). ``photo_filename`` should be unique
    per image (e.g. ``<sha256>.jpg``): EarthRanger's camera-trap endpoint de-duplicates on it.
    ``photo_url`` is a time-limited link to the original photo (SAS, hours), ``map_url`` a link to the
    camera's position, ``ops_url`` a link to the alert in the operator UI.
    """

    schema_version: Literal[1] = NOTICE_SCHEMA_VERSION
    alert_id: int
    kind: Literal["new", "update", "health", "ops"] = "new"
    park: ParkRef
    camera: CameraRef
    categories: list[Category] = Field(default_factory=list)
    max_conf: float = Field(default=0.0, ge=0, le=1)
    mean_conf: float = Field(default=0.0, ge=0, le=1)
    image_count: int = Field(default=1, ge=0)
    started_at: AwareDatetime
    updated_at: AwareDatetime
    title: str
    summary: str = ""
    photo_jpeg: bytes | None = Field(default=None, exclude=True, repr=False)
    photo_filename: str = "alert.jpg"
    photo_url: str | None = None
    map_url: str | None = None
    ops_url: str | None = None
    correlation_id: str = ""
    detections: list[DetectionRef] = Field(default_factory=list)

    @field_validator("photo_filename")
    @classmethod
    def _safe_filename(cls, v: str) -> str:
        v = re.sub(r"[^A-Za-z0-9._-]+", "_", v.strip()).strip("._") or "alert.jpg"
        return v[:120]

    # -- helpers shared by the adapters (pure, no I/O)
    def what_seen(self) -> str:
        """'person, vehicle' (in the order given), or 'activity' when no category is known."""
        return ", ".join(dict.fromkeys(self.categories)) or "activity"

    def local_time(self, which: Literal["started", "updated"] = "started") -> datetime:
        """The time in the camera's timezone (UTC when the zone name is unknown)."""
        ts = self.started_at if which == "started" else self.updated_at
        try:
            return ts.astimezone(ZoneInfo(self.camera.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            return ts.astimezone(ZoneInfo("UTC"))

    def update_key(self) -> str:
        """Identifies this notice among the updates of one alert (used to make updates idempotent)."""
        return f"{self.kind}:{self.image_count}:{self.photo_filename}:{self.updated_at.isoformat()}"

    def public_dict(self) -> dict[str, Any]:
        """JSON-ready dict without the photo bytes (the photo travels as ``photo_url``)."""
        return self.model_dump(mode="json")


class Channel(BaseModel):
    """A configured destination of one park (a row of the channels table)."""

    id: int
    park_id: int
    kind: str = Field(min_length=1)
    name: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    zone: str | None = None  # deliver only alerts of cameras in this zone (None: the whole park)
    enabled: bool = True

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Channel:
        """The channel of a ``channels`` table row."""
        return cls(
            id=row["id"],
            park_id=row["park_id"],
            kind=row["kind"],
            name=row["name"],
            config=row["config"] or {},
            zone=row["zone"],
            enabled=row["enabled"],
        )


class DeliveryResult(BaseModel):
    """What a delivery left on the remote side: an id to show to people, and state for later updates.

    ``state`` must be JSON-serializable (the caller stores it as JSONB). Never put secrets in it.
    """

    external_id: str | None = None
    state: dict[str, Any] = Field(default_factory=dict)


class HttpSettings(BaseModel):
    """Network behaviour shared by all adapters of a process (per-channel ``timeout_s`` overrides)."""

    timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    user_agent: str = "TrapAlert/0.1 (+https://github.com/trapalert)"


def close_notifier(notifier: object) -> None:
    """Release what an adapter holds (its HTTP client), if it has a ``close``; never raises."""
    close = getattr(notifier, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - cleanup only; the delivery's outcome is already decided
            pass


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The TLS context of the adapters' httpx clients, one per process: building one loads the CA bundle
    (~25 ms of CPU, measured in the send-alert profile), which a client per delivery paid every time."""
    return httpx.create_ssl_context()


# ---------------------------------------------------------------------------------------------------- port
@runtime_checkable
class Notifier(Protocol):
    """What every channel adapter implements.

    ``send_new`` creates the remote object (event, message, email) for a new alert; ``send_update`` adds
    to the object ``previous`` describes (never a new event where the system allows that). Both return
    the result to store, and raise TransientDeliveryError / PermanentDeliveryError / ChannelConfigError.
    ``resume`` is the ``partial`` of a previous failed ``send_new`` attempt (None on the first attempt).
    """

    kind: str

    def send_new(self, notice: AlertNotice, *, resume: DeliveryResult | None = None) -> DeliveryResult: ...

    def send_update(self, notice: AlertNotice, previous: DeliveryResult) -> DeliveryResult: ...


SecretResolver = Callable[[str], str]
"""``resolver(setting_name) -> value``; raises ChannelConfigError naming the setting when it is missing."""


class EnvSecrets:
    """Reads secrets from environment variables (Azure app settings; Key Vault references resolve to them).

    ``extra`` (e.g. the Values of local.settings.json) is consulted after the environment.
    """

    _NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")

    def __init__(self, environ: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ
        self._extra = dict(extra or {})

    def __call__(self, name: str) -> str:
        if not isinstance(name, str) or not self._NAME.match(name):
            raise ChannelConfigError(f"invalid secret setting name {name!r}")
        value = self._environ.get(name)
        if value in (None, ""):
            value = self._extra.get(name)
        if value in (None, ""):
            raise ChannelConfigError(
                f"secret setting {name} is not set (add it as an app setting / Key Vault reference)"
            )
        return value

    def __repr__(self) -> str:  # never show values
        return "EnvSecrets(<environment>)"


_HTTP_URL = re.compile(r"^https?://[^/\s]+")


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host (what every HTTP-based channel needs)."""
    return bool(_HTTP_URL.match(value))


def http_url(value: str, example: str) -> str:
    """Validate a channel's base URL (``example`` shows the expected form) and drop a trailing slash."""
    if not is_http_url(value):
        raise ValueError(f"must be an http(s) URL such as {example}")
    return value.rstrip("/")


def parse_config(model: type[BaseModel], channel: Channel) -> Any:
    """Validate ``channel.config`` with ``model``; a failure becomes ChannelConfigError listing each field."""
    try:
        return model.model_validate(channel.config)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in err["loc"]) or "(config)"
            problems.append(f"{where}: {err['msg']}")
        raise ChannelConfigError(
            f"channel {channel.id} ({channel.kind} {channel.name!r}): invalid config: " + "; ".join(problems)
        ) from None


def redact(text: str, *secrets: str | None) -> str:
    """Replace every secret value occurring in ``text`` (for messages built from remote answers)."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def delivery_reference(alert_id: int, channel_id: int | None, prefix: str = "TA") -> str:
    """The idempotency reference of one alert on one channel, written into the remote object so that a
    create whose answer was lost (a timeout after the remote committed) can be found again.

    Letters and digits only (``TA4711C12``): full-text search engines (EarthRanger's PostgreSQL
    ``to_tsvector``) keep such a word as one token, and it needs no quoting in any query syntax. Compare it
    as a whole word: a prefix search for ``TA4711C1`` also finds ``TA4711C12``.
    """
    return f"{prefix}{alert_id}" + ("" if channel_id is None else f"C{channel_id}")


def mentions_reference(text: str, ref: str) -> bool:
    """``ref`` occurs in ``text`` as a whole word (not as the prefix of a longer reference)."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(ref)}(?![A-Za-z0-9])", text or "") is not None
