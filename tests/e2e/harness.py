"""The whole pipeline, real processes only, for end-to-end tests and fault drills.

    pipe = Pipeline.start(...)       # (the fixtures in tests/e2e/conftest.py do this)
    sent = pipe.send_camera_email(pipe.photos(3, camera="CAM01"))
    pipe.wait_for_deliveries()
    pipe.assert_exactly_once()

What runs: the session's Azurite and PostgreSQL; the scoring service (``python -m scoring``, null backend
answering one person at 0.95 in every photo, so every photo is a detection and the expected outcome is
known); the local Functions host running the real function_app.py (short queue delays); FakeEarthRanger,
FakeCmore and FakeSendGrid as the three channels of the park (secrets in environment settings named by the
channel configs, as in production). Emails go to the host's webhook over HTTP in SendGrid's format.

``assert_exactly_once`` checks, from both sides:
- every photo sent is one ``images`` row, scored once (status ``scored``, decided, exactly one detection row
  per detection the detector returns) and, where the service was not restarted, seen once by the scoring
  service itself (its ``/v1/model`` stats);
- every alert is delivered on each of the three channels at its current version (``deliveries`` rows), and
  the stand-ins recorded exactly one EarthRanger event and one CMORE event per alert (the delivery's
  ``external_id``), one email per alert plus one per recorded update, one CMORE comment per recorded update,
  and no photo attached twice to an EarthRanger event.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
from azure.core.exceptions import AzureError
from PIL import Image

from functions import names
from functions.adapters.parks import CameraIn, ParkIn, ParkRepository
from functions.adapters.storage import Storage
from functions.db import Database, DatabaseUnavailable
from functions.inbound.sendgrid_payload import ImageFile, Payload, build_payload
from tests.support.host import FUNCTION_KEY, HostProcess

PARK_ADDRESS = "park-e2e@alerts.example.org"
PARK_TZ = "Africa/Johannesburg"
ER_TOKEN = "er-e2e-token"
CMORE_USER, CMORE_PASSWORD = "ops-room", "cmore-e2e-pw"
SG_KEY = "SG.e2e-key"
SECRET_ENV = {
    "CHANNEL_SECRET_E2E_ER_TOKEN": ER_TOKEN,
    "CHANNEL_SECRET_E2E_CMORE_PASSWORD": CMORE_PASSWORD,
    "CHANNEL_SECRET_E2E_SG_KEY": SG_KEY,
}
CHANNELS = ("er", "cmore", "email")
DETECTIONS_PER_PHOTO = 1  # the null backend's "person"
# Queue settings of the drills: short enough that retries fit in a test, as in the project's host.json
# otherwise (5 attempts).
FAST_QUEUES = {"visibilityTimeout": "00:00:01", "maxPollingInterval": "00:00:00.250", "maxDequeueCount": 5}
T0 = datetime(2026, 11, 20, 1, 0, 0, tzinfo=UTC)  # 03:00 in the park: night, when poachers move


def camera_sender(camera: str) -> str:
    return f"{camera.lower()}@traps.example.org"


def make_photo(
    taken_at: datetime, seed: int, size: tuple[int, int] = (320, 240), tz_offset_h: int = 2
) -> bytes:
    """A distinct small JPEG with EXIF DateTimeOriginal (camera local time) = ``taken_at``."""
    w, h = size
    rng = np.random.default_rng(seed)
    small = rng.integers(20, 230, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    exif = Image.Exif()
    local = taken_at.astimezone(UTC) + timedelta(hours=tz_offset_h)
    exif.get_ifd(0x8769)[0x9003] = local.strftime("%Y:%m:%d %H:%M:%S")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, exif=exif)
    return buf.getvalue()


@dataclass
class Sent:
    """One camera email as sent: its payload (to deliver it again), the answers and the time to accept."""

    payload: Payload
    camera: str
    photos: int
    statuses: list[int] = field(default_factory=list)
    answer: dict[str, Any] | None = None
    posted_at: float = 0.0  # time.time() of the first POST
    accept_s: float = 0.0  # first POST to the 200 (including SendGrid-like retries)


class Pipeline:
    def __init__(
        self,
        *,
        db: Database,
        storage: Storage,
        host: HostProcess,
        scoring,
        er,
        cm,
        sg,
        park_id: int,
        cameras: dict[str, int],
        channels: dict[str, int],
    ):
        self.db, self.storage, self.host, self.scoring = db, storage, host, scoring
        self.er, self.cm, self.sg = er, cm, sg
        self.park_id, self.cameras, self.channels = park_id, cameras, channels
        self.sent: list[Sent] = []
        self._seed = 0
        self._lock = threading.Lock()
        self.http = httpx.Client(timeout=30)
        self.scoring_base = self.scoring_images()

    # ------------------------------------------------------------------------------------ setup
    @staticmethod
    def register(db: Database, er, cm, sg, cameras: list[str]) -> tuple[int, dict[str, int], dict[str, int]]:
        """A park with ``cameras`` (each known by its sender address) and the three channels."""
        repo = ParkRepository(db)
        park = repo.add_park(
            ParkIn(slug="park-e2e", name="E2E Park", timezone=PARK_TZ, inbound_address=PARK_ADDRESS)
        )
        # The drills' photos are taken at T0 (a fixed night in the past) and received now: to the
        # camera-health timer that is a camera clock days off, a legitimate health alert on its own
        # channels that would add requests to the drills' counts. The drills test detections, not clocks.
        db.execute(
            "UPDATE parks SET settings = jsonb_set(coalesce(settings, '{}'::jsonb), '{health}', %s::jsonb) "
            "WHERE id = %s",
            (json.dumps({"clock_skew_max_s": 10 * 365 * 86400}), park["id"]),
        )
        cams = {
            name: repo.add_camera(
                "park-e2e",
                CameraIn(name=name, sender_addresses=[camera_sender(name)], latitude=-24.99, longitude=31.59),
            )["id"]
            for name in cameras
        }
        configs = {
            "er": (
                "earthranger",
                # local stand-ins: plain http on loopback (functions/notify/safety.py)
                {
                    "service_root": er.url,
                    "token_setting": "CHANNEL_SECRET_E2E_ER_TOKEN",
                    "allow_http": True,
                    "allow_private_network": True,
                },
            ),
            "cmore": (
                "cmore",
                {
                    "base_url": cm.url,
                    "allow_http": True,
                    "allow_private_network": True,
                    "timeout_s": 2,
                    "username": CMORE_USER,
                    "password_setting": "CHANNEL_SECRET_E2E_CMORE_PASSWORD",
                    "owner_group_id": 7,
                    "description_template": "TrapAlert alert {alert_id}: {title}",
                    "tags": [
                        {
                            "tag": 501,  # "Camera Trap Alert" of tests/fakes/cmore.py, by id
                            "fields": {"9001": "{camera}", "9002": "{categories}"},
                        }
                    ],
                },
            ),
            "email": (
                "email",
                {
                    "mode": "sendgrid",
                    "host": sg.url,
                    "allow_http": True,
                    "allow_private_network": True,
                    "people_photos": "as_is",  # as drawn (privacy: tests/notify/test_notify_privacy.py)
                    "api_key_setting": "CHANNEL_SECRET_E2E_SG_KEY",
                    "to": ["rangers@park-e2e.example"],
                    "from_address": "alerts@trapalert.example",
                },
            ),
        }
        channels = {}
        for key, (kind, config) in configs.items():
            channels[key] = db.fetchone(
                "INSERT INTO channels (park_id, name, kind, purpose, config, enabled) "
                "VALUES (%s, %s, %s, 'alerts', %s::jsonb, true) RETURNING id",
                (park["id"], f"e2e-{key}", kind, json.dumps(config)),
            )["id"]
        return park["id"], cams, channels

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------------------------ photos and emails
    def photos(
        self, n: int, *, start: datetime = T0, step_s: float = 2.0, size: tuple[int, int] = (320, 240)
    ) -> list[bytes]:
        """``n`` distinct photos taken ``step_s`` apart from ``start`` (one burst when step_s < 60)."""
        out = []
        for i in range(n):
            with self._lock:
                self._seed += 1
                seed = self._seed
            out.append(make_photo(start + timedelta(seconds=i * step_s), seed, size))
        return out

    @property
    def webhook_url(self) -> str:
        return self.host.api(names.INBOUND_ROUTE)

    def build_email(self, images: list[bytes], camera: str = "CAM01", subject: str | None = None) -> Sent:
        files = [ImageFile(f"IMG_{uuid.uuid4().hex[:8].upper()}.JPG", data) for data in images]
        p = build_payload(
            sender=camera_sender(camera), to=PARK_ADDRESS, subject=subject or f"{camera} motion", images=files
        )
        return Sent(p, camera, len(images))

    def post(self, sent: Sent, *, retry_s: float = 60.0) -> Sent:
        """POST the email as SendGrid does: any non-2xx (or no answer) is retried, here every 0.5 s."""
        started = time.perf_counter()
        if not sent.posted_at:
            sent.posted_at = time.time()
        deadline = time.monotonic() + retry_s
        while True:
            try:
                r = self.http.post(
                    self.webhook_url,
                    content=sent.payload.body,
                    headers=sent.payload.headers(function_key=FUNCTION_KEY),
                )
                sent.statuses.append(r.status_code)
                if 200 <= r.status_code < 300:
                    sent.answer = r.json()
                    break
            except httpx.HTTPError:
                sent.statuses.append(0)
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook did not accept the email within {retry_s} s: {sent.statuses}")
            time.sleep(0.5)
        if not sent.accept_s:
            sent.accept_s = time.perf_counter() - started
        return sent

    def send_camera_email(
        self, images: list[bytes], camera: str = "CAM01", *, retry_s: float = 60.0, subject: str | None = None
    ) -> Sent:
        """Build a camera email with ``images`` and POST it (SendGrid-like retries); record it as sent."""
        sent = self.build_email(images, camera, subject)
        self.post(sent, retry_s=retry_s)
        with self._lock:
            self.sent.append(sent)
        return sent

    @property
    def expected_photos(self) -> int:
        return sum(s.photos for s in self.sent)

    # ------------------------------------------------------------------------------------ observing
    def q(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """A query that waits out a database restart (the drills restart it)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return self.db.fetchall(sql, params)
            except DatabaseUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def count(self, sql: str, params: Any = None) -> int:
        return int(self.q(sql, params)[0]["n"])

    def scoring_images(self) -> int | None:
        """How many photos the scoring service's model has seen since it started (None if it is down)."""
        try:
            return int(httpx.get(f"{self.scoring}/v1/model", timeout=5).json()["stats"]["images"])
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    def queue_depths(self) -> dict[str, int]:
        return {q: self.storage.queue_depth(q) for q in names.ALL_QUEUES}

    def progress(self) -> dict[str, Any]:
        return {
            "images": self.q(
                "SELECT status, count(*) AS n, count(decided_at) AS decided FROM images GROUP BY status"
            ),
            "alerts": self.q("SELECT id, version, image_count FROM alerts ORDER BY id"),
            "deliveries": self.q(
                "SELECT alert_id, channel_id, status, delivered_version, attempts "
                "FROM deliveries ORDER BY alert_id, channel_id"
            ),
            "poison": self.q("SELECT queue, status, count(*) AS n FROM poison_records GROUP BY 1, 2"),
            "queues": self._safe_depths(),
        }

    def _safe_depths(self) -> dict[str, int] | str:
        try:
            return self.queue_depths()
        except Exception as exc:  # noqa: BLE001 - a diagnostic
            return f"unavailable: {exc}"

    def settled(self, *, photos: int | None = None) -> bool:
        """Every photo decided, every alert delivered at its version on every channel, work queues empty."""
        photos = self.expected_photos if photos is None else photos
        decided = self.count(
            "SELECT count(*) AS n FROM images WHERE decided_at IS NOT NULL OR "
            "status IN ('failed', 'unsupported', 'rejected')"
        )
        if decided < photos:
            return False
        pending = self.count(
            "SELECT count(*) AS n FROM alerts a CROSS JOIN (SELECT unnest(%s::bigint[]) AS channel_id) c "
            "LEFT JOIN deliveries d ON d.alert_id = a.id AND d.channel_id = c.channel_id "
            "WHERE d.id IS NULL OR d.status <> 'delivered' OR d.delivered_version < a.version",
            (list(self.channels.values()),),
        )
        if pending:
            return False
        try:
            depths = self.queue_depths()
        except AzureError:  # Azurite restarting
            return False
        return depths[names.PROCESS_IMAGE_QUEUE] == 0 and depths[names.SEND_ALERT_QUEUE] == 0

    def wait_for_deliveries(self, timeout_s: float = 60, *, photos: int | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.settled(photos=photos):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"pipeline not settled after {timeout_s} s: {self.progress()}\n"
                    f"host log tail:\n{self.host.log()[-3000:]}"
                )
            time.sleep(0.2)
        time.sleep(0.5)  # anything still running (a duplicate in flight) would show in the checks below

    def settle_replaying_poison(self, timeout_s: float = 90, *, photos: int | None = None) -> int:
        """Wait for the pipeline to settle; poisoned messages are replayed as ops would
        (functions/ops/poison.replay_all, as `trapalert poison replay --all`). Returns how many
        were replayed."""
        from functions.ops.poison import replay_all

        replayed = 0
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.settled(photos=photos) and not self.count(
                    "SELECT count(*) AS n FROM poison_records WHERE status = 'poisoned'"
                ):
                    break
                if self.count("SELECT count(*) AS n FROM poison_records WHERE status = 'poisoned'"):
                    replayed += len(replay_all(self.db, self.storage).replayed)
            except (DatabaseUnavailable, AzureError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"pipeline not settled after {timeout_s} s: {self.progress()}\n"
                    f"host log tail:\n{self.host.log()[-3000:]}"
                )
            time.sleep(0.5)
        time.sleep(0.5)
        return replayed

    def wait_for_poison_records(self, timeout_s: float = 30) -> None:
        """Every message on a poison queue recorded by the monitors (poison queues empty)."""
        deadline = time.monotonic() + timeout_s
        while any(self.storage.queue_depth(q) for q in names.POISON_QUEUES):
            if time.monotonic() > deadline:
                raise AssertionError(f"poison queues not drained: {self.queue_depths()}")
            time.sleep(0.2)

    # ------------------------------------------------------------------------------------ the check
    def assert_exactly_once(self, *, scoring_exact: bool = True) -> dict[str, Any]:
        """Every photo scored once, every alert delivered once per channel (database AND stand-ins)."""
        photos = self.expected_photos
        emails = self.q("SELECT id, status, message_id FROM inbound_emails ORDER BY id")
        assert len(emails) == len(self.sent), f"{len(emails)} email rows for {len(self.sent)} emails sent"
        assert {e["message_id"] for e in emails} == {s.payload.message_id.strip("<>") for s in self.sent}
        assert all(e["status"] == "accepted" for e in emails), Counter(e["status"] for e in emails)

        images = self.q(
            "SELECT i.id, i.status, i.decided_at, o.sent_at AS enqueued_at, "
            "(SELECT count(*) FROM detections d WHERE d.image_id = i.id) AS dets FROM images i "
            "LEFT JOIN outbox o ON o.key = 'process-image:' || i.id"
        )
        assert len(images) == photos, f"{len(images)} image rows for {photos} photos sent"
        assert Counter(i["status"] for i in images) == {"scored": photos}
        assert all(i["decided_at"] is not None and i["enqueued_at"] is not None for i in images)
        bad = [i["id"] for i in images if i["dets"] != DETECTIONS_PER_PHOTO]
        assert not bad, f"images with other than {DETECTIONS_PER_PHOTO} detection rows: {bad[:10]}"
        seen = self.scoring_images()
        if scoring_exact:
            assert seen is not None and seen - (self.scoring_base or 0) == photos, (
                f"scoring service saw {seen} photos (base {self.scoring_base}) for {photos} sent; failures: "
                f"{self.q('SELECT queue, message_id, dequeue_count, error FROM message_failures')}"
            )

        poisoned = self.q("SELECT id, queue FROM poison_records WHERE status = 'poisoned'")
        assert not poisoned, f"poison records left unreplayed: {poisoned}"
        depths = self.queue_depths()
        assert all(v == 0 for v in depths.values()), depths

        # Detection alerts are checked here; the camera-health timer may also raise health alerts (no photo)
        # while a drill runs: their remote objects are set apart below.
        alerts = self.q("SELECT id, version, image_count FROM alerts WHERE kind = 'detection' ORDER BY id")
        assert alerts, "no alert at all"
        assert sum(a["image_count"] for a in alerts) == photos, "photos attached to alerts"
        rows = self.q(
            "SELECT d.* FROM deliveries d JOIN alerts a ON a.id = d.alert_id WHERE a.kind = 'detection'"
        )
        health = self.q(
            "SELECT d.alert_id, d.external_id FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE a.kind = 'health' AND d.external_id IS NOT NULL"
        )
        health_ids = {str(h["external_id"]) for h in health}
        health_alerts = {h["alert_id"] for h in health}
        by = {(r["alert_id"], r["channel_id"]): r for r in rows}
        assert len(rows) == len(alerts) * len(CHANNELS), f"{len(rows)} deliveries for {len(alerts)} alerts"
        ch = self.channels
        er_ids, cm_ids, er_states = [], [], {}
        email_expected: Counter = Counter()
        cm_comments_expected = {}
        for a in alerts:
            for key in CHANNELS:
                d = by[(a["id"], ch[key])]
                assert d["status"] == "delivered" and d["delivered_version"] == a["version"], (key, d)
            er_ids.append(by[(a["id"], ch["er"])]["external_id"])
            er_states[er_ids[-1]] = by[(a["id"], ch["er"])]["state"]
            cm = by[(a["id"], ch["cmore"])]
            cm_ids.append(int(cm["external_id"]))
            cm_comments_expected[int(cm["external_id"])] = (a["id"], cm["state"])
            email_expected[a["id"]] = 1 + len(by[(a["id"], ch["email"])]["state"].get("updates", []))

        # EarthRanger: one event per alert, created by one successful POST each; no photo twice on an event
        with self.er.lock:
            all_er_events = dict(self.er.events)
        er_events = {k: v for k, v in all_er_events.items() if str(k) not in health_ids}
        posts = [r for r in self.er.requests_to(r"^/api/v1\.0/activity/events/?$", "POST") if r.status == 201]
        assert len(posts) == len(all_er_events), (len(posts), len(all_er_events))
        assert len(alerts) == len(er_events), (len(alerts), len(er_events))
        assert sorted(er_ids) == sorted(er_events), "ER events are not one per alert"
        for ev in er_events.values():
            names_ = [f["filename"] for f in ev["files"]]
            assert len(names_) == len(set(names_)) >= 1, f"ER event {ev['id']} files {names_}"
            updates = er_states[ev["id"]].get("updates", [])
            assert len(ev["notes"]) == len(updates), (
                f"ER event {ev['id']}: {len(ev['notes'])} notes, {updates}"
            )
        # CMORE: one event per alert; its comments are the updates recorded, none twice
        with self.cm.lock:
            cm_events = {
                k: dict(v, comments=list(v["comments"]))
                for k, v in self.cm.events.items()
                if str(k) not in health_ids
            }
        assert sorted(cm_ids) == sorted(cm_events), "CMORE events are not one per alert"
        for mid, ev in cm_events.items():
            alert_id, state = cm_comments_expected[mid]
            assert f"alert {alert_id}:" in ev["description"], (alert_id, ev["description"])
            assert len(ev["comments"]) == len(state.get("comments", [])), (mid, len(ev["comments"]), state)
        # email: one message per alert + one per update recorded
        got = Counter()
        for m in list(self.sg.messages):
            got[int(m.get("custom_args", {}).get("alert_id") or _custom_arg(m, "alert_id"))] += 1
        got = Counter({k: v for k, v in got.items() if k not in health_alerts})
        assert got == email_expected, f"emails per alert {dict(got)} != expected {dict(email_expected)}"
        return {
            "photos": photos,
            "alerts": len(alerts),
            "emails": sum(got.values()),
            "er_events": len(er_events),
            "cmore_events": len(cm_events),
        }


def _custom_arg(message: dict, key: str) -> str | None:
    for p in message.get("personalizations", []):
        if key in (p.get("custom_args") or {}):
            return p["custom_args"][key]
    return None
