"""Registry: built-in kinds, third-party adapters found through the ``trapalert.notifiers`` entry points."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from functions.notify import (
    Channel,
    ChannelConfigError,
    DeliveryResult,
    EnvSecrets,
    Notifier,
    available_kinds,
    build_notifier,
    deliver,
    validate_channel,
)
from functions.notify.registry import ENTRY_POINT_GROUP

PLUGIN = textwrap.dedent(
    '''
    """A park's own SMS gateway adapter, as a third party would write it."""
    from pydantic import BaseModel, ConfigDict

    from functions.notify.base import DeliveryResult, parse_config

    SENT = []


    class SmsConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        numbers: list[str]
        api_key_setting: str


    class SmsNotifier:
        kind = "sms"
        config_model = SmsConfig

        def __init__(self, config, api_key):
            self.config = config
            self._api_key = api_key

        @classmethod
        def from_channel(cls, channel, secrets, http):
            cfg = parse_config(SmsConfig, channel)
            return cls(cfg, secrets(cfg.api_key_setting))

        def send_new(self, notice, *, resume=None):
            SENT.append(("new", notice.alert_id, tuple(self.config.numbers)))
            return DeliveryResult(external_id=f"sms-{notice.alert_id}", state={"count": 1})

        def send_update(self, notice, previous):
            SENT.append(("update", notice.alert_id, tuple(self.config.numbers)))
            count = previous.state["count"] + 1
            return DeliveryResult(external_id=previous.external_id, state={"count": count})


    def broken_factory(channel, secrets, http):
        return object()
    '''
)


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    """An installed distribution (a dist-info directory) registering two entry points, on sys.path."""
    (tmp_path / "park_sms_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "park_sms_plugin-1.2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: park-sms-plugin\nVersion: 1.2.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "sms = park_sms_plugin:SmsNotifier\n"
        "broken = park_sms_plugin:broken_factory\n"
        "missing = park_sms_plugin_nope:Thing\n"
        "email = park_sms_plugin:SmsNotifier\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield
    sys.modules.pop("park_sms_plugin", None)


def test_builtin_kinds():
    kinds = available_kinds()
    assert {"earthranger", "cmore", "email", "webhook"} <= set(kinds)


def test_third_party_adapter_registered_by_entry_point_is_used(plugin_on_path, notice):
    kinds = available_kinds()
    assert kinds["sms"] == "entry point park_sms_plugin:SmsNotifier (park-sms-plugin 1.2.0)"
    channel = Channel(
        id=51,
        park_id=1,
        kind="sms",
        name="SMS duty",
        config={"numbers": ["+27820000000"], "api_key_setting": "CHANNEL_SECRET_SMS_KEY"},
    )
    notifier = build_notifier(channel, EnvSecrets(environ={"CHANNEL_SECRET_SMS_KEY": "k"}))
    assert type(notifier).__module__ == "park_sms_plugin"
    assert isinstance(notifier, Notifier)
    first = deliver(notifier, notice)
    second = deliver(notifier, notice.model_copy(update={"kind": "update"}), previous=first)
    assert second == DeliveryResult(external_id="sms-42", state={"count": 2})
    sent = sys.modules["park_sms_plugin"].SENT
    assert sent == [("new", 42, ("+27820000000",)), ("update", 42, ("+27820000000",))]
    # its config model is used to validate a channel before it is saved
    bad = channel.model_copy(update={"config": {"numbers": "x"}})
    with pytest.raises(ChannelConfigError, match="api_key_setting: Field required"):
        validate_channel(bad)


def test_builtin_kind_cannot_be_shadowed(plugin_on_path, fake_sendgrid, secrets):
    assert available_kinds()["email"].startswith("builtin")
    config = {
        "to": ["a@b.org"],
        "host": fake_sendgrid.url,
        "api_key_setting": "CHANNEL_SECRET_SENDGRID_API_KEY",
        "allow_http": True,
        "allow_private_network": True,
    }
    channel = Channel(id=52, park_id=1, kind="email", config=config)
    assert type(build_notifier(channel, secrets)).__name__ == "EmailNotifier"


def test_broken_plugins_are_config_errors(plugin_on_path):
    with pytest.raises(ChannelConfigError, match="entry point park_sms_plugin_nope:Thing failed to load"):
        build_notifier(Channel(id=53, park_id=1, kind="missing"), EnvSecrets({}))
    with pytest.raises(ChannelConfigError, match="adapter has no send_new"):
        build_notifier(Channel(id=54, park_id=1, kind="broken"), EnvSecrets({}))


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(ChannelConfigError) as info:
        build_notifier(Channel(id=55, park_id=1, kind="carrier-pigeon"), EnvSecrets({}))
    assert "unknown channel kind 'carrier-pigeon'" in str(info.value)
    assert "earthranger" in str(info.value)


def test_validate_builtin_config_without_secrets():
    cfg = validate_channel(
        Channel(
            id=56,
            park_id=1,
            kind="webhook",
            config={"url": "https://x.example/h", "secret_setting": "CHANNEL_SECRET_S"},
        )
    )
    assert cfg.url == "https://x.example/h"
    with pytest.raises(ChannelConfigError, match="secret_setting: Field required"):
        validate_channel(Channel(id=57, park_id=1, kind="webhook", config={"url": "https://x.example/h"}))


def test_env_secrets_reads_environment_and_never_shows_values(monkeypatch):
    monkeypatch.setenv("TRAPALERT_TEST_SECRET", "s3cr3t-value")
    env = EnvSecrets(extra={"FROM_LOCAL_SETTINGS": "local"})
    assert env("TRAPALERT_TEST_SECRET") == "s3cr3t-value"
    assert env("FROM_LOCAL_SETTINGS") == "local"
    assert "s3cr3t" not in repr(env)
    with pytest.raises(ChannelConfigError, match="invalid secret setting name"):
        env("bad name;rm")
