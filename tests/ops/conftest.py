"""Fixtures of the ops tests: a park with an ops channel (a fake webhook receiver), a host running the real
function_app.py plus a drill queue (tests/ops/drill_app), helpers to read the database, and a console
session over HTTP (people reach the ops page through the park console, never with the master key)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.fakes.webhook import FakeWebhookReceiver

DRILL_APP = Path(__file__).parent / "drill_app"
DRILL_QUEUE = "ops-drill"
OPS_SECRET_SETTING = "CHANNEL_SECRET_OPS_HOOK_SECRET_TEST"
OPS_SECRET = "ops-hook-secret-value"
FAST_QUEUES = {"visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.200", "maxDequeueCount": 5}


@pytest.fixture
def drill_queues(storage):
    for q in (DRILL_QUEUE, f"{DRILL_QUEUE}-poison"):
        client = storage.queue(q)
        try:
            client.create_queue()
        except Exception:  # noqa: BLE001 - exists
            pass
        client.clear_messages()
    return storage


@pytest.fixture
def ops_hook():
    with FakeWebhookReceiver(secret=OPS_SECRET) as hook:
        yield hook


@pytest.fixture
def drill_hook():
    with FakeWebhookReceiver() as hook:
        yield hook


@pytest.fixture
def park(clean_db):
    park = clean_db.fetchone("INSERT INTO parks (slug, name) VALUES ('park-x', 'Park X') RETURNING *")
    return park


@pytest.fixture
def ops_channel(clean_db, park, ops_hook):
    return clean_db.fetchone(
        "INSERT INTO channels (park_id, name, kind, purpose, config) "
        "VALUES (%s, 'ops hook', 'webhook', 'ops', %s) "
        "RETURNING *",
        (
            park["id"],
            json.dumps(
                {
                    "url": ops_hook.url,
                    "secret_setting": OPS_SECRET_SETTING,
                    "allow_http": True,
                    "allow_private_network": True,
                }
            ),
        ),
    )


@pytest.fixture
def drill_host(host_factory, clean_queues, drill_queues, drill_hook, ops_channel):
    """The real app + drill queue on a host with fast queues; the drill receiver starts broken (500)."""
    drill_hook.fail_until_recovered(500)
    host = host_factory(
        script_root=DRILL_APP,
        host_json=FAST_QUEUES,
        DRILL_HOOK_URL=drill_hook.url,
        # a failed message is tried again after ~1 s and poisoned once the next try would pass 6 s
        RETRY_SCHEDULE_S="1",
        RETRY_HORIZON_PROCESS_IMAGE_S="6",
        RETRY_HORIZON_SEND_ALERT_S="6",
        **{OPS_SECRET_SETTING: OPS_SECRET},
    )
    return host


def poison_rows(db, queue: str = DRILL_QUEUE) -> list[dict]:
    return db.fetchall("SELECT * FROM poison_records WHERE queue = %s ORDER BY id", (queue,))


def console_session(host, db, role: str, user: str | None = None) -> httpx.Client:
    """An HTTP client signed in to ``host``'s park console through a fresh one-time link (as a browser does:
    the sign-in page sets the CSRF cookie, the token is POSTed with it and the console's Origin). Changes
    sent with :func:`console_post` carry the CSRF token."""
    from functions.adapters.console_repo import ConsoleRepository
    from functions.console.auth import CSRF_COOKIE, SESSION_COOKIE, new_token

    token = new_token()
    ConsoleRepository(db).add_link(token, user or f"{role}-user", role, 300, created_by="test")
    client = httpx.Client(base_url=f"{host.url}/api/console/", timeout=10)
    assert client.get("login").status_code == 200 and client.cookies.get(CSRF_COOKIE)
    signed = console_post(client, host, "login", {"token": token})
    assert signed.status_code == 200, signed.text
    assert signed.json()["role"] == role and client.cookies.get(SESSION_COOKIE)
    return client


def console_post(client: httpx.Client, host, path: str, body: dict | None = None) -> httpx.Response:
    from functions.console.auth import CSRF_COOKIE

    headers = {"origin": host.url, "x-csrf-token": client.cookies.get(CSRF_COOKIE) or ""}
    return client.post(path, json=body or {}, headers=headers)
