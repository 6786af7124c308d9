"""The bad-input corpus (tests/corpus/cases.py): every case in-process against the real handler (real
PostgreSQL and Azurite), a representative subset over HTTP through the local Functions host, and every
invalid queue message through the queue middleware of process-image and send-alert."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter

import pytest
from azure.functions.queue import QueueMessage

from functions import names
from functions.inbound.sendgrid_payload import ImageFile
from tests.inbound.conftest import email_rows, image_rows, payload, queue_messages
from tests.support.host import FUNCTION_KEY, MASTER_KEY

from .cases import GOOD, QueueCase, WebhookCase, queue_cases, webhook_cases
from .signing import SIGNER

CASES = webhook_cases()
QUEUE_CASES = queue_cases()


def _code(reason: str | None) -> str | None:
    return reason.split(":", 1)[0] if reason else None


def _env(case: WebhookCase) -> dict[str, str]:
    env = dict(case.env)
    if case.signed:
        env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = SIGNER.public_key_base64
    return env


def check_outcome(case: WebhookCase, status: int, body: dict, db, storage) -> None:
    assert status == case.http, (status, body)
    emails, images, msgs = email_rows(db), image_rows(db), queue_messages(storage)
    if case.status is None:  # refused before anything is recorded
        assert emails == [] and images == [] and msgs == []
        return
    assert body["status"] == case.status, body
    [email] = emails
    assert email["status"] == case.status, email
    assert _code(email["reason"]) == case.reason, email["reason"]
    if case.images is not None:
        got = [(i["status"], _code(i["reason"])) for i in images]
        want = [(s, r) for s, r in case.images]
        assert len(got) == len(want), got
        for (gs, gr), (ws, wr) in zip(got, want, strict=True):
            if ws != "*":
                assert (gs, gr) == (ws, wr), got
    stored = [i for i in images if i["status"] == "stored"]
    if case.stored >= 0:
        assert len(stored) == case.stored, [(i["status"], i["reason"]) for i in images]
    if case.queued >= 0:
        assert len(msgs) == case.queued
    # every stored photo is in Blob Storage byte for byte and has exactly one process-image message
    assert Counter(m["image_id"] for m in msgs) == Counter(i["id"] for i in stored)
    for img in stored:
        data = storage.get_blob(names.IMAGES_CONTAINER, img["blob_name"])
        assert hashlib.sha256(data).hexdigest() == img["sha256"]
    # the valid photos mixed into the email are not lost
    for good in case.good:
        assert hashlib.sha256(good).hexdigest() in {i["sha256"] for i in stored}, "a valid photo was lost"
    # kept for review or release: the raw POST, unless it was too large to keep
    if case.reason == "too_large":
        assert email["raw_blob"] is None
    else:
        assert email["raw_blob"]
        assert len(storage.get_blob(names.RAW_EMAILS_CONTAINER, email["raw_blob"])) == email["size_bytes"]
    if case.check is not None:
        assert case.check(email, images, db, storage)


def test_the_corpus_has_at_least_100_distinct_cases():
    ids = [c.id for c in CASES] + [q.id for q in QUEUE_CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 100
    categories = Counter(c.category for c in CASES)
    assert len(categories) >= 12 and min(categories.values()) >= 5, categories


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_webhook_case_in_process(case: WebhookCase, corpus_registry, call_handler, db, storage):
    request = case.build()
    resp = call_handler(request, _env(case))
    body = json.loads(resp.get_body())
    check_outcome(case, resp.status_code, body, db, storage)
    if case.status is not None:
        # SendGrid's redelivery of the same POST records and enqueues nothing new
        again = call_handler(request, _env(case))
        assert again.status_code == case.http and json.loads(again.get_body())["status"] == "duplicate"
        assert (
            len(email_rows(db)) == 1
            and len(queue_messages(storage)) == max(case.queued, 0)
            or case.queued < 0
        )


# ------------------------------------------------------------------------------------------ over HTTP
OVER_HTTP = [
    "truncated-at-60pct",
    "boundary-case-differs",
    "content-type-missing",
    "duplicate-attachment1-parts",
    "charset-base64",
    "charset-idna",
    "sixty-attachments",
    "jpeg-first-150-bytes-with-good",
    "jpeg-sof-65500x65500",
    "exif-offset-out-of-range",
    "exif-year-9999",
    "email-date-year-9999",
    "filename-dotdot-etc-passwd",
    "filename-nul-then-ext",
    "script-subject",
    "raw-nested-six-deep",
    "raw-base64-truncated-and-good",
    "raw-rfc822-attachment-with-photo",
    "raw-nul-in-from-header",
    "nul-bytes-only",
    "raw-2500-nesting-levels",
    "subject-72kb-quadratic-for-spypoint",
]
HTTP_CASES = [c for c in CASES if c.id in OVER_HTTP]


def test_the_http_subset_is_representative():
    assert len(HTTP_CASES) == len(OVER_HTTP) >= 15
    assert len({c.category for c in HTTP_CASES}) >= 8


def test_http_subset_then_the_host_still_serves(webhook_host, corpus_registry, app_settings, db, storage):
    """Each case over real HTTP (one host for all), then: the host answers its status and a valid email
    afterwards is processed."""
    import httpx

    for case in HTTP_CASES:
        db.execute("TRUNCATE inbound_emails, images, outbox RESTART IDENTITY CASCADE")
        storage.queue(names.PROCESS_IMAGE_QUEUE).clear_messages()
        request = case.build()
        headers = dict(request.headers, **{"x-functions-key": FUNCTION_KEY})
        r = httpx.post(
            webhook_host.api(names.INBOUND_ROUTE), content=request.body, headers=headers, timeout=30
        )
        try:
            check_outcome(case, r.status_code, r.json(), db, storage)
        except AssertionError as exc:
            raise AssertionError(f"case {case.id}: {exc}") from exc
        assert httpx.get(f"{webhook_host.url}/admin/host/status", timeout=5).status_code == 200
    assert webhook_host.proc.poll() is None, "the host died"
    storage.queue(names.PROCESS_IMAGE_QUEUE).clear_messages()
    p = payload([ImageFile("after.jpg", GOOD)], message_id="<after-the-corpus@x>")
    r = httpx.post(
        webhook_host.api(names.INBOUND_ROUTE),
        content=p.body,
        headers=p.headers(function_key=FUNCTION_KEY),
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["queued"] == 1, r.text
    [img] = [i for i in image_rows(db) if i["email_id"] == r.json()["email_id"]]
    assert img["status"] == "stored" and [m["image_id"] for m in queue_messages(storage)] == [img["id"]]


@pytest.mark.parametrize(
    "where,key,expected",
    [
        ("header", None, 401),
        ("header", "wrong-key", 401),
        ("header", "", 401),
        ("query", "wrong-key", 401),
        ("header", FUNCTION_KEY.upper(), 401),
        ("header", FUNCTION_KEY[:-1], 401),
        ("query", FUNCTION_KEY, 200),
        ("header", MASTER_KEY, 200),
    ],
    ids=[
        "no-key",
        "wrong-key",
        "empty-key",
        "wrong-code-param",
        "key-wrong-case",
        "key-truncated",
        "right-code-param",
        "master-key",
    ],
)
def test_function_keys_over_http(webhook_host, corpus_registry, db, storage, where, key, expected):
    import httpx

    p = payload([ImageFile("k.jpg", GOOD)], message_id=f"<key-{uuid.uuid4()}@x>")
    headers = p.headers()
    params = {}
    if key is not None:
        if where == "header":
            headers["x-functions-key"] = key
        else:
            params["code"] = key
    r = httpx.post(
        webhook_host.api(names.INBOUND_ROUTE), content=p.body, headers=headers, params=params, timeout=30
    )
    assert r.status_code == expected, r.text
    if expected == 401:
        assert email_rows(db) == [] and queue_messages(storage) == []
    else:
        assert r.json()["status"] == "accepted" and len(queue_messages(storage)) == 1


# ------------------------------------------------------------------------------------------ queues
@pytest.fixture
def run_queue(app_settings, corpus_registry):
    from functions.handlers import process_image, send_alert
    from functions.messages import ProcessImage, SendAlert
    from functions.middleware import run_queue_handler

    handlers = {
        "process-image": (ProcessImage, process_image.handle),
        "send-alert": (SendAlert, send_alert.handle),
    }

    def run(queue: str, body: bytes, message_id: str) -> None:
        model, handler = handlers[queue]
        msg = QueueMessage(id=message_id, body=body, dequeue_count=1, pop_receipt="x")
        run_queue_handler(queue, msg, model, handler)

    return run


def test_queue_corpus_size():
    assert len(QUEUE_CASES) >= 30
    assert {q.queue for q in QUEUE_CASES} == {"process-image", "send-alert"}


@pytest.mark.parametrize("case", QUEUE_CASES, ids=[q.id for q in QUEUE_CASES])
def test_queue_case(case: QueueCase, run_queue, db):
    mid = f"corpus-{case.id}"
    if case.outcome == "invalid":
        run_queue(case.queue, case.body, mid)  # never raises: recorded, not retried
        [rec] = db.fetchall("SELECT * FROM poison_records WHERE message_id = %s", (mid,))
        assert rec["queue"] == case.queue and rec["status"] == "invalid"
        assert rec["last_error"].startswith("invalid message: ") and case.detail in rec["last_error"], rec[
            "last_error"
        ]
        assert rec["body"] == case.body.decode("utf-8", "replace").replace("\x00", "")
        run_queue(case.queue, case.body, mid)  # a redelivery records nothing twice
        assert db.fetchone("SELECT count(*) AS n FROM poison_records")["n"] == 1
        assert db.fetchone("SELECT count(*) AS n FROM message_failures")["n"] == 0
    else:
        # a valid message naming something that is not there (yet): recorded, and tried again later by the
        # retry middleware (it may be a row not committed yet), until the horizon poisons it
        run_queue(case.queue, case.body, mid)
        [failure] = db.fetchall("SELECT * FROM message_failures WHERE message_id = %s", (mid,))
        assert failure["queue"] == case.queue and case.detail in failure["error"]
        key = f"retry:{case.queue}:{mid}"
        [retry] = db.fetchall("SELECT body, delay_s FROM outbox WHERE key = %s", (key,))
        assert retry["body"]["attempt"] == 1 and retry["delay_s"] >= 5
        assert db.fetchone("SELECT count(*) AS n FROM poison_records")["n"] == 0
