"""Settings of the Function app, read once per process.

Every setting is an environment variable named exactly like the Azure app setting (Key Vault references in
Azure resolve to plain environment variables before Python starts). For local runs the ``Values`` of
``local.settings.json`` (the Functions Core Tools format) are read too; real environment variables win.
A missing or malformed setting fails at start with an error that names it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

LOCAL_SETTINGS_FILE = "local.settings.json"


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


STACK_STATE_FILE = Path(".trapalert") / "stack.json"

# An app setting whose Key Vault reference the platform could not resolve (the secret is not in the vault
# yet, or the app's identity may not read it) reaches the app as the reference itself.
_KEY_VAULT_REFERENCE = re.compile(r"^\s*@Microsoft\.KeyVault\s*\(", re.IGNORECASE)
UNRESOLVED_KEY_VAULT_REFERENCE = (
    "an unresolved Key Vault reference (the secret is missing from the vault or the app's identity may not "
    "read it; see the app setting's Key Vault reference status in the portal)"
)


def is_key_vault_reference(value: object) -> bool:
    """True for the literal text of a Key Vault reference (``@Microsoft.KeyVault(...)``)."""
    return isinstance(value, str) and _KEY_VAULT_REFERENCE.match(value) is not None


def unresolved_key_vault_references(environ: Mapping[str, str] | None = None) -> list[str]:
    """The names of the environment variables (app settings) that hold an unresolved Key Vault reference:
    settings of this class and the channel secrets named by channel configs alike."""
    env = os.environ if environ is None else environ
    return sorted(name for name, value in env.items() if is_key_vault_reference(value))


class LocalSettingsSource(PydanticBaseSettingsSource):
    """The ``Values`` object of local.settings.json (path from TRAPALERT_LOCAL_SETTINGS or the cwd)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None = None, key: str = "Values"):
        super().__init__(settings_cls)
        path = path or Path(os.environ.get("TRAPALERT_LOCAL_SETTINGS", LOCAL_SETTINGS_FILE))
        self._values: dict[str, Any] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise SettingsError(f"{path}: not valid JSON ({exc})") from exc
            values = data.get(key, {}) if isinstance(data, dict) else {}
            if not isinstance(values, dict):
                raise SettingsError(f"{path}: '{key}' must be an object")
            self._values = {k: v for k, v in values.items() if v not in (None, "")}

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            aliases = []
            if isinstance(field.validation_alias, AliasChoices):
                aliases = [a for a in field.validation_alias.choices if isinstance(a, str)]
            elif isinstance(field.validation_alias, str):
                aliases = [field.validation_alias]
            for alias in aliases or [name]:
                if alias in self._values:
                    out[name] = self._values[alias]
                    break
        return out


_REQUIRED: Any = ...


def _env(name: str, default: Any = None) -> Any:
    return Field(default, validation_alias=AliasChoices(name))


class Settings(BaseSettings):
    """All settings of the Function app. Names are the Azure app setting names."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", populate_by_name=True)

    # Storage: a connection string locally (UseDevelopmentStorage=true or Azurite's), identity in Azure.
    storage_connection: str | None = _env("AzureWebJobsStorage")
    storage_account_name: str | None = _env("AzureWebJobsStorage__accountName")

    # The database (functions/db): DATABASE_URL, or DATABASE_HOST/DATABASE_NAME/DATABASE_USER[/DATABASE_PORT]
    # from which the URL is composed. DATABASE_AUTH=password: the URL (or libpq's PGPASSWORD) carries the
    # password (local stack, tests). DATABASE_AUTH=entra (Azure): the URL names the app's own role and no
    # password; each new connection sends the managed identity's access token instead (docs/deploy.md).
    database_url: SecretStr | None = _env("DATABASE_URL")
    database_auth: str = Field("password", validation_alias="DATABASE_AUTH", pattern="^(password|entra)$")
    database_host: str | None = _env("DATABASE_HOST")
    database_port: int = Field(5432, validation_alias="DATABASE_PORT", gt=0, lt=65536)
    database_name: str | None = _env("DATABASE_NAME")
    database_user: str | None = _env("DATABASE_USER")
    database_sslmode: str | None = Field(
        None, validation_alias="DATABASE_SSLMODE",
        pattern="^(disable|allow|prefer|require|verify-ca|verify-full)$",
    )
    # Client id of a user-assigned identity for the token (none: the system-assigned identity).
    database_entra_client_id: str | None = _env("DATABASE_ENTRA_CLIENT_ID")
    database_entra_scope: str = Field(
        "https://ossrdbms-aad.database.windows.net/.default", validation_alias="DATABASE_ENTRA_SCOPE"
    )
    # Connections per Function instance; in Azure derived from max instances and max_connections (main.bicep).
    database_pool_max: int = Field(8, validation_alias="DATABASE_POOL_MAX", ge=1, le=100)
    # How long getting a connection keeps trying while the server refuses or drops connections (a restart, the
    # end of a failover). Short: the webhook shares the pool and its caller gives up after ~30 s; longer
    # outages are left to the queue retry middleware (and SendGrid's retries).
    database_failover_wait_s: float = Field(10.0, validation_alias="DATABASE_FAILOVER_WAIT_S", ge=0, le=120)

    scoring_url: str = _env("SCORING_URL", _REQUIRED)
    scoring_api_key: SecretStr | None = _env("SCORING_API_KEY")
    scoring_connect_timeout_s: float = Field(2.0, validation_alias="SCORING_CONNECT_TIMEOUT_S", gt=0)
    scoring_read_timeout_s: float = Field(30.0, validation_alias="SCORING_READ_TIMEOUT_S", gt=0)
    # process-image: total time the scoring client retries a transient failure before the message fails
    scoring_retry_budget_s: float = Field(20.0, validation_alias="SCORING_RETRY_BUDGET_S", ge=0, le=240)
    scoring_retry_after_max_s: float = Field(10.0, validation_alias="SCORING_RETRY_AFTER_MAX_S", ge=0)
    scoring_backoff_base_s: float = Field(0.25, validation_alias="SCORING_BACKOFF_BASE_S", gt=0)
    scoring_backoff_max_s: float = Field(4.0, validation_alias="SCORING_BACKOFF_MAX_S", gt=0)

    sendgrid_api_key: SecretStr | None = _env("SENDGRID_API_KEY")
    sendgrid_api_host: str = Field("https://api.sendgrid.com", validation_alias="SENDGRID_API_HOST")
    # PEM or base64 DER public key of SendGrid's signed webhook; when set, unsigned posts are refused.
    sendgrid_webhook_public_key: str | None = _env("SENDGRID_WEBHOOK_PUBLIC_KEY")
    sendgrid_webhook_max_age_s: int = Field(600, validation_alias="SENDGRID_WEBHOOK_MAX_AGE_S", gt=0)
    # The OAuth option of SendGrid's webhook security policy (functions/inbound/signature.py): SendGrid gets a
    # token from our identity provider (client credentials) and sends it as Authorization: Bearer. When the
    # issuer is set, every POST needs a JWT of that issuer and audience, signed by a key of the JWKS (JSON, or
    # an https URL fetched and cached), with the scope when one is set. With the public key too: both.
    sendgrid_webhook_oauth_issuer: str | None = _env("SENDGRID_WEBHOOK_OAUTH_ISSUER")
    sendgrid_webhook_oauth_audience: str | None = _env("SENDGRID_WEBHOOK_OAUTH_AUDIENCE")
    sendgrid_webhook_oauth_jwks: str | None = _env("SENDGRID_WEBHOOK_OAUTH_JWKS")
    sendgrid_webhook_oauth_scope: str | None = _env("SENDGRID_WEBHOOK_OAUTH_SCOPE")

    # Limits on inbound email.
    max_email_bytes: int = Field(30 * 1024 * 1024, validation_alias="MAX_EMAIL_BYTES", gt=0)
    max_attachments: int = Field(20, validation_alias="MAX_ATTACHMENTS", gt=0)
    max_image_pixels: int = Field(50_000_000, validation_alias="MAX_IMAGE_PIXELS", gt=0)
    # Uploads (console, `trapalert upload`; functions/inbound/upload.py): photos per upload (zip members
    # included), bytes per upload (zips counted expanded), bytes per photo, and the largest expansion ratio
    # of a zip member (a zip bomb is refused by ratio and by size before it is expanded).
    upload_max_files: int = Field(2000, validation_alias="UPLOAD_MAX_FILES", gt=0, le=100_000)
    upload_max_bytes: int = Field(2 * 1024**3, validation_alias="UPLOAD_MAX_BYTES", gt=0)
    upload_max_file_bytes: int = Field(50 * 1024 * 1024, validation_alias="UPLOAD_MAX_FILE_BYTES", gt=0)
    upload_max_zip_ratio: float = Field(100.0, validation_alias="UPLOAD_MAX_ZIP_RATIO", gt=1)
    # Video clips (functions/inbound/video.py): larger clips are rejected (kept in the raw email); frames are
    # sampled by the scoring service every VIDEO_EVERY_S s, at most VIDEO_MAX_FRAMES (first and last incl.).
    video_max_bytes: int = Field(30 * 1024 * 1024, validation_alias="VIDEO_MAX_BYTES", gt=0)
    video_every_s: float = Field(1.0, validation_alias="VIDEO_EVERY_S", gt=0, le=600)
    video_max_frames: int = Field(20, validation_alias="VIDEO_MAX_FRAMES", ge=2, le=256)
    # Photos given as links (RidgeTec), fetched by process-image from the brand's https hosts only
    # (functions/inbound/links.py): at most this many bytes, within this many seconds per fetch.
    link_photo_max_bytes: int = Field(20 * 1024 * 1024, validation_alias="LINK_PHOTO_MAX_BYTES", gt=0)
    link_photo_timeout_s: float = Field(20.0, validation_alias="LINK_PHOTO_TIMEOUT_S", gt=0, le=120)
    # TEST ONLY: comma-separated host[:port]s that may serve link photos over plain http (local stand-ins,
    # which cannot have a public certificate). Empty in every deployed environment.
    link_photo_allow_http_hosts: str = Field("", validation_alias="LINK_PHOTO_ALLOW_HTTP_HOSTS")
    # Bounds of parsing (functions/inbound/parse_sendgrid.py, docs/inbound.md "Bounds"): subject and bodies
    # are cut before any pattern runs (recorded as a defect); raw MIME over the part or depth limit: rejected.
    max_subject_chars: int = Field(1000, validation_alias="MAX_SUBJECT_CHARS", ge=100, le=100_000)
    max_body_chars: int = Field(64 * 1024, validation_alias="MAX_BODY_CHARS", ge=1024, le=4 * 1024 * 1024)
    max_header_bytes: int = Field(
        256 * 1024, validation_alias="MAX_HEADER_BYTES", ge=4096, le=8 * 1024 * 1024
    )
    max_mime_parts: int = Field(200, validation_alias="MAX_MIME_PARTS", ge=10, le=5000)
    max_mime_depth: int = Field(20, validation_alias="MAX_MIME_DEPTH", ge=3, le=100)
    max_mime_lines: int = Field(500_000, validation_alias="MAX_MIME_LINES", ge=10_000, le=5_000_000)
    # Authentication-Results headers (raw mode) trusted when their authserv-id is one of these (comma list);
    # empty: none is trusted, SendGrid's dkim/SPF fields decide.
    inbound_trusted_authserv_ids: str = Field("", validation_alias="INBOUND_TRUSTED_AUTHSERV_IDS")
    # Extra per-brand camera-id patterns, JSON: [{"brand": "...", "field": "subject|body|any", "regex": "...(?P<camera>...)..."}]
    # tried before the built-in ones (functions/inbound/identify.py, docs/inbound.md).
    inbound_camera_patterns: str | None = _env("INBOUND_CAMERA_PATTERNS")

    # Where links in alerts point (ops page, photo links); the Function app's public URL in Azure.
    public_base_url: str = Field("http://127.0.0.1:7071", validation_alias="PUBLIC_BASE_URL")
    photo_link_hours: int = Field(6, validation_alias="PHOTO_LINK_HOURS", gt=0, le=48)
    # The park console (docs/console.md): "easyauth" when App Service authentication (Entra ID) is on
    # (then, and only with the platform's WEBSITE_AUTH_ENABLED=True, X-MS-CLIENT-PRINCIPAL is trusted);
    # "links": one-time sign-in links only. CONSOLE_MAP_TILES: an https XYZ tile template ("" = no tiles).
    console_auth: str = Field("links", validation_alias="CONSOLE_AUTH", pattern="^(links|easyauth)$")
    console_map_tiles: str = Field(
        "", validation_alias="CONSOLE_MAP_TILES", pattern=r"^(https://[^\s'\"<>]+\{z\}[^\s'\"<>]*)?$"
    )

    # Ops notifications (poison storms): at most one per ops channel per interval; the rest is summarized.
    ops_notify_interval_s: int = Field(900, validation_alias="OPS_NOTIFY_INTERVAL_S", ge=0)

    # Retries of queue work (functions/middleware/retry.py): a transient failure re-enqueues the message with
    # a growing delay (comma-separated seconds; the last repeats), never shorter than a remote's Retry-After,
    # until the horizon; then the message goes to <queue>-poison. A permanent error poisons at once.
    retry_schedule_s: str = Field("5,15,60,300,900,1800", validation_alias="RETRY_SCHEDULE_S")
    retry_horizon_send_alert_s: float = Field(24 * 3600, validation_alias="RETRY_HORIZON_SEND_ALERT_S", gt=0)
    retry_horizon_process_image_s: float = Field(
        6 * 3600, validation_alias="RETRY_HORIZON_PROCESS_IMAGE_S", gt=0
    )
    # the bulk lane (process-image-bulk): photos one instance scores at once (functions/handlers/batch.py)
    bulk_concurrency: int = Field(2, validation_alias="BULK_CONCURRENCY", ge=1, le=32)
    retry_after_max_s: int = Field(3600, validation_alias="RETRY_AFTER_MAX_S", gt=0, le=7 * 24 * 3600)
    # The sweeper timer: work older than this that should have moved on is re-driven.
    sweep_stale_s: int = Field(300, validation_alias="SWEEP_STALE_S", gt=0)

    applicationinsights_connection_string: SecretStr | None = _env("APPLICATIONINSIGHTS_CONNECTION_STRING")
    log_format: str = Field("json", validation_alias="TRAPALERT_LOG_FORMAT", pattern="^(json|text)$")

    @field_validator("scoring_url", "public_base_url", "sendgrid_api_host")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _database(self) -> Settings:
        """Compose DATABASE_URL from its parts when it is not set; in entra mode check that the URL names a
        role, carries no password, and sends the token over TLS (plain text only on loopback)."""
        if self.database_url is None and self.database_host:
            if not self.database_name:
                raise ValueError("DATABASE_NAME: required with DATABASE_HOST")
            self.database_url = SecretStr(compose_database_url(
                self.database_host, self.database_port, self.database_name, self.database_user,
                self.database_sslmode or ("require" if self.database_auth == "entra" else None)))
        if self.database_auth != "entra" or self.database_url is None:
            return self
        from urllib.parse import parse_qs, urlsplit

        url = self.database_url.get_secret_value()
        parts = urlsplit(url) if "://" in url else None
        if parts is None:
            raise ValueError("DATABASE_URL: must be a postgresql:// URL when DATABASE_AUTH=entra")
        if parts.password is not None:
            raise ValueError("DATABASE_URL: carries a password, but DATABASE_AUTH=entra sends an access "
                             "token as the password; remove the password from the URL")
        if not (parts.username or self.database_user):
            raise ValueError("DATABASE_URL: names no role (user), needed for DATABASE_AUTH=entra")
        sslmode = (parse_qs(parts.query).get("sslmode") or [self.database_sslmode or "prefer"])[-1]
        loopback = (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")
        if sslmode not in ("require", "verify-ca", "verify-full") and not loopback:
            raise ValueError(f"DATABASE_URL: sslmode={sslmode} would send the access token unencrypted; use "
                             "sslmode=require (or verify-full)")
        return self

    @field_validator("retry_schedule_s")
    @classmethod
    def _schedule(cls, value: str) -> str:
        try:
            steps = [float(p) for p in value.split(",") if p.strip()]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 5,15,60,300") from None
        if not steps or any(s <= 0 or s > 7 * 24 * 3600 for s in steps):
            raise ValueError("each step must be > 0 and at most 7 days (the queue's visibility limit)")
        return value

    @property
    def retry_schedule(self) -> tuple[float, ...]:
        return tuple(float(p) for p in self.retry_schedule_s.split(",") if p.strip())

    @field_validator("inbound_camera_patterns")
    @classmethod
    def _camera_patterns(cls, value: str | None) -> str | None:
        if value:
            from .inbound.identify import load_patterns

            load_patterns(value)  # raises ValueError naming the bad pattern
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _no_key_vault_reference(cls, value: Any) -> Any:
        if is_key_vault_reference(value):
            raise ValueError(f"is {UNRESOLVED_KEY_VAULT_REFERENCE}")
        return value

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _webhook_public_key(cls, value: str | None) -> str | None:
        if value:
            from cryptography.exceptions import UnsupportedAlgorithm

            from .inbound.signature import load_public_key

            try:
                load_public_key(value)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                raise ValueError(f"not an ECDSA P-256 public key, PEM or base64 DER ({exc})") from None
        return value

    @model_validator(mode="after")
    def _webhook_oauth(self) -> Settings:
        """SENDGRID_WEBHOOK_OAUTH_ISSUER needs the audience and a usable JWKS (a bad one fails at start)."""
        if self.sendgrid_webhook_oauth_issuer:
            from .inbound.signature import OAuthVerifier

            OAuthVerifier(
                self.sendgrid_webhook_oauth_issuer,
                self.sendgrid_webhook_oauth_audience or "",
                self.sendgrid_webhook_oauth_jwks or "",
            )  # raises ValueError naming what is missing or wrong
        return self

    @field_validator("applicationinsights_connection_string")
    @classmethod
    def _appinsights_connection_string(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = dict(p.split("=", 1) for p in value.get_secret_value().split(";") if "=" in p)
            if not parts.get("InstrumentationKey"):
                raise ValueError("not an Application Insights connection string (no InstrumentationKey=...)")
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # Last: what `trapalert stack up` started (Azurite's and the embedded PostgreSQL's addresses).
        return (init_settings, env_settings, LocalSettingsSource(settings_cls),
                LocalSettingsSource(settings_cls, STACK_STATE_FILE, key="settings"))

    def require_storage(self) -> None:
        if not (self.storage_connection or self.storage_account_name):
            raise SettingsError("AzureWebJobsStorage (or AzureWebJobsStorage__accountName) is not set")


def compose_database_url(host: str, port: int, name: str, user: str | None, sslmode: str | None) -> str:
    """``postgresql://user@host:port/name[?sslmode=...]``, without a password."""
    from urllib.parse import quote

    userinfo = f"{quote(user, safe='')}@" if user else ""
    netloc = f"[{host}]" if ":" in host else host
    query = f"?sslmode={sslmode}" if sslmode else ""
    return f"postgresql://{userinfo}{netloc}:{port}/{quote(name, safe='')}{query}"


def _alias_of(field_name: str) -> str:
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias or field_name)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raise SettingsError naming each bad setting."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err.get("loc") or ("?",)
            name = str(loc[0])
            if name in Settings.model_fields:
                name = _alias_of(name)
            problems.append(f"{name}: {err.get('msg')}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
    settings.require_storage()
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once)."""
    return load_settings()
