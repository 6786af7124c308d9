"""Local stand-ins for the services TrapAlert talks to, for tests and the local demo.

Each is a real HTTP (or SMTP) server on 127.0.0.1 and a free port, run in a background thread; it records
every request (method, path, headers, parsed JSON / form / multipart fields and files) and can be told to
fail (status, Retry-After, delay) for N requests or until told to recover. See ``_server.FakeServer``.

    from tests.fakes import FakeEarthRanger, FakeCmore, FakeSendGrid, FakeWebhookReceiver, FakeSmtp
"""

from ._server import FakeServer, RecordedFile, RecordedRequest, Reply, parse_multipart
from .cmore import FakeCmore
from .earthranger import FakeEarthRanger
from .sendgrid import FakeSendGrid
from .smtp import FakeSmtp, SmtpMessage
from .webhook import FakeWebhookReceiver

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
