"""The process-email webhook: SendGrid Inbound Parse POSTs each email here (route inbound/sendgrid).

Answers, as SendGrid needs them (it retries any non-2xx for three days, then drops the email silently):
- 401: the webhook is configured as signed (SENDGRID_WEBHOOK_PUBLIC_KEY) or OAuth-protected
  (SENDGRID_WEBHOOK_OAUTH_ISSUER) and the signature headers or the bearer token are missing (a wrong or
  missing function key is answered 401 by the Functions host before this runs);
- 403: the signature or the token does not verify or its timestamp is too old; nothing is stored;
- 200: the email was recorded: accepted (photos stored, process-image messages on the queue), quarantined,
  rejected with its reason (permanently bad: retrying would not help), or a duplicate delivery;
- 503: the database or storage is unreachable; SendGrid's retry will succeed once it is back;
- 500: a bug; the middleware chain (functions/middleware/) logs it with the correlation id and answers
  ``{"error": "internal error", "correlation_id": ...}``, and SendGrid retries (a fix deployed within three
  days recovers the email).

The correlation id is the chain's (one per request); called outside the chain (tests), a new one.

Why this function enqueues itself (through the transactional outbox) instead of a queue output binding:
an output binding is written by the host *after* the function returns, so the function cannot know whether
the messages were written. On SendGrid's retry of an email whose rows were stored but whose messages were
lost, it could then only re-send every message (duplicates for every plain duplicate delivery) or none (a
lost photo). Writing each message to the outbox with its image rows and flushing the email's scope before
answering (functions/adapters/outbox.py, scope ``email:<id>``) gives both guarantees: 200 only after every
message is durably on the queue, and a retry sends exactly the missing ones. The messages are the same small
base64 JSON documents (``ProcessImage``) an output binding would write.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter

import azure.functions as func
from azure.core.exceptions import AzureError

from ..adapters.storage import StorageUnavailable
from ..db import DatabaseUnavailable
from ..inbound import signature
from ..inbound.ingest import Outcome, receive
from ..ops import metrics
from ..telemetry import correlation_id

log = logging.getLogger(__name__)


def _json(status: int, data: dict) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(data, default=str), status_code=status, mimetype="application/json")


def handle(req: func.HttpRequest, svc) -> func.HttpResponse:
    """Authenticate, then record the email (functions/inbound/ingest.py); map the result to a status."""
    cid = correlation_id.get() or str(uuid.uuid4())
    body = req.get_body() or b""
    settings = svc.settings
    if signature.required(settings):
        try:
            signature.authenticate(req.headers, body, settings)
        except signature.SignatureMissing as exc:
            log.warning("inbound POST without signature: %s", exc)
            return _json(401, {"error": "signature required", "detail": str(exc)})
        except signature.SignatureInvalid as exc:
            log.warning("inbound POST with a bad signature: %s", exc)
            return _json(403, {"error": "invalid signature", "detail": str(exc)})
    try:
        outcome = receive(body, req.headers, svc, correlation_id=cid)
    except (DatabaseUnavailable, StorageUnavailable, AzureError) as exc:
        log.error("inbound email not recorded, transient failure (SendGrid will retry): %s", exc)
        return _json(503, {"error": "temporarily unavailable", "retry": True, "correlation_id": cid})
    count_received(outcome)
    return _json(200, outcome.as_dict())


def count_received(outcome: Outcome) -> None:
    """trapalert.images.received, by park: the images this email stored (blob ``<park>/<camera>/...``)."""
    if not outcome.images_stored:
        return
    parks = Counter(
        (i.get("blob_name") or "").split("/", 1)[0] or None
        for i in outcome.images
        if i.get("status") == "stored"
    )
    if not parks:
        parks = Counter({None: outcome.images_stored})
    for park, count in parks.items():
        metrics.image_received(park=park, count=count)
