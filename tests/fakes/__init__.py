"""Local stand-ins for the services TrapAlert talks to, for tests and the local demo.

Each is a real HTTP (or SMTP) server on 127.0.0.1 and a free port, run in a background thread; it records
every request (method, path, headers, parsed JSON / form / multipart fields and files) and can be told to
fail (status, Retry-After, delay) for N requests or until told to recover. See ``_server.FakeServer``.

    from tests.fakes import FakeEarthRanger, FakeCmore, FakeSendGrid, FakeWebhookReceiver, FakeSmtp

Default credentials: EarthRanger token ``er-test-token``; CMORE user ``ranger`` / ``cmore-pw``; SendGrid
key ``SG.test-key`` (pass ``token=None`` / ``api_key=None`` to accept any). Standalone:
``python -m tests.fakes.earthranger --port 8001`` (also ``cmore``, ``sendgrid``, ``webhook``, ``smtp``).
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "FakeServer": "._server",
    "RecordedFile": "._server",
    "RecordedRequest": "._server",
    "Reply": "._server",
    "parse_multipart": "._server",
    "FakeCmore": ".cmore",
    "FakeEarthRanger": ".earthranger",
    "FakeSendGrid": ".sendgrid",
    "FakeSmtp": ".smtp",
    "SmtpMessage": ".smtp",
    "FakeWebhookReceiver": ".webhook",
}


def __getattr__(name: str) -> Any:
    # lazy, so that ``python -m tests.fakes.<name>`` does not import its own module twice
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(name)


__all__ = [
    "FakeCmore",
    "FakeEarthRanger",
    "FakeSendGrid",
    "FakeServer",
    "FakeSmtp",
    "FakeWebhookReceiver",
    "RecordedFile",
    "RecordedRequest",
    "Reply",
    "SmtpMessage",
    "parse_multipart",
]
