"""Fixtures of the corpus: the inbound tests' registry (plus a camera with markup in its name), an in-process
caller of the process-email handler, and the inbound tests' webhook host."""

from __future__ import annotations

import pytest

from functions import names
from functions.adapters.parks import CameraIn, ParkRepository
from tests.inbound.conftest import jpeg, registry, webhook_host  # noqa: F401 - fixtures reused here

from .cases import SCRIPT_CAMERA, SCRIPT_CAMERA_SENDER


@pytest.fixture(scope="module")
def corpus_world(db, storage):
    """The inbound tests' registry plus a camera with markup in its name, set up once for the module
    (the corpus has some 200 cases: a registry per case would cost a minute)."""
    from tests.conftest import _all_tables

    db.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in _all_tables(db)) + " RESTART IDENTITY CASCADE")
    cams = dict(registry._get_wrapped_function()(db, storage))
    cams[SCRIPT_CAMERA] = ParkRepository(db).add_camera(
        "park-x", CameraIn(name=SCRIPT_CAMERA, sender_addresses=[SCRIPT_CAMERA_SENDER])
    )
    return cams


@pytest.fixture
def corpus_registry(corpus_world, db, storage):
    """No emails, images, outbox rows, alerts, poison records or failures, and empty work queues."""
    db.execute(
        "TRUNCATE inbound_emails, images, outbox, poison_records, message_failures RESTART IDENTITY CASCADE"
    )
    for q in (names.PROCESS_IMAGE_QUEUE, names.SEND_ALERT_QUEUE):
        storage.queue(q).clear_messages()
    return corpus_world


@pytest.fixture
def call_handler(app_settings, monkeypatch):
    import azure.functions as func

    from functions.bootstrap import reset_services, services
    from functions.handlers.process_email import handle

    applied: dict[str, str] = {}

    def call(request, env: dict[str, str]) -> func.HttpResponse:
        if env != applied:
            for k in set(applied) - set(env):
                monkeypatch.delenv(k, raising=False)
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            applied.clear()
            applied.update(env)
            reset_services()
        req = func.HttpRequest(
            "POST", "http://127.0.0.1/api/inbound/sendgrid", headers=request.headers, body=request.body
        )
        return handle(req, services())

    return call
