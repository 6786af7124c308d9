"""The Telegram adapter against the Bot API stand-in (tests/fakes/telegram.py): exact requests asserted."""

from __future__ import annotations

import io
import json
import logging

import pytest
from PIL import Image

from functions.notify import (
    Channel,
    ChannelConfigError,
    DeliveryResult,
    EnvSecrets,
    PermanentDeliveryError,
    TransientDeliveryError,
    build_notifier,
    validate_channel,
)
from tests.fakes.telegram import FakeTelegram
from tests.notify.helpers import make_notice, make_update

TOKEN = "4242424242:AAE-test_token-value-0123456789"
CHAT = -1001234567890
ENV = EnvSecrets(environ={"CHANNEL_SECRET_TG_BOT": TOKEN})


@pytest.fixture
def tg():
    with FakeTelegram(token=TOKEN, chats={CHAT, 777}) as fake:
        yield fake


def tg_channel(url: str, **config) -> Channel:
    return Channel(
        id=31,
        park_id=1,
        kind="telegram",
        name="rangers-telegram",
        config={
            "chat_id": CHAT,
            "token_setting": "CHANNEL_SECRET_TG_BOT",
            "api_root": url,
            "allow_http": True,
            "allow_private_network": True,
            **config,
        },
    )


def test_new_alert_is_one_send_photo_with_caption(tg, photo):
    notifier = build_notifier(tg_channel(tg.url, people_photos="as_is"), ENV)
    result = notifier.send_new(make_notice(photo))

    (req,) = tg.requests
    assert req.method == "POST"
    assert req.path == f"/bot{TOKEN}/sendPhoto"
    assert req.header("content-type").startswith("multipart/form-data")
    assert req.form["chat_id"] == str(CHAT)
    assert req.form["parse_mode"] == "HTML"
    assert "reply_parameters" not in req.form and "disable_notification" not in req.form
    assert req.files["photo"].data == photo  # as_is: the annotated photo unchanged
    assert req.files["photo"].filename == "a1b2c3-0.jpg"
    caption = req.form["caption"]
    assert caption.startswith("<b>Person at CT-07 Sabie drift</b>\n1 person detected at 04:14 (93%).\n")
    assert "CT-07 Sabie drift · Kruger South · 2026-11-20 04:14 SAST" in caption
    assert '<a href="https://ops.trapalert.example/alerts/42">console</a>' in caption
    assert result == DeliveryResult(external_id="1", state={"chat_id": CHAT, "message_id": 1, "updates": []})


def test_update_replies_to_the_first_message_silently(tg, photo):
    notifier = build_notifier(tg_channel(tg.url), ENV)
    first = notifier.send_new(make_notice(photo))
    update = make_update(photo, n=2)
    second = notifier.send_update(update, first)
    again = notifier.send_update(update, second)  # a redelivered update sends nothing

    assert len(tg.requests) == 2
    req = tg.requests[1]
    assert json.loads(req.form["reply_parameters"]) == {"message_id": 1, "allow_sending_without_reply": True}
    assert req.form["disable_notification"] == "true"
    assert req.form["caption"].startswith("<b>Update: ")
    assert tg.messages[1]["reply_to"] == 1
    assert second.state["message_id"] == 1 and second.state["updates"] == [update.update_key()]
    assert again == second


def test_without_photo_a_send_message_in_json(tg):
    notifier = build_notifier(tg_channel(tg.url, people_photos="none"), ENV)
    notifier.send_new(make_notice(b"\xff\xd8 not used"))

    (req,) = tg.requests
    assert req.path == f"/bot{TOKEN}/sendMessage"
    body = req.json
    assert body["chat_id"] == CHAT and body["parse_mode"] == "HTML"
    assert body["link_preview_options"] == {"is_disabled": True}
    assert "photo" not in body["text"]  # people_photos none: no link to the original either
    assert "console</a>" in body["text"]


def test_html_is_escaped_and_caption_limited(tg, photo):
    long = "<script>&" + "x" * 3000
    notifier = build_notifier(tg_channel(tg.url, people_photos="as_is"), ENV)
    notifier.send_new(make_notice(photo, title="Person <b>near</b> gate & fence", summary=long))
    caption = tg.requests[0].form["caption"]
    assert len(caption) <= 1024
    assert "<script>" not in caption and "&lt;script&gt;" in caption


def test_429_retry_after_from_parameters(tg, photo):
    tg.fail_next(
        1,
        429,
        body={
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 17",
            "parameters": {"retry_after": 17},
        },
    )
    notifier = build_notifier(tg_channel(tg.url), ENV)
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(make_notice(photo))
    assert info.value.retry_after == 17 and info.value.status == 429


def test_429_retry_after_header_when_no_parameters(tg, photo):
    tg.fail_next(1, 429, retry_after=9, body={"ok": False, "error_code": 429, "description": "x"})
    with pytest.raises(TransientDeliveryError) as info:
        build_notifier(tg_channel(tg.url), ENV).send_new(make_notice(photo))
    assert info.value.retry_after == 9


def test_user_who_never_pressed_start_is_a_permanent_error_with_the_fix(tg, photo):
    notifier = build_notifier(tg_channel(tg.url, chat_id=555), ENV)
    with pytest.raises(PermanentDeliveryError) as info:
        notifier.send_new(make_notice(photo))
    assert info.value.status == 403
    assert "press Start" in str(info.value)


def test_migrated_group_names_the_new_chat_id(tg, photo):
    tg.migrate(CHAT, -100999)
    with pytest.raises(PermanentDeliveryError, match="set chat_id to -100999"):
        build_notifier(tg_channel(tg.url), ENV).send_new(make_notice(photo))


def test_wrong_token_never_shows_the_token(tg, photo, caplog):
    env = EnvSecrets(environ={"CHANNEL_SECRET_TG_BOT": "1:wrong-token-value"})
    caplog.set_level(logging.INFO, logger="httpx")
    with pytest.raises(PermanentDeliveryError) as info:
        build_notifier(tg_channel(tg.url), env).send_new(make_notice(photo))
    assert info.value.status == 401
    assert "wrong-token-value" not in str(info.value)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "/bot<redacted>/sendPhoto" in logged and "wrong-token-value" not in logged


def test_resume_after_a_recorded_send_sends_nothing(tg, photo):
    notifier = build_notifier(tg_channel(tg.url), ENV)
    done = DeliveryResult(external_id="5", state={"chat_id": CHAT, "message_id": 5, "updates": []})
    assert notifier.send_new(make_notice(photo), resume=done) == done
    assert tg.requests == []


def test_blurred_by_default_the_photo_that_leaves_is_not_the_original(tg, photo):
    build_notifier(tg_channel(tg.url), ENV).send_new(make_notice(photo))
    sent = tg.requests[0].files["photo"].data
    assert sent != photo
    assert Image.open(io.BytesIO(sent)).size == (640, 480)
    assert "photo</a>" not in tg.requests[0].form["caption"]  # no link to the unblurred original


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"chat_id": "my group"}, "numeric chat id"),
        ({"api_root": "ftp://x"}, "api_root"),
        ({"chat_id": CHAT, "token_setting": "TELEGRAM_TOKEN"}, "CHANNEL_SECRET_"),
    ],
)
def test_bad_configs_are_refused_before_saving(config, message):
    channel = Channel(
        id=1,
        park_id=1,
        kind="telegram",
        config={"chat_id": CHAT, "token_setting": "CHANNEL_SECRET_TG_BOT", **config},
    )
    with pytest.raises(ChannelConfigError, match=message):
        validate_channel(channel)
