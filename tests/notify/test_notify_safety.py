"""Safe channel configs (functions/notify/safety.py): secret names, https, public addresses; checked the
same way by validate_channel (``channels add``) and build_notifier (send-alert, ops notices, ``channels
test``)."""

from __future__ import annotations

import logging

import pytest

from functions.notify import Channel, ChannelConfigError, EnvSecrets, build_notifier, validate_channel
from functions.notify.safety import non_public_reason, park_secret_names

ENV = EnvSecrets(
    environ={
        "CHANNEL_SECRET_HOOK": "whsec-0123456789",
        "DATABASE_URL": "postgresql://u:db-password@db/x",
        "PARK_HOOK_SECRET": "whsec-park-0123456789",
        "CHANNEL_SECRET_HOOK_URL": "https://169.254.169.254/latest/meta-data/iam/secret-path",
    }
)


def hook(url: str = "https://93.184.215.14/hook", **config) -> Channel:
    return Channel(
        id=9,
        park_id=1,
        kind="webhook",
        name="h",
        config={"url": url, "secret_setting": "CHANNEL_SECRET_HOOK", **config},
    )


def refused_everywhere(channel: Channel, match: str, **kwargs) -> ChannelConfigError:
    with pytest.raises(ChannelConfigError, match=match):
        validate_channel(channel, **kwargs)
    with pytest.raises(ChannelConfigError, match=match) as info:
        build_notifier(channel, ENV, **kwargs)
    return info.value


def test_a_public_https_address_is_accepted():
    validate_channel(hook())
    build_notifier(hook(), ENV)


def test_secret_setting_outside_the_prefix_is_refused():
    err = refused_everywhere(
        hook(secret_setting="DATABASE_URL"), "secret_setting: secret setting DATABASE_URL"
    )
    assert "CHANNEL_SECRET_" in str(err) and "db-password" not in str(err)


def test_a_setting_listed_for_the_park_is_allowed():
    channel = hook(secret_setting="PARK_HOOK_SECRET")
    allowed = park_secret_names({"channel_secrets": ["PARK_HOOK_SECRET", "bad name!", 3]})
    assert allowed == ("PARK_HOOK_SECRET",)
    validate_channel(channel, allowed_secrets=allowed)
    build_notifier(channel, ENV, allowed_secrets=allowed)


def test_the_resolver_refuses_names_the_config_does_not_show():
    """An adapter's default setting name (or a plugin asking for any name) goes through the same rule."""

    class Sneaky:
        def __init__(self, value):
            self.value = value

        @classmethod
        def from_channel(cls, channel, secrets, http):
            return cls(secrets("DATABASE_URL"))

        def send_new(self, notice, *, resume=None): ...

        def send_update(self, notice, previous): ...

    from functions.notify import registry

    registry.BUILTIN_ADAPTERS["sneaky_test"] = f"{__name__}:SNEAKY"
    globals()["SNEAKY"] = Sneaky
    try:
        with pytest.raises(ChannelConfigError, match="'DATABASE_URL' is not allowed"):
            build_notifier(Channel(id=3, park_id=1, kind="sneaky_test", config={}), ENV)
    finally:
        del registry.BUILTIN_ADAPTERS["sneaky_test"]


def test_plain_http_needs_the_flag_and_is_logged(caplog):
    refused_everywhere(hook("http://93.184.215.14/hook"), r"url: plain http .* \"allow_http\": true")
    caplog.set_level(logging.WARNING, logger="functions.notify.safety")
    channel = hook("http://93.184.215.14/hook", allow_http=True).model_copy(update={"id": 1009})
    build_notifier(channel, ENV)
    assert any("allow_http is set" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local (cloud metadata service)"),
        ("100.64.0.1", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00::1", "unique local"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_non_public_addresses(address, reason):
    assert reason in non_public_reason(address)
    host = f"[{address}]" if ":" in address else address
    refused_everywhere(hook(f"https://{host}/hook"), "allow_private_network")
    validate_channel(hook(f"https://{host}/hook", allow_private_network=True))


def test_public_addresses_pass():
    for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "1.1.1.1"):
        assert non_public_reason(address) is None


def test_a_name_that_resolves_to_loopback_is_refused():
    refused_everywhere(hook("https://localhost:8443/hook"), r"host localhost resolves to \S+, a loopback")


def test_a_name_that_does_not_resolve_now_is_not_a_config_error():
    validate_channel(hook("https://no-such-host.invalid/hook"))


def test_a_url_held_in_a_secret_setting_is_checked_when_resolved():
    channel = Channel(
        id=9,
        park_id=1,
        kind="webhook",
        config={"url_setting": "CHANNEL_SECRET_HOOK_URL", "secret_setting": "CHANNEL_SECRET_HOOK"},
    )
    validate_channel(channel)  # the URL is not known before the secret is read
    with pytest.raises(ChannelConfigError, match="link-local") as info:
        build_notifier(channel, ENV)
    assert "secret-path" not in str(info.value)


def test_smtp_relay_on_this_machine_needs_the_flag():
    config = {"mode": "smtp", "from_address": "alerts@park.example", "to": ["r@park.example"]}
    channel = Channel(id=5, park_id=1, kind="email", config=config)
    with pytest.raises(ChannelConfigError, match="smtp_host: host 127.0.0.1"):
        validate_channel(channel)
    validate_channel(channel.model_copy(update={"config": {**config, "allow_private_network": True}}))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"allow_http": "yes"}, "allow_http: must be true or false"),
        ({"allow_private_network": 1}, "allow_private_network: must be true or false"),
        ({"people_photos": "faces_only"}, "people_photos: must be one of as_is, blurred, none"),
    ],
)
def test_common_keys_are_typed(config, match):
    refused_everywhere(hook(**config), match)


def test_nested_values_are_not_taken_for_addresses():
    validate_channel(hook(headers={"X-Callback-Url": "http://127.0.0.1/x"}))


# ------------------------------------------------------------------------ the CLI (no database needed)
class _Repo:
    """Stands in for ChannelRepository in `trapalert channels test`."""

    db = None

    def __init__(self, row, allowed=()):
        self.row, self.allowed = row, tuple(allowed)

    def get(self, park, name):
        return self.row

    def allowed_secrets(self, park_id):
        return self.allowed


class Checked:
    """An adapter with a check(), like EarthRanger's and CMORE's."""

    sent: list = []
    problems: list[str] = []

    @classmethod
    def from_channel(cls, channel, secrets, http):
        secrets(channel.config["token_setting"])
        return cls()

    def check(self):
        return list(self.problems)

    def send_new(self, notice, *, resume=None):
        from functions.notify import DeliveryResult

        self.sent.append(notice.title)
        return DeliveryResult(external_id="x1")

    def send_update(self, notice, previous):
        return previous


@pytest.fixture
def cli_with(monkeypatch):
    from click.testing import CliRunner

    from functions.cli import channels as cli_channels
    from functions.cli import cli
    from functions.notify import registry
    from tests.notify.helpers import make_notice

    monkeypatch.setitem(registry.BUILTIN_ADAPTERS, "checked_test", f"{__name__}:Checked")
    monkeypatch.setattr(cli_channels, "services", lambda: type("S", (), {"secrets": ENV_CLI})())
    monkeypatch.setattr(cli_channels, "channel_test_notice", lambda db, row: make_notice(None))
    Checked.sent, Checked.problems = [], []

    def run(row, *args, allowed=()):
        monkeypatch.setattr(cli_channels, "_repo", lambda: _Repo(row, allowed))
        return CliRunner().invoke(cli, ["channels", *args], catch_exceptions=False)

    return run


ENV_CLI = EnvSecrets(environ={"CHANNEL_SECRET_X": "x-token-value", "PARK_LISTED": "p-token-value"})


def _row(**config):
    return {"id": 7, "park_id": 1, "kind": "checked_test", "name": "c", "config": config, "zone": None,
            "enabled": True}  # fmt: skip


def test_channels_test_prints_the_adapters_check_problems_and_exits_1(cli_with):
    Checked.problems = ["event type 'x' does not exist: create it", "no permission on category y"]
    res = cli_with(_row(token_setting="CHANNEL_SECRET_X"), "test", "c", "--park", "p")
    assert res.exit_code == 1
    assert "channel c (checked_test): event type 'x' does not exist: create it" in res.output
    assert "no permission on category y" in res.output
    assert Checked.sent == []  # no test notice while the channel cannot work


def test_channels_test_sends_when_the_check_passes(cli_with):
    res = cli_with(_row(token_setting="CHANNEL_SECRET_X"), "test", "c", "--park", "p")
    assert res.exit_code == 0, res.output
    assert "test notice delivered" in res.output and Checked.sent == ["Person at CT-07 Sabie drift"]


def test_channels_test_uses_the_parks_allowed_secret_names(cli_with):
    res = cli_with(_row(token_setting="PARK_LISTED"), "test", "c", "--park", "p")
    assert res.exit_code == 1 and "secret setting PARK_LISTED is not allowed" in res.output
    res = cli_with(_row(token_setting="PARK_LISTED"), "test", "c", "--park", "p", allowed=["PARK_LISTED"])
    assert res.exit_code == 0, res.output


def test_channels_kinds_lists_the_new_kinds_with_their_privacy_default(cli_with):
    lines = {line.split()[0]: line for line in cli_with(None, "kinds").output.splitlines()}
    assert "builtin functions.notify.telegram:TelegramNotifier" in lines["telegram"]
    assert "builtin functions.notify.twilio:TwilioNotifier" in lines["twilio"]
    assert lines["telegram"].endswith("(people_photos default: blurred)")
    assert lines["earthranger"].endswith("(people_photos default: as_is)")


def test_channels_list_shows_privacy_and_both_flags(cli_with, monkeypatch):
    from functions.cli import channels as cli_channels

    rows = [
        {"id": 1, "park": "p", "name": "tg", "kind": "telegram", "purpose": "alerts", "zone": None,
         "enabled": True, "config": {"allow_http": True, "allow_private_network": True}, "last_status": None,
         "last_at": None, "last_alert_id": None, "last_error": None, "delivered": 0, "failed": 0},
        {"id": 2, "park": "p", "name": "er", "kind": "earthranger", "purpose": "alerts", "zone": None,
         "enabled": True, "config": {"people_photos": "none"}, "last_status": None, "last_at": None,
         "last_alert_id": None, "last_error": None, "delivered": 0, "failed": 0},
    ]  # fmt: skip
    repo = type("R", (), {"list": lambda self, park: [dict(r) for r in rows]})()
    monkeypatch.setattr(cli_channels, "_repo", lambda: repo)
    from click.testing import CliRunner

    from functions.cli import cli

    out = CliRunner().invoke(cli, ["channels", "list"], catch_exceptions=False).output.splitlines()
    header = out[0].split()
    assert header[5:9] == ["ENABLED", "PHOTOS", "ALLOW_HTTP", "ALLOW_PRIVATE"]
    tg = next(line for line in out if line.split()[1] == "tg").split()
    er = next(line for line in out if line.split()[1] == "er").split()
    assert tg[6:9] == ["blurred", "yes", "yes"]
    assert er[6:9] == ["none", "no", "no"]
