"""Email adapter: SendGrid (against the local SendGrid stand-in), outbox and SMTP modes."""

from __future__ import annotations

import base64
import email
import html
import socket
from email import policy

import pytest

from functions.notify import (
    CameraRef,
    Channel,
    ChannelConfigError,
    EnvSecrets,
    PermanentDeliveryError,
    TransientDeliveryError,
    build_notifier,
)
from tests.fakes import FakeSmtp
from tests.notify.helpers import make_notice, make_update

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)> & "CT-07"'


def email_channel(**config) -> Channel:
    return Channel(
        id=31,
        park_id=1,
        kind="email",
        name="Kruger rangers",
        config={
            "allow_http": True,
            "allow_private_network": True,
            "people_photos": "as_is",  # the adapter's own format (privacy: test_notify_privacy.py)
            "to": ["duty@kruger.example", "ops@kruger.example"],
            "from_address": "alerts@trapalert.example",
            "api_key_setting": "CHANNEL_SECRET_SENDGRID_API_KEY",
            **config,
        },
    )


def test_sendgrid_request_is_exactly_what_sendgrid_expects(fake_sendgrid, secrets, notice, photo):
    notifier = build_notifier(email_channel(host=fake_sendgrid.url), secrets)
    result = notifier.send_new(notice)

    (req,) = fake_sendgrid.requests
    assert (req.method, req.path) == ("POST", "/v3/mail/send")
    assert req.header("Authorization") == "Bearer SG.test-key"
    assert req.header("Content-Type") == "application/json"
    body = req.json
    assert body["from"] == {"email": "alerts@trapalert.example", "name": "TrapAlert"}
    assert body["personalizations"][0]["to"] == [
        {"email": "duty@kruger.example"},
        {"email": "ops@kruger.example"},
    ]
    assert body["subject"] == "[TrapAlert] person at CT-07 Sabie drift (Kruger South), 93%"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    text, htm = body["content"][0]["value"], body["content"][1]["value"]
    assert notice.photo_url in text and notice.map_url in text
    assert 'src="cid:alert-photo"' in htm
    assert f'href="{html.escape(notice.photo_url, quote=True)}"' in htm
    assert f'href="{html.escape(notice.map_url, quote=True)}"' in htm
    attachments = sorted(body["attachments"], key=lambda a: a["disposition"])
    assert attachments == [
        {
            "content": base64.b64encode(photo).decode(),
            "filename": "a1b2c3-0.jpg",
            "type": "image/jpeg",
            "disposition": "attachment",
        },
        {
            "content": base64.b64encode(photo).decode(),
            "filename": "a1b2c3-0.jpg",
            "type": "image/jpeg",
            "disposition": "inline",
            "content_id": "alert-photo",
        },
    ]
    assert body["custom_args"] == {"alert_id": "42", "correlation_id": "corr-42"}
    assert result.external_id and result.external_id == result.state["message_id"]


def test_html_injection_in_camera_name_is_escaped(fake_sendgrid, secrets, photo):
    notifier = build_notifier(email_channel(host=fake_sendgrid.url), secrets)
    camera = CameraRef(id=7, name=EVIL, latitude=-25.1, longitude=31.9, timezone="UTC")
    notifier.send_new(
        make_notice(photo, camera=camera, title=f"Person at {EVIL}", photo_url='javascript:alert(1)//"><b>')
    )
    body = fake_sendgrid.messages[0]
    htm = body["content"][1]["value"]
    assert "<script>" not in htm and "<img src=x" not in htm
    assert html.escape(EVIL) in htm
    assert "javascript:" not in htm  # only http(s) links are rendered
    assert "\n" not in body["subject"] and "\r" not in body["subject"]


def test_sendgrid_errors_map_to_transient_or_permanent(fake_sendgrid, secrets, notice):
    notifier = build_notifier(email_channel(host=fake_sendgrid.url), secrets)
    fake_sendgrid.fail_next(1, status=429, retry_after=12)
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert (info.value.status, info.value.retry_after) == (429, 12)
    fake_sendgrid.fail_next(1, status=503)
    with pytest.raises(TransientDeliveryError):
        notifier.send_new(notice)
    fake_sendgrid.fail_next(1, status=400, body={"errors": [{"message": "Invalid to address"}]})
    with pytest.raises(PermanentDeliveryError) as info:
        notifier.send_new(notice)
    # status and reason phrase only: the remote body never goes into last_error
    assert str(info.value) == "SendGrid answered 400 Bad Request"
    assert fake_sendgrid.messages == []


def test_sendgrid_bad_key_names_the_setting(fake_sendgrid, notice):
    env = EnvSecrets(environ={"CHANNEL_SECRET_SG_KRUGER": "SG.revoked-key"})
    notifier = build_notifier(
        email_channel(host=fake_sendgrid.url, api_key_setting="CHANNEL_SECRET_SG_KRUGER"), env
    )
    with pytest.raises(PermanentDeliveryError) as info:
        notifier.send_new(notice)
    assert "CHANNEL_SECRET_SG_KRUGER" in str(info.value) and "SG.revoked-key" not in str(info.value)


def test_sendgrid_unreachable_is_transient(secrets, notice):
    with socket.socket() as s:  # a free port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = build_notifier(email_channel(host=f"http://127.0.0.1:{port}"), secrets)
    with pytest.raises(TransientDeliveryError, match="connection failed"):
        notifier.send_new(notice)


def test_outbox_mode_writes_a_complete_eml(tmp_path, secrets, photo):
    notifier = build_notifier(
        email_channel(mode="outbox", outbox_dir=str(tmp_path / "outbox")), EnvSecrets({})
    )
    camera = CameraRef(id=7, name=EVIL, latitude=-25.1, longitude=31.9)
    result = notifier.send_new(make_notice(photo, camera=camera))
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1 and files[0].name == result.state["file"]
    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["To"] == "duty@kruger.example, ops@kruger.example"
    assert msg["Message-ID"] == result.external_id
    assert "person at" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    htm = msg.get_body(("html",)).get_content()
    assert EVIL in text and "<script>" not in htm and html.escape(EVIL) in htm
    parts = list(msg.walk())
    inline = [p for p in parts if p.get("Content-ID") == "<alert-photo>"]
    attached = [p for p in parts if p.get_content_disposition() == "attachment"]
    assert len(inline) == 1 and inline[0].get_content() == photo
    assert (
        len(attached) == 1
        and attached[0].get_filename() == "a1b2c3-0.jpg"
        and attached[0].get_content() == photo
    )


def test_updates_send_another_mail_once(tmp_path, photo):
    notifier = build_notifier(email_channel(mode="outbox", outbox_dir=str(tmp_path)), EnvSecrets({}))
    first = notifier.send_new(make_notice(photo))
    second = notifier.send_update(make_update(photo, 2), first)
    third = notifier.send_update(make_update(photo, 2), second)  # redelivered
    assert third == second and second.external_id == first.external_id
    names = sorted(p.name for p in tmp_path.glob("*.eml"))
    assert len(names) == 2 and "-update-" in names[1]
    msg = email.message_from_bytes((tmp_path / names[1]).read_bytes(), policy=policy.default)
    assert msg["Subject"].startswith("[TrapAlert] Update: person at")


def test_smtp_mode(photo):
    with FakeSmtp() as smtp:
        notifier = build_notifier(
            email_channel(mode="smtp", smtp_host="127.0.0.1", smtp_port=smtp.port), EnvSecrets({})
        )
        result = notifier.send_new(make_notice(photo))
        (sent,) = smtp.messages
        assert sent.mail_from == "alerts@trapalert.example"
        assert sent.rcpt_to == ["duty@kruger.example", "ops@kruger.example"]
        assert sent.message["Message-ID"] == result.external_id
        smtp.fail_next(1, code=451)
        with pytest.raises(TransientDeliveryError, match="451"):
            notifier.send_new(make_notice(photo))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"to": []}, "to: List should have at least 1 item"),
        ({"to": ["not-an-address"]}, "not email addresses: ['not-an-address']"),
        ({"mode": "outbox"}, "mode outbox needs outbox_dir"),
        ({"mode": "pigeon"}, "mode: Input should be 'sendgrid', 'outbox' or 'smtp'"),
    ],
)
def test_config_errors_are_clear(config, message, secrets):
    channel = Channel(
        id=9,
        park_id=1,
        kind="email",
        name="x",
        config={
            "allow_http": True,
            "allow_private_network": True,
            "people_photos": "as_is",
            "to": ["a@b.org"],
            **config,
        },
    )
    with pytest.raises(ChannelConfigError) as info:
        build_notifier(channel, secrets)
    assert message in str(info.value)


def test_missing_api_key_setting(notice):
    with pytest.raises(ChannelConfigError, match="secret setting CHANNEL_SECRET_SENDGRID_API_KEY is not set"):
        build_notifier(email_channel(), EnvSecrets(environ={}))


def test_health_notice_subject_has_no_confidence():
    from functions.notify.email import subject_for, text_body
    from tests.notify.helpers import make_notice

    notice = make_notice(
        kind="health", categories=["silent"], max_conf=0.0, title="Camera KN-07 silent for 26 h"
    )
    assert subject_for(notice) == "[TrapAlert] Camera KN-07 silent for 26 h (Kruger South)"
    assert "%" not in subject_for(notice) and "confidence" not in text_body(notice)
