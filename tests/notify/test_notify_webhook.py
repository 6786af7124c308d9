"""Webhook adapter: signed JSON POSTs, verified by the receiver helper."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from functions.notify import (
    Channel,
    ChannelConfigError,
    PermanentDeliveryError,
    TransientDeliveryError,
    build_notifier,
)
from functions.notify.webhook import signature_headers, verify_signature
from tests.fakes import FakeWebhookReceiver
from tests.notify.helpers import make_update

SECRET = "whsec-kruger-0123456789"


def hook_channel(url: str, **config) -> Channel:
    return Channel(
        id=41,
        park_id=1,
        kind="webhook",
        name="Kruger bridge",
        config={
            "allow_http": True,
            "allow_private_network": True,
            "people_photos": "as_is",  # the adapter's own format (privacy: test_notify_privacy.py)
            "url": url,
            "secret_setting": "CHANNEL_SECRET_WEBHOOK_SECRET_KRUGER",
            **config,
        },
    )


def test_post_is_signed_json_without_photo_bytes(fake_hook, secrets, notice):
    notifier = build_notifier(hook_channel(fake_hook.url, headers={"X-Park": "kruger"}), secrets)
    result = notifier.send_new(notice)

    (req,) = fake_hook.requests
    assert (req.method, req.path) == ("POST", "/hook")
    assert req.header("Content-Type") == "application/json"
    assert req.header("X-Park") == "kruger"
    assert req.header("X-TrapAlert-Event") == "alert.new"
    ts = req.header("X-TrapAlert-Timestamp")
    assert abs(int(ts) - time.time()) < 60
    expected = hmac.new(SECRET.encode(), f"{ts}.".encode() + req.body, hashlib.sha256).hexdigest()
    assert req.header("X-TrapAlert-Signature") == f"t={ts},v1={expected}"
    assert verify_signature(SECRET, req.headers, req.body)

    doc = json.loads(req.body)
    assert doc["schema_version"] == 1 and doc["event"] == "alert.new"
    assert doc["delivery_id"] == req.header("X-TrapAlert-Delivery")
    assert doc["notice"]["alert_id"] == 42
    assert doc["notice"]["photo_url"] == notice.photo_url
    assert "photo_jpeg" not in doc["notice"]
    assert result.external_id.startswith("hook-")  # the receiver's id


def test_tampered_body_stale_timestamp_and_wrong_secret_do_not_verify():
    body = b'{"event":"alert.new"}'
    headers = signature_headers(SECRET, body)
    assert verify_signature(SECRET, headers, body)
    assert not verify_signature(SECRET, headers, body.replace(b"new", b"old"))
    assert not verify_signature("another-secret", headers, body)
    old = signature_headers(SECRET, body, timestamp=int(time.time()) - 3600)
    assert not verify_signature(SECRET, old, body)
    assert verify_signature(SECRET, old, body, tolerance_s=7200)
    # timestamp header disagreeing with the signed one
    forged = {**headers, "X-TrapAlert-Timestamp": str(int(time.time()) + 1)}
    assert not verify_signature(SECRET, forged, body)
    assert not verify_signature(SECRET, {}, body)
    # rotation: two v1 values, either secret verifies
    ts = int(time.time())
    old_sig = signature_headers("old", body, ts)["X-TrapAlert-Signature"].split("v1=")[1]
    new_sig = signature_headers(SECRET, body, ts)["X-TrapAlert-Signature"].split("v1=")[1]
    both = {"x-trapalert-signature": f"t={ts},v1={old_sig},v1={new_sig}"}
    assert verify_signature(SECRET, both, body) and verify_signature("old", both, body)


def test_receiver_checking_signatures_accepts_ours(secrets, notice, photo):
    with FakeWebhookReceiver(secret=SECRET) as hook:
        notifier = build_notifier(hook_channel(hook.url), secrets)
        first = notifier.send_new(notice)
        second = notifier.send_update(make_update(photo, 2), first)
        assert [d["event"] for d in hook.deliveries] == ["alert.new", "alert.update"]
        assert hook.deliveries[1]["previous_external_id"] == first.external_id
        assert second.external_id == first.external_id
    with FakeWebhookReceiver(secret="not-our-secret") as hook:
        with pytest.raises(PermanentDeliveryError, match="401"):
            build_notifier(hook_channel(hook.url), secrets).send_new(notice)


def test_delivery_id_is_stable_across_retries(fake_hook, secrets, notice):
    notifier = build_notifier(hook_channel(fake_hook.url), secrets)
    fake_hook.fail_next(1, status=502)
    with pytest.raises(TransientDeliveryError):
        notifier.send_new(notice)
    notifier.send_new(notice)
    ids = {r.header("X-TrapAlert-Delivery") for r in fake_hook.requests}
    assert len(fake_hook.requests) == 2 and len(ids) == 1


def test_status_mapping(fake_hook, secrets, notice):
    notifier = build_notifier(hook_channel(fake_hook.url), secrets)
    fake_hook.fail_next(1, status=429, retry_after=5)
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert info.value.retry_after == 5
    fake_hook.fail_next(1, status=410)
    with pytest.raises(PermanentDeliveryError, match="410"):
        notifier.send_new(notice)
    fake_hook.fail_next(1, status=302)
    with pytest.raises(PermanentDeliveryError, match="302"):  # redirects are not followed
        notifier.send_new(notice)


def test_config_errors(secrets):
    with pytest.raises(ChannelConfigError, match="url: Value error, must be an http"):
        build_notifier(hook_channel("file:///etc/passwd"), secrets)
    with pytest.raises(ChannelConfigError, match="cannot be overridden"):
        build_notifier(hook_channel("https://x.example/h", headers={"x-trapalert-signature": "x"}), secrets)
    with pytest.raises(
        ChannelConfigError, match="secret setting CHANNEL_SECRET_WEBHOOK_SECRET_KRUGER is not set"
    ):
        from functions.notify import EnvSecrets

        build_notifier(hook_channel("https://x.example/h"), EnvSecrets(environ={}))


def test_secret_url_from_a_setting_is_not_logged(fake_hook, notice, caplog):
    from functions.notify import EnvSecrets

    url = fake_hook.url + "/T0001/B0002/very-secret-path"
    env = EnvSecrets(environ={"CHANNEL_SECRET_HOOK_URL": url, "CHANNEL_SECRET_WEBHOOK_SECRET_KRUGER": SECRET})
    channel = Channel(
        id=42,
        park_id=1,
        kind="webhook",
        config={
            "allow_http": True,
            "allow_private_network": True,
            "url_setting": "CHANNEL_SECRET_HOOK_URL",
            "secret_setting": "CHANNEL_SECRET_WEBHOOK_SECRET_KRUGER",
        },
    )
    notifier = build_notifier(channel, env)
    with caplog.at_level("DEBUG"):
        notifier.send_new(notice)
    assert fake_hook.requests[0].path == "/hook/T0001/B0002/very-secret-path"
    assert "very-secret-path" not in caplog.text and "very-secret-path" not in repr(notifier)
    assert "<redacted>" in caplog.text
    with pytest.raises(ChannelConfigError, match="exactly one of url and url_setting"):
        build_notifier(channel.model_copy(update={"config": {**channel.config, "url": url}}), env)
