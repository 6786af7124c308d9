"""A local webhook receiver: accepts POSTs on any path, records them, optionally checks the signature.

    with FakeWebhookReceiver(secret="whsec") as hook:
        hook.url            # the webhook channel's "url" (path /hook)
        hook.deliveries     # parsed JSON bodies that were accepted
        hook.requests, hook.fail_next(...), ...

With ``secret`` set, a request whose ``X-TrapAlert-Signature`` does not verify gets 401.
Source: there is no third-party service here: the receiver stands for a park's own server, and the shape is
TrapAlert's webhook contract as documented for integrators in docs/integrations.md ("webhook": JSON body,
``X-TrapAlert-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + raw body>``; 2xx accepted, 408, 425,
429 and 5xx retried, any other answer permanent), which functions/notify/webhook.py implements.

Run alone: ``python -m tests.fakes.webhook --port 8004``.
"""

from __future__ import annotations

import uuid
from typing import Any

from ._server import FakeServer, RecordedRequest, Reply, serve_main


class FakeWebhookReceiver(FakeServer):
    name = "fake-webhook"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, secret: str | None = None):
        super().__init__(host, port)
        self.secret = secret
        self.deliveries: list[Any] = []
        self.route("POST", r"/.*", self._receive)

    @property
    def url(self) -> str:
        return self.root_url + "/hook"

    def _receive(self, req: RecordedRequest) -> Reply:
        if self.secret is not None:
            from functions.notify.webhook import verify_signature

            if not verify_signature(self.secret, req.headers, req.body):
                return Reply(401, {"error": "bad signature"})
        self.deliveries.append(req.json)
        return Reply(200, {"id": f"hook-{uuid.uuid4().hex[:12]}"})


if __name__ == "__main__":
    serve_main(FakeWebhookReceiver)
