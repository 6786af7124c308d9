"""The admin JSON API (for automation) through the real host: master key required, JSON endpoints,
thumbnails; no HTML page behind the key any more: people use the console's ops page (admin role), whose
escaping and headers are checked here through the same host."""

from __future__ import annotations

import io
import json
import uuid

import httpx
import pytest
from PIL import Image

from functions import names
from tests.ops.conftest import console_session
from tests.support.host import FUNCTION_KEY, MASTER_KEY

ADMIN = {"x-functions-key": MASTER_KEY}


@pytest.fixture
def host(host_factory, clean_db, clean_queues):
    return host_factory(
        host_json={
            "visibilityTimeout": "00:00:00",
            "maxPollingInterval": "00:00:00.200",
            "maxDequeueCount": 5,
        }
    )


ROUTES = [
    ("GET", "ops/status"),
    ("GET", "ops/poison"),
    ("GET", "ops/poison/1"),
    ("POST", "ops/poison/1/replay"),
    ("POST", "ops/poison/replay-all"),
    ("POST", "ops/poison/purge?older_than=30d"),
    ("GET", "ops/images/1/thumbnail"),
]


def test_admin_routes_need_the_master_key(host, db):
    rid = db.fetchone(
        "INSERT INTO poison_records (id, queue, message_id, body) VALUES (1, 'ops-nowhere', 'm', "
        "'{}') RETURNING id"
    )["id"]
    for method, route in ROUTES:
        sep = "&" if "?" in route else "?"
        assert httpx.request(method, host.api(route)).status_code == 401, route
        assert (
            httpx.request(method, host.api(route), headers={"x-functions-key": FUNCTION_KEY}).status_code
            == 401
        )
        assert httpx.request(method, host.api(route) + f"{sep}code={FUNCTION_KEY}").status_code == 401
        assert httpx.request(method, host.api(route), headers={"x-functions-key": "wrong"}).status_code == 401
    # nothing was done by the refused calls
    assert db.fetchone("SELECT status FROM poison_records WHERE id = %s", (rid,))["status"] == "poisoned"
    assert httpx.get(host.api("ops/status") + f"?code={MASTER_KEY}").status_code == 200


def test_api_endpoints(host, db, storage):
    status = httpx.get(host.api("ops/status"), headers=ADMIN)
    assert status.status_code == 200 and status.headers["cache-control"] == "no-store"
    body = status.json()
    assert set(names.ALL_QUEUES) <= set(body["queues"]) and body["poison"] == {}

    body_text = json.dumps({"schema_version": 1, "correlation_id": str(uuid.uuid4()), "alert_id": 77})
    rid = db.fetchone(
        "INSERT INTO poison_records (queue, message_id, body, last_error) "
        "VALUES ('ops-api-parked', 'm-1', %s, 'boom') RETURNING id",
        (body_text,),
    )["id"]
    listed = httpx.get(host.api("ops/poison?status=poisoned"), headers=ADMIN).json()["records"]
    assert [r["id"] for r in listed] == [rid] and "body" not in listed[0]
    assert httpx.get(host.api("ops/poison?status=nope"), headers=ADMIN).status_code == 400
    shown = httpx.get(host.api(f"ops/poison/{rid}"), headers=ADMIN).json()
    assert shown["body"] == body_text and shown["last_error"] == "boom"
    assert httpx.get(host.api("ops/poison/999"), headers=ADMIN).status_code == 404
    assert httpx.get(host.api("ops/nothing-here"), headers=ADMIN).status_code == 404
    assert httpx.get(host.api(f"ops/poison/{rid}/replay"), headers=ADMIN).status_code == 405

    # replay: the original text goes back on its source queue (one no function consumes, to look at it);
    # the second call is a no-op
    parked = storage.queue("ops-api-parked")
    try:
        parked.create_queue()
    except Exception:  # noqa: BLE001 - exists
        pass
    parked.clear_messages()
    first = httpx.post(host.api(f"ops/poison/{rid}/replay"), headers=ADMIN).json()
    assert first["replayed"][0]["queue"] == "ops-api-parked"
    assert [(m.id, m.content) for m in parked.peek_messages(max_messages=32)] == [
        (first["replayed"][0]["replay_message_id"], body_text)
    ]
    second = httpx.post(host.api(f"ops/poison/{rid}/replay"), headers=ADMIN).json()
    assert second["replayed"] == [] and second["skipped"][0]["status"] == "replayed"
    assert httpx.post(host.api("ops/poison/replay-all"), headers=ADMIN).json()["replayed"] == []
    assert httpx.post(host.api("ops/poison/purge"), headers=ADMIN).status_code == 400
    purge = httpx.post(host.api("ops/poison/purge?older_than=0s"), headers=ADMIN).json()
    assert purge["purged"] == 0  # replayed records are history, not purged
    assert httpx.get(host.api("ops/status"), headers=ADMIN).json()["poison"] == {
        "ops-api-parked": {"replayed": 1}
    }


def test_console_ops_page_escapes_values_and_the_api_serves_thumbnails(host, db, storage):
    park = db.fetchone("INSERT INTO parks (slug, name) VALUES ('park-p', 'P') RETURNING id")["id"]
    cam = db.fetchone(
        "INSERT INTO cameras (park_id, name, last_seen_at) VALUES (%s, %s, now()) RETURNING id",
        (park, '<script>alert("cam")</script>'),
    )["id"]
    email = db.fetchone(
        "INSERT INTO inbound_emails (dedupe_key, mode, status, correlation_id, sender, subject, reason) "
        "VALUES ('d1', 'parsed', 'quarantined', %s, 'evil@example.org', %s, 'unknown sender') RETURNING id",
        (str(uuid.uuid4()), "<img src=x onerror=alert(1)>"),
    )["id"]
    buf = io.BytesIO()
    Image.new("RGB", (1600, 1200), (40, 120, 40)).save(buf, "JPEG")
    blob = f"park-p/cam/2026-11-20/{uuid.uuid4().hex}.jpg"
    storage.put_blob(names.IMAGES_CONTAINER, blob, buf.getvalue(), content_type="image/jpeg")
    image = db.fetchone(
        "INSERT INTO images (email_id, attachment_index, camera_id, status, correlation_id, "
        "blob_name) VALUES (%s, 1, %s, 'scored', %s, %s) RETURNING id",
        (email, cam, str(uuid.uuid4()), blob),
    )["id"]
    alert = db.fetchone(
        "INSERT INTO alerts (park_id, camera_id, categories, max_conf, best_image_id, started_at, "
        "last_image_at, title, correlation_id) VALUES (%s, %s, '{person}', 0.93, %s, now(), now(), "
        "'Person at cam', %s) RETURNING id",
        (park, cam, image, str(uuid.uuid4())),
    )["id"]
    channel = db.fetchone(
        "INSERT INTO channels (park_id, name, kind) VALUES (%s, 'rangers', 'earthranger') RETURNING id",
        (park,),
    )["id"]
    db.execute(
        "INSERT INTO deliveries (alert_id, channel_id, status, delivered_version) VALUES (%s, %s, "
        "'delivered', 1)",
        (alert, channel),
    )

    # the master key opens no page any more
    old = httpx.get(host.api("ops"), headers=ADMIN)
    assert old.status_code == 404 and "html" not in old.headers.get("content-type", "")

    page = console_session(host, db, "admin").get("ops")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<meta name="viewport"' in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;cam&quot;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "rangers (earthranger): delivered v1" in html and f'data-thumb="{image}"' in html
    assert MASTER_KEY not in html and FUNCTION_KEY not in html
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"

    thumb = httpx.get(host.api(f"ops/images/{image}/thumbnail"), headers=ADMIN)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 320
    assert httpx.get(host.api("ops/images/999999/thumbnail"), headers=ADMIN).status_code == 404


def test_the_old_page_address_points_people_to_the_console():
    """Where the host hands an empty path to the catch-all route (ASP.NET lets ``ops/{*path}`` match
    ``ops``), the API answers JSON, not a page."""
    import azure.functions as func

    from functions.ops import api

    resp = api.handle(func.HttpRequest("GET", "https://x/api/ops", body=b"", route_params={"path": ""}), None)
    assert resp.status_code == 404 and resp.mimetype == "application/json"
    assert "/api/console/ops" in json.loads(resp.get_body())["error"]
