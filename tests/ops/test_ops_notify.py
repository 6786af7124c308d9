"""Ops notifications in process: rate limit across calls (state in PostgreSQL), digest of the suppressed
ones after the interval, a failed send is retried by the next one, the targeted park only."""

from __future__ import annotations

import json
import time
import uuid

from azure.functions.queue import QueueMessage

from functions.handlers import poison
from functions.ops.notify import flush_digest
from tests.ops.conftest import OPS_SECRET, OPS_SECRET_SETTING


def _poisoned(svc, n: int, park_id: int | None = None, queue: str = "send-alert-poison") -> list[int]:
    ids = []
    for i in range(n):
        body = json.dumps(
            {
                "schema_version": 1,
                "correlation_id": str(uuid.uuid4()),
                "alert_id": 10 + i,
                **({"park_id": park_id} if park_id else {}),
            }
        )
        ids.append(
            poison.record(queue, QueueMessage(id=str(uuid.uuid4()), body=body.encode(), dequeue_count=1), svc)
        )
    return ids


def test_rate_limit_digest_and_retry(app_settings, clean_db, ops_channel, ops_hook, monkeypatch):
    monkeypatch.setenv("OPS_NOTIFY_INTERVAL_S", "1")
    monkeypatch.setenv(OPS_SECRET_SETTING, OPS_SECRET)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://trapalert-x.azurewebsites.net/")
    from functions.bootstrap import services

    svc = services()
    ids = _poisoned(svc, 3)
    assert all(ids) and len(ops_hook.deliveries) == 1
    # the notice links to the console's ops page (admin sign-in), never to a key-protected address
    console_ops = "https://trapalert-x.azurewebsites.net/api/console/ops"
    assert ops_hook.deliveries[0]["notice"]["ops_url"] == console_ops
    assert flush_digest(svc) == {"sent": 0, "failed": 0}  # interval not over yet
    time.sleep(1.1)
    assert flush_digest(svc)["sent"] == 1
    assert "2 more messages poisoned" in ops_hook.deliveries[1]["notice"]["title"]
    assert ops_hook.deliveries[1]["notice"]["ops_url"] == console_ops
    assert flush_digest(svc)["sent"] == 0  # nothing left to summarize

    # The ops channel is down: the notification is counted back, the next one (after the interval) tells it.
    time.sleep(1.1)
    ops_hook.fail_until_recovered(503)
    _poisoned(svc, 1)
    state = clean_db.fetchone("SELECT * FROM ops_notify_state")
    assert state["suppressed"] == 1 and "503" in state["last_error"]
    ops_hook.recover()
    _poisoned(svc, 1)
    assert len(ops_hook.deliveries) == 3
    assert "2 messages poisoned" in ops_hook.deliveries[2]["notice"]["title"]

    # A message recorded twice (the monitor ran again) is recorded and told once.
    body = json.dumps({"schema_version": 1, "correlation_id": str(uuid.uuid4()), "alert_id": 1})
    msg = QueueMessage(id="same-id", body=body.encode(), dequeue_count=1)
    first = poison.record("send-alert-poison", msg, svc)
    assert first is not None and poison.record("send-alert-poison", msg, svc) is None


def test_only_the_park_of_the_message_is_told(
    app_settings, clean_db, ops_channel, ops_hook, park, monkeypatch
):
    monkeypatch.setenv(OPS_SECRET_SETTING, OPS_SECRET)
    from functions.bootstrap import services

    other = clean_db.fetchone("INSERT INTO parks (slug, name) VALUES ('park-y', 'Y') RETURNING id")["id"]
    _poisoned(services(), 2, park_id=other)
    assert ops_hook.deliveries == []  # park-x's ops channel is not told about park-y
    _poisoned(services(), 1, park_id=park["id"])
    assert len(ops_hook.deliveries) == 1
    assert ops_hook.deliveries[0]["notice"]["park"]["slug"] == "park-x"
