"""Builds the real adapters from the settings, once per process (the composition root)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

from .adapters.outbox import Outbox
from .adapters.scoring_client import ScoringClient
from .adapters.storage import Storage
from .db import Database
from .settings import Settings, SettingsError, get_settings


@dataclass
class Services:
    """What handlers need, built lazily from settings: database, storage and (later) the other adapters."""

    settings: Settings

    @cached_property
    def db(self) -> Database:
        if self.settings.database_url is None:
            raise SettingsError("DATABASE_URL is not set")
        return Database(self.settings.database_url.get_secret_value(), self.settings.database_pool_max)

    @cached_property
    def storage(self) -> Storage:
        return Storage(connection_string=self.settings.storage_connection,
                       account_name=self.settings.storage_account_name)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.db, self.storage)

    @cached_property
    def scoring(self) -> ScoringClient:
        s = self.settings
        return ScoringClient(s.scoring_url, s.scoring_api_key.get_secret_value() if s.scoring_api_key else None,
                             connect_timeout_s=s.scoring_connect_timeout_s, read_timeout_s=s.scoring_read_timeout_s,
                             retry_budget_s=s.scoring_retry_budget_s, backoff_base_s=s.scoring_backoff_base_s,
                             backoff_max_s=s.scoring_backoff_max_s, retry_after_max_s=s.scoring_retry_after_max_s)

    @cached_property
    def secrets(self):
        """Resolves the secret settings named in channel configs: the environment (Azure app settings, Key
        Vault references), then the Values of local.settings.json. Values are never stored or logged."""
        import json
        import os
        from pathlib import Path

        from .notify.base import EnvSecrets

        extra: dict[str, str] = {}
        path = Path(os.environ.get("TRAPALERT_LOCAL_SETTINGS", "local.settings.json"))
        try:
            values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
            extra = {k: str(v) for k, v in values.items() if isinstance(v, str | int)}
        except (OSError, ValueError, AttributeError):
            pass
        return EnvSecrets(extra=extra)


def check_settings_on_start() -> None:
    """In a Functions host (Azure or local), read the settings at start so that a missing or malformed
    one fails the start with its name, not the first request. Importing the app elsewhere (tests of its
    metadata, tooling) does not need settings."""
    import os

    if os.environ.get("FUNCTIONS_WORKER_RUNTIME"):
        get_settings()


_services: Services | None = None
_lock = threading.Lock()


def services() -> Services:
    """The Services of this process."""
    global _services
    with _lock:
        if _services is None:
            _services = Services(get_settings())
            from .telemetry import configure_telemetry

            secret = _services.settings.applicationinsights_connection_string
            configure_telemetry(secret.get_secret_value() if secret else None)
        return _services


def reset_services() -> None:
    """Forget the process's services (tests and the CLI use it after changing settings)."""
    global _services
    with _lock:
        if _services is not None and "db" in _services.__dict__:
            _services.db.close()
        _services = None
        get_settings.cache_clear()
