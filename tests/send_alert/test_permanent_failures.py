"""A channel that refuses for good (a revoked EarthRanger token): recorded with what to fix, ops told once per
failing channel (not once per alert), the other channels delivered, and `trapalert deliveries redeliver`
sends exactly what waited once the token is fixed. Real PostgreSQL/Azurite, the local EarthRanger, SendGrid
and a webhook receiver as the park's ops channel."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from functions import names
from functions.cli import cli
from functions.handlers import send_alert
from functions.messages import SendAlert, parse_message
from tests.fakes import FakeWebhookReceiver

from . import helpers as h

OPS_SECRET_SETTING, OPS_SECRET = "CHANNEL_SECRET_TEST_OPS_HOOK_SECRET", "ops-hook-secret"


@pytest.fixture
def ops_hook(monkeypatch):
    monkeypatch.setenv(OPS_SECRET_SETTING, OPS_SECRET)
    with FakeWebhookReceiver(secret=OPS_SECRET) as hook:
        yield hook


def trapalert(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _drain_send_alert(env) -> int:
    """Run send-alert on every message on its queue (as the host would); return how many ran."""
    client = env.storage.queue(names.SEND_ALERT_QUEUE)
    n = 0
    for m in client.receive_messages(max_messages=32):
        send_alert.handle(parse_message(SendAlert, m.content), env)
        client.delete_message(m)
        n += 1
    return n


def test_a_revoked_token_is_loud_once_and_redelivery_sends_what_waited(
    env, park, fakes, ops_hook, monkeypatch
):
    er, cm, sg = fakes
    db = park["db"]
    h.add_channel(db, park["park_id"], "er-main", "earthranger", h.er_config(er))
    h.add_channel(db, park["park_id"], "rangers-email", "email", h.email_config(sg))
    ops_config = {
        "url": ops_hook.url,
        "secret_setting": OPS_SECRET_SETTING,
        "allow_http": True,
        "allow_private_network": True,
    }
    h.add_channel(db, park["park_id"], "ops hook", "webhook", ops_config, purpose="ops")
    monkeypatch.setenv("CHANNEL_SECRET_TEST_ER_TOKEN", "revoked-token")

    alerts = []
    for seed in range(3):
        image_id = h.add_image(db, park["storage"], park["park_id"], park["camera_id"], seed=seed)
        alert_id = h.add_alert(db, park["park_id"], park["camera_id"], image_id)
        alerts.append(alert_id)
        outcomes = {o.channel_name: o.outcome for o in send_alert.handle(SendAlert(alert_id=alert_id), env)}
        assert outcomes == {"er-main": "permanent", "rangers-email": "delivered"}  # no raise: not retried

    # rangers' email went out for every alert; EarthRanger got nothing; ops were told once, with the fix
    assert len(sg.messages) == 3 and not er.events
    assert len(ops_hook.deliveries) == 1
    notice = ops_hook.deliveries[0]["notice"]
    assert "er-main" in notice["title"] and "CHANNEL_SECRET_TEST_ER_TOKEN" in notice["summary"]
    assert "trapalert deliveries redeliver --channel er-main" in notice["summary"]
    assert notice["ops_url"].startswith("http") and notice["ops_url"].endswith("/api/console/ops")
    assert "revoked-token" not in json.dumps(ops_hook.deliveries)

    waiting = json.loads(trapalert("deliveries", "list", "--channel", "er-main", "--json"))
    assert sorted(w["alert_id"] for w in waiting) == alerts
    assert all("update CHANNEL_SECRET_TEST_ER_TOKEN" in w["fix"] and "(401)" in w["error"] for w in waiting)
    assert "to fix: earthranger refused the credentials (HTTP 401)" in trapalert("deliveries", "list")

    # the operator rotates the token, then redelivers: each waiting alert reaches EarthRanger once
    monkeypatch.setenv("CHANNEL_SECRET_TEST_ER_TOKEN", h.ER_TOKEN)
    out = trapalert("deliveries", "redeliver", "--channel", "er-main")
    assert "3 deliveries redelivered (3 messages on the queue)" in out
    assert trapalert("deliveries", "redeliver", "--channel", "er-main").startswith("0 deliveries")
    assert _drain_send_alert(env) == 3
    assert len(er.events) == 3 and len(sg.messages) == 3  # the email channel was not sent twice
    assert json.loads(trapalert("deliveries", "list", "--json")) == []
    rows = [h.deliveries(db, a)["er-main"] for a in alerts]
    assert all(r["status"] == "delivered" and not r["permanent"] and r["fix"] is None for r in rows)
    assert db.fetchone("SELECT status FROM channel_failures")["status"] == "cleared"

    # revoked again later: a new failure of the channel, so ops are told again (once)
    monkeypatch.setenv("CHANNEL_SECRET_TEST_ER_TOKEN", "revoked-again")
    image_id = h.add_image(db, park["storage"], park["park_id"], park["camera_id"], seed=9)
    send_alert.handle(SendAlert(alert_id=h.add_alert(db, park["park_id"], park["camera_id"], image_id)), env)
    assert len(ops_hook.deliveries) == 2


def test_redeliver_needs_to_be_told_what(env):
    result = CliRunner().invoke(cli, ["deliveries", "redeliver"])
    assert result.exit_code != 0 and "--channel" in result.output


def test_a_throttled_channel_asks_for_its_retry_after(env, park, fakes):
    er, cm, sg = fakes
    h.add_channel(park["db"], park["park_id"], "er-main", "earthranger", h.er_config(er))
    er.fail_until_recovered(429, retry_after=90)
    image_id = h.add_image(park["db"], park["storage"], park["park_id"], park["camera_id"])
    alert_id = h.add_alert(park["db"], park["park_id"], park["camera_id"], image_id)
    with pytest.raises(send_alert.ChannelsFailed) as raised:
        send_alert.handle(SendAlert(alert_id=alert_id), env)
    assert raised.value.retry_after == 90  # the retry middleware waits at least this long
