"""Fixtures of the park console tests: the Function app's services pointed at the test PostgreSQL and
Azurite, a seeded park (cameras, alerts with photos and boxes, a channel and its deliveries), and helpers to
sign in by role and call the console in-process (the same ``handle`` the HTTP function calls)."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from functions import names
from functions.adapters.console_repo import ConsoleRepository
from functions.console.app import handle
from functions.console.auth import CSRF_COOKIE, SESSION_COOKIE, new_token

ORIGIN = "http://127.0.0.1:7071"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def jpeg(width: int = 320, height: int = 240, shade: int = 90, mark: int = 0) -> bytes:
    """A small JPEG; ``mark`` draws a light block at a place of its own (distinct bytes per mark)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (shade, shade + 20, shade))
    x = (mark * 23) % max(1, width - 16)
    ImageDraw.Draw(img).rectangle((x, height // 3, x + 15, height // 3 + 40), fill=(200, 190, 170))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=70)
    return out.getvalue()


def seed_park(
    db,
    storage,
    *,
    slug: str = "park-c",
    camera_name: str = "gate-1",
    alerts: int = 2,
    lat: float = -24.01,
    lon: float = 31.48,
) -> dict:
    """A park with two cameras (one placed at lat/lon, one silent), ``alerts`` person alerts of 2 photos each
    (boxes, stored JPEGs), a webhook channel with one delivery each."""
    park = db.fetchone(
        "INSERT INTO parks (slug, name, settings) VALUES (%s, %s, %s::jsonb) RETURNING *",
        (
            slug,
            f"Park {slug}",
            json.dumps({"outline": [[-23.9, 31.3], [-23.9, 31.6], [-24.1, 31.6], [-24.1, 31.3]]}),
        ),
    )
    cam = db.fetchone(
        "INSERT INTO cameras (park_id, name, latitude, longitude, last_seen_at) VALUES (%s, %s, %s, %s, "
        "now()) "
        "RETURNING *",
        (park["id"], camera_name, lat, lon),
    )
    quiet = db.fetchone(
        "INSERT INTO cameras (park_id, name, latitude, longitude) VALUES (%s, 'river-2', %s, %s) RETURNING *",
        (park["id"], lat - 0.03, lon + 0.05),
    )
    db.execute(
        "INSERT INTO camera_health (camera_id, condition, status, raised_at) VALUES (%s, 'silent', "
        "'raised', now())",
        (quiet["id"],),
    )
    channel = db.fetchone(
        "INSERT INTO channels (park_id, name, kind, config) VALUES (%s, 'hook', 'webhook', '{}') RETURNING *",
        (park["id"],),
    )
    made = [add_alert(db, storage, park["id"], cam["id"], channel_id=channel["id"]) for _ in range(alerts)]
    return {"park": park, "camera": cam, "quiet": quiet, "channel": channel, "alerts": made}


def add_alert(
    db,
    storage,
    park_id: int,
    camera_id: int,
    *,
    channel_id: int | None = None,
    photos: int = 2,
    category: str = "2",
    at: datetime | None = None,
) -> dict:
    at = at or datetime.now(UTC) - timedelta(minutes=5)
    cid = str(uuid.uuid4())
    email = db.fetchone(
        "INSERT INTO inbound_emails (dedupe_key, mode, status, correlation_id, park_id, camera_id) "
        "VALUES (%s, 'parsed', 'accepted', %s, %s, %s) RETURNING id",
        (cid, cid, park_id, camera_id),
    )
    alert = db.fetchone(
        "INSERT INTO alerts (park_id, camera_id, categories, max_conf, image_count, started_at, "
        "last_image_at, "
        "title, details, correlation_id) VALUES (%s, %s, %s, 0.91, %s, %s, %s, %s, %s::jsonb, %s) RETURNING "
        "*",
        (
            park_id,
            camera_id,
            [category],
            photos,
            at,
            at,
            "Person at camera",
            json.dumps({"rule": {"category": "person", "threshold": 0.6, "conf": 0.91}}),
            cid,
        ),
    )
    event = db.fetchone(
        "INSERT INTO events (park_id, camera_id, started_at, last_image_at, image_count, alert_id) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (park_id, camera_id, at, at, photos, alert["id"]),
    )
    image_ids = []
    for i in range(photos):
        blob = f"test/{cid}/{i}.jpg"
        storage.put_blob(names.IMAGES_CONTAINER, blob, jpeg(shade=60 + 20 * i), content_type="image/jpeg")
        im = db.fetchone(
            "INSERT INTO images (email_id, attachment_index, park_id, camera_id, filename, content_type, "
            "blob_name, "
            "width, height, taken_at, taken_at_source, status, correlation_id, alert_id, scored_at) VALUES "
            "(%s, %s, %s, %s, %s, 'image/jpeg', %s, 320, 240, %s, 'exif', 'scored', %s, %s, now()) "
            "RETURNING id",
            (
                email["id"],
                i,
                park_id,
                camera_id,
                f"IMG_{i}.JPG",
                blob,
                at + timedelta(seconds=i),
                cid,
                alert["id"],
            ),
        )
        db.execute(
            "INSERT INTO detections (image_id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h) "
            "VALUES (%s, %s, 0.91, 0.2, 0.3, 0.25, 0.5)",
            (im["id"], category),
        )
        image_ids.append(im["id"])
    db.execute("UPDATE alerts SET best_image_id = %s WHERE id = %s", (image_ids[0], alert["id"]))
    db.execute("UPDATE images SET event_id = %s WHERE alert_id = %s", (event["id"], alert["id"]))
    if channel_id:
        db.execute(
            "INSERT INTO deliveries (alert_id, channel_id, status, attempts, delivered_version, "
            "delivered_at) "
            "VALUES (%s, %s, 'delivered', 1, 1, now())",
            (alert["id"], channel_id),
        )
    return {"id": alert["id"], "image_ids": image_ids}


@dataclass
class Client:
    """Calls the console in-process like a browser would (cookies kept, CSRF header and Origin sent)."""

    svc: object
    cookies: dict[str, str] = field(default_factory=dict)
    origin: str | None = ORIGIN
    csrf: bool = True

    def request(
        self, method: str, path: str, body=None, headers: dict | None = None, params: dict | None = None
    ):
        h = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if method == "POST":
            if self.origin:
                h["origin"] = self.origin
            if self.csrf and CSRF_COOKIE in self.cookies:
                h["x-csrf-token"] = self.cookies[CSRF_COOKIE]
            h["content-type"] = "application/json"
        h.update(headers or {})
        data = (
            json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else (body or b"")
        )
        req = func.HttpRequest(
            method,
            f"{ORIGIN}/api/console/{path}",
            headers=h,
            params=params or {},
            route_params={"path": path},
            body=data,
        )
        resp = handle(req, self.svc)
        for raw in (resp.headers.get("Set-Cookie"),):
            if raw:
                name, _, rest = raw.partition("=")
                value = rest.split(";", 1)[0]
                if value:
                    self.cookies[name] = value
                else:
                    self.cookies.pop(name, None)
        return resp

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw):
        return self.request("POST", path, body if body is not None else {}, **kw)

    def json(self, resp):
        return json.loads(resp.get_body())


@pytest.fixture
def svc(app_settings, clean_db, storage):
    from functions.bootstrap import services

    return services()


@pytest.fixture
def seeded(svc, clean_db, storage):
    return seed_park(clean_db, storage)


def sign_in(svc, role: str, user: str | None = None) -> Client:
    """A browser signed in through a fresh one-time link."""
    token = new_token()
    ConsoleRepository(svc.db).add_link(token, user or f"{role}-user", role, 600, created_by="test")
    client = Client(svc)
    client.get("login")  # the sign-in page sets the CSRF cookie
    resp = client.post("login", {"token": token})
    assert resp.status_code == 200, resp.get_body()
    assert SESSION_COOKIE in client.cookies
    return client


@pytest.fixture
def login(svc):
    return lambda role, user=None: sign_in(svc, role, user)
