"""SMS and WhatsApp through the official twilio client, sent by the project's transport to the Twilio
stand-in (tests/fakes/twilio.py): exact requests asserted."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import pytest

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
from tests.fakes.twilio import DEFAULT_SID, FakeTwilio
from tests.notify.helpers import make_notice, make_update

TOKEN = "twilio-auth-token-0123456789"
ENV = EnvSecrets(environ={"CHANNEL_SECRET_TWILIO_TOKEN": TOKEN})
RANGERS = ["+27820000001", "+27820000002"]
PHOTO_URL = make_notice().photo_url


@pytest.fixture
def tw():
    with FakeTwilio(auth_token=TOKEN) as fake:
        yield fake


def channel(url: str, kind: str = "sms", **config) -> Channel:
    return Channel(
        id=41,
        park_id=1,
        kind="twilio",
        name=f"rangers-{kind}",
        config={
            "channel": kind,
            "account_sid": DEFAULT_SID,
            "auth_token_setting": "CHANNEL_SECRET_TWILIO_TOKEN",
            "from_number": "+15005550006" if kind == "sms" else "+14155238886",
            "to": RANGERS,
            "api_root": url,
            "allow_http": True,
            "allow_private_network": True,
            **config,
        },
    )


def form(req) -> dict[str, list[str]]:
    return parse_qs(req.body.decode("utf-8"))


def test_sms_is_one_message_per_number_with_the_photo_link(tw, photo):
    notifier = build_notifier(channel(tw.url, people_photos="as_is"), ENV)
    result = notifier.send_new(make_notice(photo))

    assert len(tw.requests) == 2
    for req, number in zip(tw.requests, RANGERS, strict=True):
        assert req.method == "POST"
        assert req.path == f"/2010-04-01/Accounts/{DEFAULT_SID}/Messages.json"
        assert req.header("content-type") == "application/x-www-form-urlencoded"
        assert req.header("accept") == "application/json"
        assert req.header("authorization") == "Basic " + base64.b64encode(
            f"{DEFAULT_SID}:{TOKEN}".encode()
        ).decode("ascii")
        assert form(req) == {
            "To": [number],
            "From": ["+15005550006"],
            "Body": [
                "Person at CT-07 Sabie drift CT-07 Sabie drift, 20 Nov 04:14 SAST "
                f"{PHOTO_URL} https://ops.trapalert.example/alerts/42"
            ],
        }
        assert len(form(req)["Body"][0]) <= 320
    sids = [m["sid"] for m in tw.messages]
    assert result == DeliveryResult(
        external_id=sids[0], state={"messages": dict(zip(RANGERS, sids, strict=True)), "updates": []}
    )


def test_sms_blurred_by_default_carries_no_link_to_the_original(tw, photo):
    build_notifier(channel(tw.url), ENV).send_new(make_notice(photo))
    body = form(tw.requests[0])["Body"][0]
    assert "blob.core.windows.net" not in body
    assert body.endswith("https://ops.trapalert.example/alerts/42")


def test_whatsapp_sends_the_photo_as_media(tw, photo):
    notifier = build_notifier(channel(tw.url, kind="whatsapp", people_photos="as_is", to=RANGERS[:1]), ENV)
    notifier.send_new(make_notice(photo))

    (req,) = tw.requests
    fields = form(req)
    assert fields["To"] == ["whatsapp:+27820000001"]
    assert fields["From"] == ["whatsapp:+14155238886"]
    assert fields["MediaUrl"] == [PHOTO_URL]
    assert fields["Body"][0].startswith("Person at CT-07 Sabie drift\nCT-07 Sabie drift, 20 Nov 04:14 SAST\n")
    assert "Console: https://ops.trapalert.example/alerts/42" in fields["Body"][0]


def test_whatsapp_with_people_photos_none_has_no_media(tw, photo):
    build_notifier(channel(tw.url, kind="whatsapp", people_photos="none"), ENV).send_new(make_notice(photo))
    assert all("MediaUrl" not in form(r) for r in tw.requests)


def test_a_failure_keeps_what_was_sent_and_the_retry_sends_only_the_rest(tw, photo):
    notifier = build_notifier(channel(tw.url), ENV)
    tw.fail_next(1, 503, retry_after=3, path=f"/2010-04-01/Accounts/{DEFAULT_SID}/Messages.json")
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(make_notice(photo))
    assert info.value.retry_after == 3 and info.value.partial is None

    notifier.send_new(make_notice(photo))  # recovered: both numbers get theirs
    tw.clear()
    tw.messages.clear()
    calls = iter([None, TransientDeliveryError("Twilio: connection failed")])

    def second_fails(*args, **kwargs):
        exc = next(calls)
        if exc:
            raise exc
        return original(*args, **kwargs)

    original = notifier._http_client.request
    notifier._http_client.request = second_fails
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(make_notice(photo))
    partial = info.value.partial
    assert list(partial.state["messages"]) == [RANGERS[0]]

    notifier._http_client.request = original
    tw.clear()
    result = notifier.send_new(make_notice(photo), resume=partial)
    assert [form(r)["To"] for r in tw.requests] == [[RANGERS[1]]]
    assert list(result.state["messages"]) == RANGERS


def test_updates_are_off_by_default_and_sent_once_when_on(tw, photo):
    off = build_notifier(channel(tw.url), ENV)
    first = off.send_new(make_notice(photo))
    tw.clear()
    assert off.send_update(make_update(photo), first) == first
    assert tw.requests == []

    on = build_notifier(channel(tw.url, send_updates=True), ENV)
    update = make_update(photo)
    second = on.send_update(update, first)
    assert on.send_update(update, second) == second
    assert len(tw.requests) == 2
    assert form(tw.requests[0])["Body"][0].startswith("Update: ")


def test_twilio_error_code_without_the_remote_text(tw, photo):
    notifier = build_notifier(channel(tw.url, to=["+27820000001"], from_number="+15551230000"), ENV)
    with pytest.raises(PermanentDeliveryError) as info:
        notifier.send_new(make_notice(photo))
    message = str(info.value)
    assert info.value.status == 400
    assert "Twilio error 21212 (https://www.twilio.com/docs/errors/21212)" in message
    assert "+15551230000" not in message and "+27820000001" not in message  # numbers masked
    assert "+278…001" in message


def test_bad_token_is_permanent_and_never_echoed(tw, photo):
    env = EnvSecrets(environ={"CHANNEL_SECRET_TWILIO_TOKEN": "not-the-token-xyz"})
    with pytest.raises(PermanentDeliveryError) as info:
        build_notifier(channel(tw.url), env).send_new(make_notice(photo))
    assert info.value.status == 401 and "20003" in str(info.value)
    assert "not-the-token-xyz" not in str(info.value)


def test_api_key_authentication(photo):
    key = "SK" + "ab" * 16
    with FakeTwilio(api_keys={key: "key-secret-value"}) as tw:
        env = EnvSecrets(environ={"CHANNEL_SECRET_TWILIO_TOKEN": "key-secret-value"})
        build_notifier(channel(tw.url, key_sid=key, to=RANGERS[:1]), env).send_new(make_notice(photo))
        assert tw.requests[0].status == 201


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"to": ["0820000001"]}, "E.164"),
        ({"channel": "mms"}, "channel: Input should be 'sms' or 'whatsapp'"),
        ({"account_sid": "AC123"}, "Account SID"),
        ({"messaging_service_sid": "MG" + "0" * 32}, "exactly one of from_number and messaging_service_sid"),
        ({"auth_token_setting": "TWILIO_AUTH_TOKEN"}, "CHANNEL_SECRET_"),
        ({"api_root": "http://api.twilio.com"}, "plain http"),
    ],
)
def test_bad_configs_are_refused(config, message):
    base = {
        "account_sid": DEFAULT_SID,
        "auth_token_setting": "CHANNEL_SECRET_TWILIO_TOKEN",
        "from_number": "+15005550006",
        "to": RANGERS,
    }
    with pytest.raises(ChannelConfigError, match=message):
        validate_channel(Channel(id=1, park_id=1, kind="twilio", config={**base, **config}))
