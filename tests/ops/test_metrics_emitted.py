"""Every metric docs/operations.md names is emitted by the real code paths, in process, through the real
function_app.py functions (so through the middleware chain): an email with a photo is received, scored (the
scoring service answered by an httpx mock transport), alerted and delivered to a webhook channel; a send-alert
message for an unknown alert fails; a poisoned message is recorded and ops are told; the camera-health timer
raises a silent camera. Real PostgreSQL and Azurite; an SDK MeterProvider with an in-memory reader."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import uuid

import azure.functions as func
import httpx
import pytest
from azure.functions.queue import QueueMessage
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from functions import names
from functions.adapters.parks import CameraIn, ParkIn, ParkRepository
from functions.adapters.scoring_client import ScoringClient
from functions.inbound.sendgrid_payload import ImageFile, build_payload
from functions.localhost.services import PROJECT_ROOT
from functions.messages import SendAlert
from functions.ops import metrics
from tests.ops.conftest import OPS_SECRET, OPS_SECRET_SETTING
from tests.support.metrics import points as _points

DOC = PROJECT_ROOT / "docs" / "operations.md"
NOT_METRICS = {"trapalert.correlation_id"}  # a span and log attribute the guide names for its queries
PARK_ADDRESS = "park-m@alerts.example.org"
CAMERA_SENDER = "cam-m1@traps.example.org"


def documented_metrics() -> set[str]:
    return {m.rstrip(".") for m in re.findall(r"trapalert\.[a-z_.]+", DOC.read_text())} - NOT_METRICS


def _app_functions() -> dict:
    """The chain-built functions of the real function_app.py, by function name."""
    spec = importlib.util.spec_from_file_location(
        "function_app_metrics_check", PROJECT_ROOT / "function_app.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return {f.get_function_name(): f.get_user_function() for f in module.app.get_functions()}


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 120, 60)).save(buf, "JPEG")
    return buf.getvalue()


def _detector(request: httpx.Request) -> httpx.Response:
    """The scoring service: a person in every photo (MegaDetector output format)."""
    return httpx.Response(
        200,
        json={
            "info": {"detector": "md_v5a-test", "format_version": "1.4", "timing_ms": {"total": 12.0}},
            "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
            "images": [
                {
                    "file": "photo.jpg",
                    "detections": [{"category": "2", "conf": 0.97, "bbox": [0.3, 0.3, 0.3, 0.5]}],
                }
            ],
        },
    )


def _take(storage, queue: str) -> list[QueueMessage]:
    """Receive (and delete) every message of ``queue``, as the host would hand them to its function."""
    client = storage.queue(queue)
    out = []
    for m in client.receive_messages(max_messages=32):
        out.append(QueueMessage(id=m.id, body=m.content.encode(), dequeue_count=m.dequeue_count))
        client.delete_message(m)
    return out


@pytest.fixture
def reader():
    reader = InMemoryMetricReader()
    metrics.use_meter_provider(MeterProvider(metric_readers=[reader]))
    yield reader
    metrics.use_meter_provider(None)


@pytest.fixture
def world(app_settings, clean_db, clean_queues, ops_hook, monkeypatch):
    """A park with a registered camera, an alerts channel and an ops channel (both the fake webhook), a
    second camera that went silent, and the process's Services with the mocked scoring service."""
    monkeypatch.setenv(OPS_SECRET_SETTING, OPS_SECRET)
    from functions.bootstrap import services

    parks = ParkRepository(clean_db)
    park = parks.add_park(ParkIn(slug="park-m", name="Park M", timezone="UTC", inbound_address=PARK_ADDRESS))
    parks.add_camera("park-m", CameraIn(name="CAM-M1", sender_addresses=[CAMERA_SENDER]))
    park_id = park["id"] if isinstance(park, dict) else park.id
    clean_db.execute(
        "INSERT INTO cameras (park_id, name, expected_interval_s, last_seen_at) "
        "VALUES (%s, 'CAM-SILENT', 3600, now() - interval '2 hours')",
        (park_id,),
    )
    config = json.dumps(
        {
            "url": ops_hook.url,
            "secret_setting": OPS_SECRET_SETTING,
            "allow_http": True,
            "allow_private_network": True,
        }
    )
    for name, purpose in (("rangers hook", "alerts"), ("ops hook", "ops")):
        clean_db.execute(
            "INSERT INTO channels (park_id, name, kind, purpose, config) VALUES (%s, %s, 'webhook', %s, %s)",
            (park_id, name, purpose, config),
        )
    svc = services()
    svc.__dict__["scoring"] = ScoringClient("http://scoring.test", transport=httpx.MockTransport(_detector))
    return {"svc": svc, "park_id": park_id}


def test_every_metric_the_operations_guide_names_is_emitted(world, reader, ops_hook):
    svc, fns = world["svc"], _app_functions()

    # process-email: the photo is stored and a process-image message queued
    payload = build_payload(
        sender=CAMERA_SENDER,
        to=PARK_ADDRESS,
        subject="CAM-M1 photo",
        images=[ImageFile("photo.jpg", _jpeg())],
    )
    req = func.HttpRequest(
        "POST", "http://127.0.0.1/api/inbound/sendgrid", headers=payload.headers(), body=payload.body
    )
    resp = fns["process-email"](req)
    assert resp.status_code == 200 and json.loads(resp.get_body())["images_stored"] == 1, resp.get_body()

    # process-image: scored by the (mocked) detector; a person opens an alert
    [image_msg] = _take(svc.storage, names.PROCESS_IMAGE_QUEUE)
    fns["process-image"](image_msg)

    # send-alert: delivered to the rangers' webhook; an unknown alert fails (recorded, tried again later)
    [alert_msg] = _take(svc.storage, names.SEND_ALERT_QUEUE)
    fns["send-alert"](alert_msg)
    assert [d["event"] for d in ops_hook.deliveries] == ["alert.new"]
    unknown = SendAlert(alert_id=999_999).model_dump_json()
    fns["send-alert"](QueueMessage(id="m-unknown", body=unknown.encode(), dequeue_count=1))
    [again] = svc.db.fetchall("SELECT body, delay_s FROM outbox WHERE key = 'retry:send-alert:m-unknown'")
    assert again["body"]["alert_id"] == 999_999 and again["body"]["attempt"] == 1 and again["delay_s"] >= 5

    # the sweeper finds nothing left behind
    assert fns["sweeper"](None) is None

    # the poison monitor records it and tells ops
    poisoned = json.dumps(
        {"schema_version": 1, "correlation_id": str(uuid.uuid4()), "park_id": world["park_id"]}
    )
    fns["send-alert-poison"](QueueMessage(id="m-poisoned", body=poisoned.encode(), dequeue_count=1))
    assert len(ops_hook.deliveries) == 2

    # the camera-health timer raises the silent camera; the ops digest runs
    fns["camera-health"](None)
    fns["ops-digest"](None)

    points = _points(reader)
    emitted = {name for name, pts in points.items() if pts}
    documented = documented_metrics()
    assert documented == set(metrics.INSTRUMENTS), "docs/operations.md and functions/ops/metrics.py differ"
    assert documented <= emitted, f"named in docs/operations.md but never emitted: {documented - emitted}"

    def attrs(name: str) -> list[dict]:
        return [dict(p.attributes) for p in points[name]]

    assert attrs("trapalert.images.received") == [{"park": "park-m"}]
    assert attrs("trapalert.images.scored") == [{"model": "md_v5a-test", "status": "scored"}]
    assert {"channel_kind": "webhook", "status": "delivered"} in attrs("trapalert.deliveries")
    [latency] = points["trapalert.alert.latency"]
    assert latency.count == 1 and 0 <= latency.sum < 120
    assert attrs("trapalert.handler.failures") == [{"queue": names.SEND_ALERT_QUEUE}]
    assert attrs("trapalert.retries") == [{"queue": names.SEND_ALERT_QUEUE, "action": "retry"}]
    assert attrs("trapalert.poison.messages") == [{"queue": names.SEND_ALERT_QUEUE, "status": "poisoned"}]
    triggers = {a["trigger"] for a in attrs("trapalert.function.duration")}
    assert triggers == {"http", "queue", "poison", "timer"}

    # what the ops page reads of it (functions/adapters/ops_repo.py)
    from functions.adapters.ops_repo import OpsRepository

    ops = OpsRepository(svc.db)
    recent = ops.recent_alerts()
    assert {a["kind"] for a in recent} == {"detection", "health"}
    assert [d["status"] for a in recent if a["kind"] == "detection" for d in a["deliveries"]] == ["delivered"]
    assert ops.recent_quarantined() == [] and ops.quarantined_emails() == 0
