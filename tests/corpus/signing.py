"""One SendGrid signing key for the corpus, and signed (or wrongly signed) POSTs."""

from __future__ import annotations

import time

from functions.inbound.sendgrid_payload import ImageFile
from functions.inbound.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSigner

SIGNER = WebhookSigner()


def signed(
    *,
    sign: bool = True,
    signer: WebhookSigner | None = None,
    drop: str | None = None,
    age_s: int = 0,
    timestamp_value: str | None = None,
    signature_value: str | None = None,
    tamper: bool = False,
    timestamp_shift: int = 0,
):
    from tests.corpus.cases import GOOD, req, sendgrid

    r = sendgrid([ImageFile("good.jpg", GOOD)])
    headers = dict(r.headers)
    if sign:
        ts = int(time.time()) - age_s
        headers.update((signer or SIGNER).headers(r.body, ts))
        if timestamp_shift:
            headers[TIMESTAMP_HEADER] = str(ts + timestamp_shift)
        if timestamp_value is not None:
            headers[TIMESTAMP_HEADER] = timestamp_value
        if signature_value is not None:
            headers[SIGNATURE_HEADER] = signature_value
        if drop == "signature":
            headers.pop(SIGNATURE_HEADER)
        elif drop == "timestamp":
            headers.pop(TIMESTAMP_HEADER)
    body = r.body.replace(b"CAM01 motion", b"CAM01 motioN") if tamper else r.body
    return req(body, headers.pop("Content-Type"), **headers)
