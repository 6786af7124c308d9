"""Settings fail the start, never a request: an unresolved Key Vault reference, a malformed value or a missing
required setting stops function_app.py from loading (Azure's host and the local host alike) with the
setting's name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from functions.bootstrap import check_settings_on_start
from functions.localhost.services import PROJECT_ROOT
from functions.settings import SettingsError, get_settings, load_settings, unresolved_key_vault_references

KV_REF = ("@Microsoft.KeyVault(SecretUri=https://kv-trapalert-dev.vault.azure.net/secrets/"
          "sendgrid-webhook-public-key/)")
BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "SCORING_URL": "http://127.0.0.1:8081",
    "DATABASE_URL": "postgresql://u:pw@127.0.0.1:9/trapalert",
}
MARKERS = ("FUNCTIONS_WORKER_RUNTIME", "WEBSITE_SITE_NAME", "WEBSITE_INSTANCE_ID", "CONTAINER_NAME")


def _p256_public_key_b64() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    return base64.b64encode(der).decode()


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name in BASE or name in MARKERS or name.startswith(
            ("SENDGRID_", "APPLICATIONINSIGHTS_", "EARTHRANGER_")
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRAPALERT_LOCAL_SETTINGS", str(tmp_path / "local.settings.json"))
    monkeypatch.chdir(tmp_path)  # no .trapalert/stack.json here
    get_settings.cache_clear()

    def set_env(**values: str) -> None:
        for k, v in values.items():
            monkeypatch.setenv(k, v)

    set_env(**BASE)
    yield set_env
    get_settings.cache_clear()


def test_an_unresolved_key_vault_reference_is_named(env):
    env(SENDGRID_WEBHOOK_PUBLIC_KEY=KV_REF)
    with pytest.raises(SettingsError, match="SENDGRID_WEBHOOK_PUBLIC_KEY: .*unresolved Key Vault ref") as e:
        load_settings()
    assert "vault.azure.net" not in str(e.value)  # names the setting, does not echo values
    env(SENDGRID_WEBHOOK_PUBLIC_KEY="", DATABASE_URL=" @microsoft.keyvault(VaultName=kv;SecretName=db-url)")
    with pytest.raises(SettingsError, match="DATABASE_URL: .*unresolved Key Vault reference"):
        load_settings()


def test_malformed_keys_are_named(env):
    env(SENDGRID_WEBHOOK_PUBLIC_KEY="not-a-key")
    with pytest.raises(SettingsError, match="SENDGRID_WEBHOOK_PUBLIC_KEY: .*P-256"):
        load_settings()
    env(SENDGRID_WEBHOOK_PUBLIC_KEY=_p256_public_key_b64())
    assert load_settings().sendgrid_webhook_public_key
    env(APPLICATIONINSIGHTS_CONNECTION_STRING="https://westeurope.in.applicationinsights.azure.com/")
    with pytest.raises(SettingsError, match="APPLICATIONINSIGHTS_CONNECTION_STRING: .*InstrumentationKey"):
        load_settings()
    env(APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/")
    assert load_settings().applicationinsights_connection_string is not None


def test_outside_a_functions_host_nothing_is_checked(env, monkeypatch):
    monkeypatch.delenv("SCORING_URL")
    check_settings_on_start()  # tooling and tests import function_app.py without settings


@pytest.mark.parametrize("marker", ["FUNCTIONS_WORKER_RUNTIME", "WEBSITE_SITE_NAME"])
def test_in_a_host_every_bad_setting_is_named_at_once(env, monkeypatch, marker):
    env(**{marker: "python" if marker == "FUNCTIONS_WORKER_RUNTIME" else "func-trapalert-dev-abc123"})
    check_settings_on_start()  # all good
    get_settings.cache_clear()
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(SettingsError, match="DATABASE_URL: is not set"):
        check_settings_on_start()
    get_settings.cache_clear()
    env(EARTHRANGER_TOKEN=KV_REF, SENDGRID_WEBHOOK_PUBLIC_KEY=KV_REF, MAX_ATTACHMENTS="many",
        APPLICATIONINSIGHTS_AUTHENTICATION_STRING="Authorization=Bearer")
    with pytest.raises(SettingsError) as e:
        check_settings_on_start()
    message = str(e.value)
    for name in ("EARTHRANGER_TOKEN", "SENDGRID_WEBHOOK_PUBLIC_KEY", "MAX_ATTACHMENTS",
                 "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"):
        assert f"{name}:" in message, (name, message)
    assert message.count("SENDGRID_WEBHOOK_PUBLIC_KEY:") == 1


def test_entra_authentication_string_forms(env):
    env(FUNCTIONS_WORKER_RUNTIME="python")
    for ok in ("Authorization=AAD", "Authorization=AAD;ClientId=0f5c3a2e-1b7d-4a5e-9c3f-2d1e0b9a8c7d"):
        env(APPLICATIONINSIGHTS_AUTHENTICATION_STRING=ok)
        check_settings_on_start()


def test_unresolved_references_in_any_setting():
    env = {"A": KV_REF, "B": "plain", "C": "@Microsoft.KeyVault(VaultName=v;SecretName=s)", "D": ""}
    assert unresolved_key_vault_references(env) == ["A", "C"]


def _host_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in MARKERS and not k.startswith(("PYTEST_", "TRAPALERT_LOCAL_", "SENDGRID_"))}
    env.update(BASE, TRAPALERT_LOCAL_SETTINGS="/nonexistent/local.settings.json", PYTHONUNBUFFERED="1",
               TRAPALERT_LOCAL_FUNCTION_KEY="k", TRAPALERT_LOCAL_MASTER_KEY="m", **extra)
    return env


def test_the_local_host_refuses_to_start_with_the_settings_name(tmp_path):
    """`python -m functions.localhost` (what `trapalert stack up` runs) stops before serving anything."""
    cmd = [sys.executable, "-m", "functions.localhost", "--script-root", str(PROJECT_ROOT), "--port", "9",
           "--settings", "/nonexistent/local.settings.json"]
    result = subprocess.run(cmd, cwd=tmp_path, env=_host_env(SENDGRID_WEBHOOK_PUBLIC_KEY=KV_REF),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in result.stderr and "Key Vault" in result.stderr
    assert "Traceback" not in result.stderr


def test_azure_indexing_of_function_app_fails_with_the_name():
    """What Azure's Python worker does at start: import function_app.py (the platform sets WEBSITE_*)."""
    probe = "import function_app"
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env=_host_env(WEBSITE_SITE_NAME="func-trapalert-dev", SCORING_URL="scoring:8080"),
                            timeout=120)
    assert result.returncode != 0
    assert "SettingsError" in result.stderr and "SCORING_URL: " in result.stderr
