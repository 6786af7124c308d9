"""Builds the real adapters from the settings, once per process (the composition root)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cached_property

from .adapters.outbox import Outbox
from .adapters.scoring_client import ScoringClient
from .adapters.storage import Storage
from .db import Database
from .settings import (
    UNRESOLVED_KEY_VAULT_REFERENCE,
    Settings,
    SettingsError,
    get_settings,
    is_key_vault_reference,
    unresolved_key_vault_references,
)


@dataclass
class Services:
    """What handlers need, built lazily from settings: database, storage and (later) the other adapters."""

    settings: Settings

    @cached_property
    def db(self) -> Database:
        s = self.settings
        if s.database_url is None:
            raise SettingsError("DATABASE_URL is not set")
        password = None
        if s.database_auth == "entra":  # the app's own role, its managed identity's token as the password
            from .db import EntraTokenProvider, default_credential

            credential = default_credential(s.database_entra_client_id)
            password = EntraTokenProvider(credential, s.database_entra_scope)
        return Database(s.database_url.get_secret_value(), s.database_pool_max, password=password,
                        failover_wait_s=s.database_failover_wait_s)

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


# Set in every Functions host process: Azure's (Flex Consumption sets the runtime from functionAppConfig and
# the platform variables below) and the local host's (functions/localhost/host.py, like `func start`).
# (Not CONTAINER_NAME: any container runtime may set it, e.g. a CI runner's.)
_HOST_MARKERS = ("FUNCTIONS_WORKER_RUNTIME", "WEBSITE_SITE_NAME", "WEBSITE_INSTANCE_ID")
_AUTHENTICATION_STRING = re.compile(r"^Authorization=AAD(;ClientId=[0-9a-fA-F-]{36})?$")


def check_settings_on_start() -> None:
    """In a Functions host (Azure or local), read and check the settings when function_app.py is indexed, so
    that a missing, malformed or unresolved one stops the start with its name instead of answering every
    request 500. Importing the app elsewhere (tests of its metadata, tooling) does not need settings.

    Checked: every Settings field (functions/settings.py: required ones present, values well formed, none an
    unresolved ``@Microsoft.KeyVault(...)`` reference); any other app setting that is an unresolved Key Vault
    reference (the channel secrets); DATABASE_URL (every function needs the database); and
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING (Entra ingestion: ``Authorization=AAD[;ClientId=<id>]``).
    Raises SettingsError naming every bad setting; the message is logged too (Azure shows it in the host's
    log and Application Insights as the indexing failure)."""
    import logging
    import os

    if not any(os.environ.get(marker) for marker in _HOST_MARKERS):
        return
    problems: list[str] = []
    unresolved = unresolved_key_vault_references()
    try:
        settings = get_settings()
    except SettingsError as exc:
        problems.append(str(exc))
        settings = None
    reported = " ".join(problems)
    problems += [
        f"{name}: is {UNRESOLVED_KEY_VAULT_REFERENCE}" for name in unresolved if f"{name}:" not in reported
    ]
    if settings is not None and settings.database_url is None:
        problems.append("DATABASE_URL: is not set")
    auth = os.environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")
    if auth and not is_key_vault_reference(auth) and not _AUTHENTICATION_STRING.match(auth.strip()):
        problems.append("APPLICATIONINSIGHTS_AUTHENTICATION_STRING: must be Authorization=AAD or "
                        "Authorization=AAD;ClientId=<client id of a user-assigned identity>")
    if problems:
        message = "the Function app cannot start: " + "; ".join(problems)
        logging.getLogger("trapalert.settings").critical(message)
        raise SettingsError(message)


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
