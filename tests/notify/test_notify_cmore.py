"""CMORE adapter against the local CMORE stand-in."""

from __future__ import annotations

import pytest

from functions.notify import (
    Channel,
    ChannelConfigError,
    EnvSecrets,
    PermanentDeliveryError,
    TransientDeliveryError,
    build_notifier,
    deliver,
)
from tests.notify.helpers import make_notice, make_update

# tags and fields by id (tests/fakes/cmore.py DEFAULT_TAGS: 501 "Camera Trap Alert", 502 "Poaching")
TAGS = [
    {
        "tag": 501,
        "fields": {"9001": "{camera}", "9002": "{categories}", "9003": "{max_conf}", "9004": "{photo_url}"},
    },
    {"tag": "502", "fields": {"9101": "1"}, "when": ["person"]},
]
EVENTS = "/za/WebAPI/api/v2/messages/events"
COMMENT = "/za/WebAPI/api/comment"
GETFULL = "/za/WebAPI/api/v2/tags/getfull"


def cmore_channel(cm, **config) -> Channel:
    return Channel(
        id=21,
        park_id=1,
        kind="cmore",
        name="Kruger CMORE",
        config={
            "base_url": cm.url,
            "username_setting": "CHANNEL_SECRET_CMORE_USER_KRUGER",
            "password_setting": "CHANNEL_SECRET_CMORE_PASSWORD_KRUGER",
            "unique_id": "trapalert-kruger",
            "owner_group_id": 12,
            "tags": TAGS,
            "allow_http": True,
            "allow_private_network": True,
            **config,
        },
    )


def test_new_alert_logs_in_creates_event_and_photo_comment(fake_cmore, secrets, notice, photo):
    result = build_notifier(cmore_channel(fake_cmore), secrets).send_new(notice)

    reqs = fake_cmore.requests
    assert [(r.method, r.path) for r in reqs] == [
        ("POST", "/za/WebAPI/api/token/login"),
        ("GET", "/za/WebAPI/api/v2/tags/getfull"),
        ("POST", "/za/WebAPI/api/v2/messages/events"),
        ("POST", "/za/WebAPI/api/comment"),
    ]
    login = reqs[0]
    assert login.header("Content-Type") == "application/x-www-form-urlencoded"
    assert login.form == {
        "username": "ranger",
        "password": "cmore-pw",
        "clientType": "SoftwareClient",
        "uniqueId": "trapalert-kruger",
    }
    assert login.header("Authorization") is None
    token = next(iter(fake_cmore.tokens))
    assert all(r.header("Authorization") == f"Token {token}" for r in reqs[1:])

    assert reqs[2].json == {
        "description": "Person at CT-07 Sabie drift\n1 person detected at 04:14 (93%).\n"
        f"Camera CT-07 Sabie drift (Kruger South). Photo: {notice.photo_url}\n"
        "TrapAlert ref TA42C21",  # the delivery reference (alert 42, channel 21)
        "latitude": -25.1234,
        "longitude": 31.9123,
        "altitude": 0.0,
        "accuracy": 10.0,
        "dateOccurred": "2026-11-20T02:14:05+00:00",
        "uploadType": "Generated",
        "ownerGroupId": 12,
        "tags": [
            {
                "tagId": 501,
                "values": [
                    {"fieldId": 9001, "value": "CT-07 Sabie drift"},
                    {"fieldId": 9002, "value": "person"},
                    {"fieldId": 9003, "value": "0.93"},
                    {"fieldId": 9004, "value": notice.photo_url},
                ],
            },
            {"tagId": 502, "values": [{"fieldId": 9101, "value": "1"}]},
        ],
    }
    comment = reqs[3]
    assert comment.header("Content-Type").startswith("multipart/form-data")
    root = result.external_id
    # client.py post_comment_with_file: the JSON comment's fields as form parts, plus the file part
    assert comment.form == {
        "rootMessageId": root,
        "description": "Photo: Person at CT-07 Sabie drift",
        "uploadType": "Generated",
    }
    assert comment.files["file"].filename == "a1b2c3-0.jpg"
    assert comment.files["file"].content_type == "image/jpeg"
    assert comment.files["file"].data == photo
    assert result.state["root_message_id"] == root and int(root) in fake_cmore.events


def test_update_goes_to_the_same_event_as_a_comment(fake_cmore, secrets, notice, photo):
    notifier = build_notifier(cmore_channel(fake_cmore), secrets)
    first = notifier.send_new(notice)
    second = notifier.send_update(make_update(photo, 2), first)
    assert second.external_id == first.external_id
    assert len(fake_cmore.events) == 1
    comments = fake_cmore.events[int(first.external_id)]["comments"]
    assert [c["file"]["filename"] for c in comments] == ["a1b2c3-0.jpg", "a1b2c3-1.jpg"]
    assert comments[1]["description"].startswith("Update: 2 photo(s) so far; seen: person")
    assert second.state["comments"] == [str(c["id"]) for c in comments]
    # login once, tag list once (cached)
    assert len(fake_cmore.requests_to("/token/login")) == 1
    assert len(fake_cmore.requests_to("/v2/tags/getfull")) == 1
    # redelivered update: nothing new
    before = len(fake_cmore.requests)
    notifier.send_update(make_update(photo, 2), second)
    assert len(fake_cmore.requests) == before


def test_token_is_cached_per_process_and_renewed_once_on_401(fake_cmore, secrets, photo):
    build_notifier(cmore_channel(fake_cmore), secrets).send_new(make_notice(photo))
    # a new notifier (next message) reuses the cached token and tag list
    build_notifier(cmore_channel(fake_cmore), secrets).send_new(make_notice(photo, alert_id=43))
    assert fake_cmore.logins == 1

    fake_cmore.expire_tokens()
    fake_cmore.clear()
    build_notifier(cmore_channel(fake_cmore, photo_comment=False), secrets).send_new(
        make_notice(photo, alert_id=44)
    )
    assert [(r.path.rsplit("/api", 1)[1], r.status) for r in fake_cmore.requests] == [
        ("/v2/messages/events", 401),
        ("/token/login", 200),
        ("/v2/messages/events", 200),
    ]
    assert fake_cmore.logins == 2


def test_login_refused_is_permanent_and_names_the_settings(fake_cmore, notice):
    env = EnvSecrets(
        environ={
            "CHANNEL_SECRET_CMORE_USER_KRUGER": "ranger",
            "CHANNEL_SECRET_CMORE_PASSWORD_KRUGER": "wrong-password",
        }
    )
    with pytest.raises(PermanentDeliveryError) as info:
        build_notifier(cmore_channel(fake_cmore), env).send_new(notice)
    msg = str(info.value)
    assert "CMORE login refused (401)" in msg and "CHANNEL_SECRET_CMORE_PASSWORD_KRUGER" in msg
    assert "wrong-password" not in msg


def test_5xx_and_429_are_transient(fake_cmore, secrets, notice):
    notifier = build_notifier(cmore_channel(fake_cmore), secrets)
    fake_cmore.fail_next(1, status=503, path="/v2/messages/events")
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert info.value.status == 503
    fake_cmore.fail_next(1, status=429, retry_after=30, path="/v2/messages/events")
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert info.value.retry_after == 30
    assert fake_cmore.events == {}


def test_timeout_is_transient(fake_cmore, secrets, notice):
    notifier = build_notifier(cmore_channel(fake_cmore, timeout_s=0.3), secrets)
    fake_cmore.delay_next(1, seconds=1.0, path="/v2/messages/events")
    with pytest.raises(TransientDeliveryError, match="timed out"):
        notifier.send_new(notice)


def test_comment_failure_resumes_on_the_same_event(fake_cmore, secrets, notice):
    notifier = build_notifier(cmore_channel(fake_cmore), secrets)
    fake_cmore.fail_next(1, status=500, path="/comment")
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    partial = info.value.partial
    assert partial is not None
    result = deliver(notifier, notice, partial=partial)
    assert result.external_id == partial.external_id
    assert len(fake_cmore.events) == 1
    assert len(fake_cmore.events[int(result.external_id)]["comments"]) == 1


def test_a_text_update_is_a_json_comment_and_an_empty_answer_is_fine(fake_cmore, secrets, notice, photo):
    notifier = build_notifier(cmore_channel(fake_cmore), secrets)
    first = notifier.send_new(notice)
    fake_cmore.empty_comment_answers = True  # client.py _safe_json: write endpoints may answer 2xx empty
    fake_cmore.clear()
    # an update without a photo: the comment is the JSON form (client.py post_comment)
    second = notifier.send_update(make_update(None, 2), first)
    (req,) = fake_cmore.requests
    assert (req.method, req.path) == ("POST", COMMENT)
    assert req.header("Content-Type") == "application/json"
    assert req.json == {
        "description": "Update: 2 photo(s) so far; seen: person; max confidence 93%. "
        f"Original photo: {notice.photo_url}",
        "rootMessageId": int(first.external_id),
        "uploadType": "Generated",
    }
    assert second.external_id == first.external_id and second.state["comments"][-1] is None


def test_an_api_token_setting_needs_no_login(fake_cmore, photo):
    fake_cmore.api_tokens.add("cmore-api-token")
    env = EnvSecrets(
        environ={"CHANNEL_SECRET_CMORE_TOKEN_KRUGER": "Token cmore-api-token"}
    )  # the prefix is tolerated
    config = {
        "token_setting": "CHANNEL_SECRET_CMORE_TOKEN_KRUGER",
        "username_setting": None,
        "password_setting": None,
    }
    result = build_notifier(cmore_channel(fake_cmore, **config), env).send_new(make_notice(photo))
    assert fake_cmore.logins == 0 and int(result.external_id) in fake_cmore.events
    assert all(r.header("Authorization") == "Token cmore-api-token" for r in fake_cmore.requests)

    env = EnvSecrets(environ={"CHANNEL_SECRET_CMORE_TOKEN_KRUGER": "revoked-token"})
    with pytest.raises(PermanentDeliveryError) as info:
        build_notifier(cmore_channel(fake_cmore, **config), env).send_new(make_notice(photo, alert_id=43))
    assert "CHANNEL_SECRET_CMORE_TOKEN_KRUGER was rejected (401)" in str(info.value)
    assert "revoked-token" not in str(info.value)


def test_tags_by_name_are_refused_with_the_ids_they_match(fake_cmore, secrets, notice):
    by_name = [{"tag": "Poaching", "fields": {}}]  # one name, two tags in two domains
    notifier = build_notifier(cmore_channel(fake_cmore, tags=by_name), secrets)
    with pytest.raises(ChannelConfigError) as info:
        notifier.send_new(notice)
    msg = str(info.value)
    assert "configured by name" in msg and "502 (domain 'Wildlife'), 3144 (domain 'Other')" in msg
    assert fake_cmore.events == {}
    assert notifier.check() == [msg]

    field_by_name = [{"tag": 501, "fields": {"Camera": "{camera}"}}]
    notifier = build_notifier(cmore_channel(fake_cmore, tags=field_by_name), secrets)
    with pytest.raises(ChannelConfigError, match="'Camera' of tag 501 is configured by name.*field id 9001"):
        notifier.send_new(notice)


def test_unknown_tag_or_field_ids_are_clear_config_errors(fake_cmore, secrets, notice):
    notifier = build_notifier(cmore_channel(fake_cmore, tags=[{"tag": 777, "fields": {}}]), secrets)
    with pytest.raises(ChannelConfigError, match="tag id 777 is not visible to this account"):
        notifier.send_new(notice)
    notifier = build_notifier(
        cmore_channel(fake_cmore, tags=[{"tag": 502, "fields": {"9999": "1"}}]), secrets
    )
    with pytest.raises(
        ChannelConfigError, match="502 .'Poaching'. has no field id 9999 .fields: 9101 'Suspects'"
    ):
        notifier.send_new(notice)
    assert build_notifier(cmore_channel(fake_cmore), secrets).check() == []


def test_check_reports_bad_credentials(fake_cmore, notice):
    env = EnvSecrets(
        environ={
            "CHANNEL_SECRET_CMORE_USER_KRUGER": "ranger",
            "CHANNEL_SECRET_CMORE_PASSWORD_KRUGER": "wrong-password",
        }
    )
    (problem,) = build_notifier(cmore_channel(fake_cmore), env).check()
    assert "CMORE login refused (401)" in problem and "wrong-password" not in problem


def test_catalogue_read_timeout_is_its_own_and_a_stale_catalogue_serves_while_it_refreshes(
    fake_cmore, secrets, photo
):
    from functions.notify import cmore as cmore_module

    # getfull is slow (about 25 s in production): its timeout is tags_timeout_s, not timeout_s
    channel = cmore_channel(fake_cmore, timeout_s=0.3, tags_timeout_s=5, tags_ttl_s=0, photo_comment=False)
    fake_cmore.delay_next(1, seconds=0.6, path=GETFULL)
    build_notifier(channel, secrets).send_new(make_notice(photo))  # the first load blocks
    assert len(fake_cmore.requests_to("/v2/tags/getfull")) == 1 and len(fake_cmore.events) == 1

    # stale now (ttl 0): the next delivery does not wait for the slow refresh, which runs alongside
    fake_cmore.delay_next(1, seconds=1.5, path=GETFULL)
    build_notifier(channel, secrets).send_new(make_notice(photo, alert_id=43))
    assert len(fake_cmore.events) == 2
    assert len([r for r in fake_cmore.requests if r.path == GETFULL]) == 1  # still running
    cmore_module.join_refreshes()
    assert [r.status for r in fake_cmore.requests if r.path == GETFULL] == [200, 200]

    # a refresh that fails keeps the stale catalogue in use
    fake_cmore.fail_next(1, status=503, path=GETFULL)
    build_notifier(channel, secrets).send_new(make_notice(photo, alert_id=44))
    cmore_module.join_refreshes()
    assert len(fake_cmore.events) == 3


def test_unknown_placeholder_is_rejected_at_build(fake_cmore, secrets):
    channel = cmore_channel(fake_cmore, tags=[{"tag": 502, "fields": {"9101": "{camera.__class__}"}}])
    with pytest.raises(ChannelConfigError, match="unknown placeholders"):
        build_notifier(channel, secrets)


def test_notifiers_share_one_verifying_tls_context(fake_cmore, secrets, monkeypatch):
    # A notifier is built per delivery; building a TLS context loads the CA bundle (~25 ms of CPU), so all
    # share the process's one, and it still verifies certificates and host names.
    import ssl

    from functions.notify import base

    base.tls_context.cache_clear()
    made = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: made.append(1) or real(*a, **k))
    for _ in range(3):
        build_notifier(cmore_channel(fake_cmore), secrets).close()
    ctx = base.tls_context()
    assert len(made) == 1
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
