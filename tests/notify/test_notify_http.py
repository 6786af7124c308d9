"""The one HTTP transport of the channel adapters (functions/notify/http.py), against a recording server."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from functions.notify import HttpSettings, PermanentDeliveryError, TransientDeliveryError
from functions.notify.http import Transport, ambiguous, parse_retry_after
from tests.fakes._server import FakeServer, Reply

SECRET = "tok-0123456789-secret"


class Echo(FakeServer):
    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r"/ok", lambda req: Reply(200, {"ok": True}))
        self.route("POST", r"/empty", lambda req: Reply(201))
        self.route("GET", r"/coded", lambda req: Reply(400, {"code": "invalid_event_type", "detail": "long"}))
        self.route("GET", r"/leaky", lambda req: Reply(401, {"code": SECRET, "detail": f"token {SECRET}"}))


@pytest.fixture
def echo():
    with Echo() as server:
        yield server


def transport(server, **kw) -> Transport:
    return Transport("Svc", HttpSettings(), base_url=server.url, secrets=[SECRET], **kw)


def test_a_2xx_answer_is_returned_with_the_project_headers(echo):
    with transport(echo, headers={"X-Extra": "1"}) as t:
        assert t.request("GET", "/ok").json() == {"ok": True}
        assert t.json("POST", "empty", json={"a": 1}) is None  # a 2xx with an empty body
    first, second = echo.requests
    assert first.header("User-Agent") == HttpSettings().user_agent and first.header("X-Extra") == "1"
    assert (second.path, second.json) == ("/empty", {"a": 1})


def test_errors_carry_status_and_a_short_reason_never_the_body(echo):
    t = transport(echo)
    echo.fail_next(1, status=500, body={"detail": "stack trace with the database password"})
    with pytest.raises(TransientDeliveryError) as info:
        t.request("GET", "/ok", what="read")
    assert str(info.value) == "Svc read answered 500 Internal Server Error" and info.value.status == 500
    assert not info.value.ambiguous

    with pytest.raises(PermanentDeliveryError) as info:
        t.request("GET", "/coded", hint="check event_type")
    assert str(info.value) == "Svc answered 400 invalid_event_type: check event_type"  # a known error code

    with pytest.raises(PermanentDeliveryError) as info:  # 401/403: permanent, secrets redacted
        t.request("GET", "/leaky")
    assert info.value.status == 401 and SECRET not in str(info.value) and "***" in str(info.value)

    echo.fail_next(1, status=403)
    with pytest.raises(PermanentDeliveryError, match="answered 403 Forbidden"):
        t.request("GET", "/ok")
    echo.fail_next(1, status=302)  # redirects are not followed
    with pytest.raises(PermanentDeliveryError, match="answered 302 Found"):
        t.request("GET", "/ok")
    t.close()


def test_retry_after_and_gateway_answers(echo):
    t = transport(echo)
    echo.fail_next(1, status=429, retry_after=17)
    with pytest.raises(TransientDeliveryError) as info:
        t.request("GET", "/ok")
    assert (info.value.status, info.value.retry_after, info.value.ambiguous) == (429, 17, False)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    echo.fail_next(1, status=503, retry_after=when)
    with pytest.raises(TransientDeliveryError) as info:
        t.request("GET", "/ok")
    assert 100 < info.value.retry_after <= 120
    for status in (502, 504):  # a gateway answered: the upstream may have carried the request out
        echo.fail_next(1, status=status)
        with pytest.raises(TransientDeliveryError) as info:
            t.request("GET", "/ok")
        assert ambiguous(info.value)
    echo.fail_next(1, status=409)
    assert t.request("GET", "/ok", accept=(409,)).status_code == 409  # handled by the adapter
    t.close()


def test_timeouts_after_sending_are_ambiguous_refused_connections_are_not(echo):
    t = transport(echo, timeout_s=0.2)
    echo.delay_next(1, seconds=0.6)
    with pytest.raises(TransientDeliveryError, match="timed out") as info:
        t.request("GET", "/ok")
    assert ambiguous(info.value)
    t.close()

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = Transport("Svc", HttpSettings(), base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(TransientDeliveryError, match="connection failed") as info:
        refused.request("GET", "/ok")
    assert not ambiguous(info.value)
    refused.close()


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("7", cap=5) == 5
    assert (
        parse_retry_after("-1") is None
        and parse_retry_after("soon") is None
        and parse_retry_after(None) is None
    )
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00") is None  # no zone: unparseable
