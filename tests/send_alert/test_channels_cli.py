"""`trapalert channels add|list|remove|test` against the real database and the local fakes."""

from __future__ import annotations

import json

from click.testing import CliRunner

from functions.cli import cli
from functions.handlers import send_alert
from functions.messages import SendAlert

from . import helpers as h


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_add_list_test_remove(env, park, fakes):
    er, cm, sg = fakes
    res = run(
        "channels",
        "add",
        "--park",
        "kruger-south",
        "--name",
        "er-main",
        "--kind",
        "earthranger",
        "--zone",
        "north",
        "--config",
        json.dumps(h.er_config(er)),
    )
    assert res.exit_code == 0, res.output
    assert "channel er-main (earthranger, alerts, zone north) added to park kruger-south" in res.output
    res = run(
        "channels",
        "add",
        "--park",
        "kruger-south",
        "--name",
        "mail",
        "--kind",
        "email",
        "--config",
        json.dumps(h.email_config(sg)),
    )
    assert res.exit_code == 0, res.output

    res = run("channels", "test", "er-main", "--park", "kruger-south")
    assert res.exit_code == 0, res.output
    (event,) = er.events.values()
    assert event["title"] == "TEST - TrapAlert channel test (er-main)"
    assert event["event_details"]["camera"] == "CT-07 Sabie drift" and len(event["files"]) == 1
    assert json.loads(res.output.split("\n", 1)[1])["external_id"] == event["id"]

    image_id = h.add_image(park["db"], park["storage"], park["park_id"], park["camera_id"])
    alert_id = h.add_alert(park["db"], park["park_id"], park["camera_id"], image_id)
    sg.fail_until_recovered(503)
    try:
        send_alert.handle(SendAlert(alert_id=alert_id), env)
    except send_alert.ChannelsFailed:
        pass
    res = run("channels", "list", "--park", "kruger-south")
    assert res.exit_code == 0
    lines = {line.split()[1]: line for line in res.output.splitlines()[1:]}
    assert f"delivered (alert {alert_id})" in lines["er-main"]
    assert f"failed (alert {alert_id})" in lines["mail"] and "SendGrid answered 503" in lines["mail"]
    listed = json.loads(run("channels", "list", "--json").output)
    assert {(c["name"], c["last_status"], c["delivered"], c["failed"]) for c in listed} == {
        ("er-main", "delivered", 1, 0),
        ("mail", "failed", 0, 1),
    }
    assert listed[0]["config"]["token_setting"] == "CHANNEL_SECRET_TEST_ER_TOKEN"

    res = run("channels", "remove", "mail", "--park", "kruger-south")
    assert res.exit_code == 0 and "removed" in res.output
    assert [c["name"] for c in json.loads(run("channels", "list", "--json").output)] == ["er-main"]
    assert run("channels", "remove", "mail", "--park", "kruger-south").exit_code == 1


def test_add_refuses_secret_values_and_invalid_configs(env, park, fakes):
    er, cm, sg = fakes
    cases = {
        "token": {"service_root": er.url, "token_setting": "X", "token": "abcd1234"},
        "setting holding a value": {"service_root": er.url, "token_setting": "Bearer abcdefgh12345678"},
    }
    for label, config in cases.items():
        res = run(
            "channels",
            "add",
            "--park",
            "kruger-south",
            "--name",
            "x",
            "--kind",
            "earthranger",
            "--config",
            json.dumps(config),
        )
        assert res.exit_code == 1, label
        assert "secrets never go into a channel's config" in res.output, label
    res = run(
        "channels",
        "add",
        "--park",
        "kruger-south",
        "--name",
        "hook",
        "--kind",
        "webhook",
        "--config",
        json.dumps(
            {
                "url": "https://example.org/h",
                "secret_setting": "HOOK_SECRET",
                "headers": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
            }
        ),
    )
    assert res.exit_code == 1 and "headers.Authorization: looks like a secret value" in res.output
    res = run(
        "channels",
        "add",
        "--park",
        "kruger-south",
        "--name",
        "cm",
        "--kind",
        "cmore",
        "--config",
        json.dumps({"base_url": cm.url, "password_setting": "P"}),
    )
    assert res.exit_code == 1
    assert "invalid config" in res.output and "owner_group_id" in res.output
    res = run(
        "channels", "add", "--park", "kruger-south", "--name", "p", "--kind", "pigeon", "--config", "{}"
    )
    assert res.exit_code == 1 and "unknown channel kind 'pigeon'" in res.output
    res = run("channels", "add", "--park", "nowhere", "--name", "p", "--kind", "email", "--config", "{}")
    assert res.exit_code == 1 and "no park 'nowhere'" in res.output
    assert park["db"].fetchone("SELECT count(*) AS n FROM channels")["n"] == 0


def test_channel_test_reports_a_failure_clearly(env, park, fakes, monkeypatch):
    er, cm, sg = fakes
    h.add_channel(park["db"], park["park_id"], "cm", "cmore", h.cmore_config(cm))
    monkeypatch.setenv("CHANNEL_SECRET_TEST_CMORE_PASSWORD", "not-the-password")
    res = run("channels", "test", "cm", "--park", "kruger-south")
    assert res.exit_code == 1
    assert "CMORE login refused (401)" in res.output and "not-the-password" not in res.output
    assert not cm.events
