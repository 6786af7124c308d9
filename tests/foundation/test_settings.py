"""Settings: Azure app-setting names, local.settings.json, and errors that name the bad setting."""

from __future__ import annotations

import json

import pytest

from functions.settings import SettingsError, load_settings

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "SCORING_URL": "http://127.0.0.1:8081"}


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("AzureWebJobsStorage", "AzureWebJobsStorage__accountName", "SCORING_URL", "DATABASE_URL",
                 "MAX_ATTACHMENTS", "SENDGRID_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRAPALERT_LOCAL_SETTINGS", str(tmp_path / "local.settings.json"))
    monkeypatch.chdir(tmp_path)  # no .trapalert/stack.json here

    def set_env(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, v)
    return set_env


def test_reads_azure_app_setting_names(env):
    env(**BASE, DATABASE_URL="postgresql://u:pw@db/trapalert", MAX_ATTACHMENTS="7")
    s = load_settings()
    assert s.storage_connection == "UseDevelopmentStorage=true"
    assert s.scoring_url == "http://127.0.0.1:8081"
    assert s.max_attachments == 7
    assert s.database_url.get_secret_value() == "postgresql://u:pw@db/trapalert"
    assert "pw" not in repr(s) and "pw" not in str(s.model_dump())  # secrets stay masked


def test_missing_setting_is_named(env):
    env(AzureWebJobsStorage="UseDevelopmentStorage=true")
    with pytest.raises(SettingsError, match="SCORING_URL"):
        load_settings()


def test_missing_storage_is_named(env):
    env(SCORING_URL="http://x")
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        load_settings()


def test_malformed_settings_are_named(env):
    env(**BASE, MAX_ATTACHMENTS="many")
    with pytest.raises(SettingsError, match="MAX_ATTACHMENTS"):
        load_settings()
    env(**{**BASE, "SCORING_URL": "scoring:8081"}, MAX_ATTACHMENTS="3")
    with pytest.raises(SettingsError, match="SCORING_URL: .*http"):
        load_settings()


def test_local_settings_json_values_and_env_wins(env, tmp_path):
    (tmp_path / "local.settings.json").write_text(json.dumps({
        "IsEncrypted": False,
        "Values": {**BASE, "SENDGRID_API_KEY": "SG.local", "MAX_ATTACHMENTS": "4"}}))
    env(MAX_ATTACHMENTS="9")
    s = load_settings()
    assert s.sendgrid_api_key.get_secret_value() == "SG.local"
    assert s.max_attachments == 9


def test_broken_local_settings_file_is_named(env, tmp_path):
    (tmp_path / "local.settings.json").write_text("{not json")
    with pytest.raises(SettingsError, match="local.settings.json"):
        load_settings()


def test_example_settings_file_is_valid_and_holds_no_secret():
    from functions.localhost.services import PROJECT_ROOT

    example = json.loads((PROJECT_ROOT / "local.settings.example.json").read_text())
    values = example["Values"]
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    for key in ("SENDGRID_API_KEY", "SCORING_API_KEY", "DATABASE_URL"):
        assert values[key] == "", f"{key} must be empty in the committed example"
    gitignore = (PROJECT_ROOT / ".gitignore").read_text().split()
    assert "local.settings.json" in gitignore
