"""The bad-input corpus of channel configs: unsafe configs, each refused with its reason by every path that
takes a config (``trapalert channels add`` through ``check_channel``, ``validate_channel``, and
``build_notifier`` used by send-alert, ops notices and ``channels test``), and accepted once the one thing
wrong with it is fixed (so the refusal is for that reason and no other). Rules: functions/notify/safety.py.

No database or network is needed: addresses are IP literals or names that resolve locally."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from functions.adapters.channels import ChannelError, check_channel
from functions.notify import Channel, ChannelConfigError, EnvSecrets, build_notifier, validate_channel

PUBLIC = "93.184.215.14"  # a public address (no DNS needed)
SECRETS = EnvSecrets(
    environ={
        "CHANNEL_SECRET_TOKEN": "token-value-0123",
        "CHANNEL_SECRET_PASSWORD": "password-value-0123",
        "SENDGRID_API_KEY": "SG.default-key-value",
        "DATABASE_URL": "postgresql://u:pw-in-db-url@db/x",
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountKey=abc",
        "CHANNEL_SECRET_METADATA_URL": "https://169.254.169.254/metadata/identity/oauth2/token",
    }
)


@dataclass
class ConfigCase:
    id: str
    kind: str
    config: dict[str, Any]
    reason: str  # regex the refusal must match
    fix: dict[str, Any] = field(default_factory=dict)  # what makes it acceptable
    at_build_only: bool = False  # the problem is only visible once the secret is read


def er(url: str = f"https://{PUBLIC}", **extra) -> dict[str, Any]:
    return {"service_root": url, "token_setting": "CHANNEL_SECRET_TOKEN", **extra}


def hook(url: str = f"https://{PUBLIC}/hook", **extra) -> dict[str, Any]:
    return {"url": url, "secret_setting": "CHANNEL_SECRET_TOKEN", **extra}


def telegram(**extra) -> dict[str, Any]:
    return {
        "chat_id": -1001,
        "token_setting": "CHANNEL_SECRET_TOKEN",
        "api_root": f"https://{PUBLIC}",
        **extra,
    }


def twilio(**extra) -> dict[str, Any]:
    return {
        "account_sid": "AC" + "0" * 32,
        "auth_token_setting": "CHANNEL_SECRET_TOKEN",
        "from_number": "+15005550006",
        "to": ["+27820000001"],
        "api_root": f"https://{PUBLIC}",
        **extra,
    }


PRIVATE = {"allow_private_network": True}
CASES = [
    # ----------------------------------------------------------------- secret names outside the prefix
    ConfigCase(
        "er-token-is-database-url",
        "earthranger",
        er(token_setting="DATABASE_URL"),
        r"token_setting: secret setting DATABASE_URL is not allowed.*CHANNEL_SECRET_",
        fix={"token_setting": "CHANNEL_SECRET_TOKEN"},
    ),
    ConfigCase(
        "webhook-secret-is-storage-connection",
        "webhook",
        hook(secret_setting="AzureWebJobsStorage"),
        r"secret_setting: secret setting AzureWebJobsStorage is not allowed",
        fix={"secret_setting": "CHANNEL_SECRET_TOKEN"},
    ),
    ConfigCase(
        "cmore-password-outside-prefix",
        "cmore",
        {
            "base_url": f"https://{PUBLIC}/za/WebAPI/api",
            "username": "u",
            "password_setting": "DATABASE_URL",
            "owner_group_id": 1,
        },
        r"password_setting: secret setting DATABASE_URL is not allowed",
        fix={"password_setting": "CHANNEL_SECRET_PASSWORD"},
    ),
    ConfigCase(
        "email-key-name-outside-prefix",
        "email",
        {"to": ["r@park.example"], "api_key_setting": "DATABASE_URL"},
        r"api_key_setting: secret setting DATABASE_URL is not allowed",
        fix={"api_key_setting": "SENDGRID_API_KEY"},  # the adapter's own default is allowed
    ),
    ConfigCase(
        "telegram-token-outside-prefix",
        "telegram",
        telegram(token_setting="TELEGRAM_TOKEN"),
        r"token_setting: secret setting TELEGRAM_TOKEN is not allowed",
        fix={"token_setting": "CHANNEL_SECRET_TOKEN"},
    ),
    ConfigCase(
        "twilio-token-outside-prefix",
        "twilio",
        twilio(auth_token_setting="DATABASE_URL"),
        r"auth_token_setting: secret setting DATABASE_URL is not allowed",
        fix={"auth_token_setting": "CHANNEL_SECRET_TOKEN"},
    ),
    # ----------------------------------------------------------------- plain http
    ConfigCase(
        "er-plain-http",
        "earthranger",
        er(f"http://{PUBLIC}"),
        r"service_root: plain http .*\"allow_http\": true",
        fix={"allow_http": True},
    ),
    ConfigCase(
        "webhook-plain-http",
        "webhook",
        hook(f"http://{PUBLIC}/hook"),
        r"url: plain http",
        fix={"allow_http": True},
    ),
    ConfigCase(
        "email-sendgrid-host-plain-http",
        "email",
        {"to": ["r@park.example"], "api_key_setting": "CHANNEL_SECRET_TOKEN", "host": f"http://{PUBLIC}"},
        r"host: plain http",
        fix={"allow_http": True},
    ),
    ConfigCase(
        "telegram-api-root-plain-http",
        "telegram",
        telegram(api_root=f"http://{PUBLIC}"),
        r"api_root: plain http",
        fix={"allow_http": True},
    ),
    # ----------------------------------------------------------------- private, loopback, link-local, ...
    ConfigCase(
        "er-cloud-metadata",
        "earthranger",
        er("https://169.254.169.254"),
        r"service_root: host 169\.254\.169\.254 .*link-local \(cloud metadata service\).*"
        r"allow_private_network",
        fix=PRIVATE,
    ),
    ConfigCase(
        "er-loopback", "earthranger", er("https://127.0.0.1:8443"), r"127\.0\.0\.1, a loopback", fix=PRIVATE
    ),
    ConfigCase(
        "er-localhost-name",
        "earthranger",
        er("https://localhost"),
        r"host localhost resolves to .*loopback",
        fix=PRIVATE,
    ),
    ConfigCase(
        "webhook-vnet-10", "webhook", hook("https://10.0.0.4/hook"), r"10\.0\.0\.4, a private", fix=PRIVATE
    ),
    ConfigCase(
        "webhook-rfc1918-192", "webhook", hook("https://192.168.1.10/hook"), r"a private", fix=PRIVATE
    ),
    ConfigCase("webhook-rfc1918-172", "webhook", hook("https://172.20.0.1/hook"), r"a private", fix=PRIVATE),
    ConfigCase("webhook-cgnat", "webhook", hook("https://100.100.1.1/hook"), r"CGNAT", fix=PRIVATE),
    ConfigCase("webhook-unspecified", "webhook", hook("https://0.0.0.0/hook"), r"unspecified", fix=PRIVATE),
    ConfigCase(
        "webhook-ipv6-loopback", "webhook", hook("https://[::1]/hook"), r"::1, a loopback", fix=PRIVATE
    ),
    ConfigCase(
        "webhook-ipv6-unique-local", "webhook", hook("https://[fd12::1]/hook"), r"unique local", fix=PRIVATE
    ),
    ConfigCase(
        "webhook-ipv4-mapped-private",
        "webhook",
        hook("https://[::ffff:10.1.1.1]/hook"),
        r"a private",
        fix=PRIVATE,
    ),
    ConfigCase(
        "cmore-private",
        "cmore",
        {
            "base_url": "https://10.20.30.40/za/WebAPI/api",
            "username": "u",
            "password_setting": "CHANNEL_SECRET_PASSWORD",
            "owner_group_id": 1,
        },
        r"base_url: host 10\.20\.30\.40",
        fix=PRIVATE,
    ),
    ConfigCase(
        "email-smtp-relay-loopback",
        "email",
        {"mode": "smtp", "to": ["r@park.example"], "smtp_host": "127.0.0.1"},
        r"smtp_host: host 127\.0\.0\.1",
        fix=PRIVATE,
    ),
    ConfigCase(
        "twilio-api-root-private",
        "twilio",
        twilio(api_root="https://192.168.0.5"),
        r"api_root: host",
        fix=PRIVATE,
    ),
    ConfigCase(
        "webhook-url-setting-holds-metadata-url",
        "webhook",
        {"url_setting": "CHANNEL_SECRET_METADATA_URL", "secret_setting": "CHANNEL_SECRET_TOKEN"},
        r"the URL in CHANNEL_SECRET_METADATA_URL: host 169\.254\.169\.254",
        fix=PRIVATE,
        at_build_only=True,
    ),
    # ----------------------------------------------------------------- the flags themselves
    ConfigCase(
        "flag-as-string",
        "webhook",
        hook(allow_private_network="true"),
        r"allow_private_network: must be true or false",
        fix={"allow_private_network": True},
    ),
    ConfigCase(
        "people-photos-unknown",
        "telegram",
        telegram(people_photos="faces"),
        r"people_photos: must be one of as_is, blurred, none",
        fix={"people_photos": "blurred"},
    ),
]


def channel(case: ConfigCase, config: dict[str, Any]) -> Channel:
    return Channel(id=900, park_id=1, kind=case.kind, name=case.id, config=config)


def test_corpus_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_unsafe_config_is_refused_with_its_reason(case: ConfigCase):
    bad = channel(case, case.config)
    if not case.at_build_only:
        with pytest.raises(ChannelConfigError, match=case.reason):
            validate_channel(bad)
        with pytest.raises(ChannelError, match=case.reason):
            check_channel(bad)  # `trapalert channels add`
    with pytest.raises(ChannelConfigError, match=case.reason) as info:
        build_notifier(bad, SECRETS)  # send-alert, ops notices, `channels test`
    message = str(info.value)
    for value in ("token-value-0123", "pw-in-db-url", "AccountKey=abc", "/metadata/identity"):
        assert value not in message

    good = channel(case, {**case.config, **case.fix})
    validate_channel(good)
    check_channel(good)
    notifier = build_notifier(good, SECRETS)
    close = getattr(notifier, "close", None)
    if callable(close):
        close()
