"""A local SendGrid v3 Mail Send stand-in, recorded.

    with FakeSendGrid(api_key="SG.test") as sg:
        sg.url          # host for SendGridAPIClient(api_key, host=sg.url) / the email channel's "host"
        sg.messages     # the accepted mail/send JSON bodies, in order
        sg.requests, sg.fail_next(...), ...   (see _server.FakeServer)

``POST /v3/mail/send``: ``Authorization: Bearer <api_key>`` (any key when ``api_key`` is None); the body
must have ``personalizations`` (with ``to``), ``from`` and ``content`` or a template; attachments need
``content`` (base64) and ``filename``. 202 with an empty body and ``X-Message-Id``, as SendGrid answers.

Source of the shape: SendGrid's v3 Mail Send API reference (``POST /v3/mail/send``: bearer API key, the
``personalizations``/``from``/``content``/``attachments`` body, ``202 Accepted`` with no body and an
``X-Message-Id`` header; 4xx answers carry ``{"errors": [{"message", "field"}]}``), as the official
``sendgrid`` Python client (``SendGridAPIClient(...).send(Mail)``, the helper classes in
``sendgrid.helpers.mail``) sends it.

Run alone: ``python -m tests.fakes.sendgrid --port 8003``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from ._server import FakeServer, RecordedRequest, Reply, serve_main


def _errors(*messages: str) -> dict[str, Any]:
    return {"errors": [{"message": m, "field": None, "help": None} for m in messages]}


class FakeSendGrid(FakeServer):
    name = "fake-sendgrid"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = "SG.test-key"):
        super().__init__(host, port)
        self.api_key = api_key
        self.messages: list[dict[str, Any]] = []
        self.route("POST", r"/v3/mail/send", self._send)

    def _send(self, req: RecordedRequest) -> Reply:
        auth = req.header("Authorization") or ""
        if not auth.startswith("Bearer ") or (self.api_key is not None and auth[7:] != self.api_key):
            return Reply(401, _errors("The provided authorization grant is invalid, expired, or revoked"))
        body = req.json
        if not isinstance(body, dict):
            return Reply(400, _errors("Bad Request"))
        problems = []
        pers = body.get("personalizations")
        if not isinstance(pers, list) or not pers or not all(p.get("to") for p in pers):
            problems.append("The personalizations field is required and must have at least one to.")
        if not (body.get("from") or {}).get("email"):
            problems.append("The from object must be provided for every email send.")
        if not body.get("content") and not body.get("template_id"):
            problems.append("Unless a valid template_id is provided, the content parameter is required.")
        for a in body.get("attachments", []):
            try:
                base64.b64decode(a.get("content", ""), validate=True)
            except (binascii.Error, ValueError):
                problems.append(f"attachment {a.get('filename')}: content must be base64")
            if not a.get("filename"):
                problems.append("attachments must have a filename")
        if problems:
            return Reply(400, _errors(*problems))
        self.messages.append(body)
        return Reply(202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})


if __name__ == "__main__":
    serve_main(FakeSendGrid)
