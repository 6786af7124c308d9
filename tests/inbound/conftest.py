"""Fixtures of the inbound tests: a registry of parks and cameras, photos, a webhook host, queue readers."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from functions import names
from functions.adapters.parks import CameraIn, ParkIn, ParkRepository
from functions.inbound.sendgrid_payload import ImageFile, Payload, build_payload  # noqa: F401
from functions.localhost.services import free_port
from tests.support.host import FUNCTION_KEY, HostProcess, host_env, write_host_json

WEBHOOK_APP = Path(__file__).parent / "webhook_app"
PARK_X = "park-x@alerts.example.org"
PARK_Y = "park-y@alerts.example.org"
CAM01_SENDER = "cam01@traps.example.org"


def make_jpeg(
    width: int = 320,
    height: int = 240,
    *,
    color=(40, 120, 60),
    exif_time: str | None = None,
    offset: str | None = None,
    gps: tuple[float, float] | None = None,
    orientation: int | None = None,
    quality: int = 85,
    noise: bool = False,
    user_comment: str | None = None,
    body_serial: str | None = None,
) -> bytes:
    if noise:
        import os

        img = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        img = Image.new("RGB", (width, height), color)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if exif_time:
        exif.get_ifd(0x8769)[0x9003] = exif_time
        if offset:
            exif.get_ifd(0x8769)[0x9011] = offset
    if user_comment:  # EXIF UserComment: an 8-byte character code, then the text
        exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + user_comment.encode()
    if body_serial:
        exif.get_ifd(0x8769)[0xA431] = body_serial
    if gps:
        lat, lon = gps

        def dms(v):
            v = abs(v)
            d = int(v)
            m = int((v - d) * 60)
            s = round(((v - d) * 60 - m) * 60 * 100)
            return (IFDRational(d, 1), IFDRational(m, 1), IFDRational(s, 100))

        exif.get_ifd(0x8825).update(
            {1: "S" if lat < 0 else "N", 2: dms(lat), 3: "W" if lon < 0 else "E", 4: dms(lon)}
        )
    buf = io.BytesIO()
    has_exif = len(exif) or exif_time or gps or user_comment or body_serial
    img.save(buf, "JPEG", quality=quality, exif=exif if has_exif else b"")
    return buf.getvalue()


def make_png(width: int = 64, height: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    return make_jpeg()


@pytest.fixture
def registry(clean_db, clean_queues):
    """Two parks and cameras of several brands; clean database and queues."""
    repo = ParkRepository(clean_db)
    repo.add_park(
        ParkIn(slug="park-x", name="Park X", timezone="Africa/Johannesburg", inbound_address=PARK_X)
    )
    repo.add_park(
        ParkIn(
            slug="park-y",
            name="Park Y",
            timezone="UTC",
            inbound_address=PARK_Y,
            require_spf_pass=True,
            require_dkim_pass=True,
        )
    )
    cams = {}
    for name, senders, aliases, brand in [
        ("CAM01", [CAM01_SENDER], ["CAM01"], "generic"),
        ("CAM07", [], [], "reconyx"),
        ("Ridge-East", [], [], "bushnell"),
        ("BTC-12", [], [], "browning"),
        ("LM2-WATERHOLE", [], [], "spypoint"),
        ("Waterhole-N", [], [], "generic"),
        ("CAM12", [], [], "generic"),
        ("Gate-3", [], [], "generic"),
        ("Fence-9", [], [], "generic"),
        ("North-1", ["noreply@shared.example.com"], [], "generic"),
        ("North-2", ["noreply@shared.example.com"], [], "generic"),
        ("Old-5", ["old5@traps.example.org"], [], "generic"),
    ]:
        cams[name] = repo.add_camera(
            "park-x", CameraIn(name=name, sender_addresses=senders, aliases=aliases, brand=brand)
        )
    cams["Y1"] = repo.add_camera("park-y", CameraIn(name="Y1", sender_addresses=["y1@traps.example.org"]))
    clean_db.execute("UPDATE cameras SET active = false WHERE name = 'Old-5'")
    return cams


def payload(images=None, *, sender=CAM01_SENDER, to=PARK_X, subject="CAM01 motion", **kw) -> Payload:
    return build_payload(
        sender=sender,
        to=to,
        subject=subject,
        images=images if images is not None else [ImageFile("IMG_0001.JPG", make_jpeg())],
        **kw,
    )


def queue_messages(storage, queue: str = names.PROCESS_IMAGE_QUEUE) -> list[dict]:
    """The messages on ``queue`` (peeked, not taken), base64-decoded and parsed as JSON."""
    raw = storage.queue(queue, encoded=False).peek_messages(max_messages=32)
    return [json.loads(base64.b64decode(m.content, validate=True)) for m in raw]


def email_rows(db) -> list[dict]:
    return db.fetchall("SELECT * FROM inbound_emails ORDER BY id")


def image_rows(db) -> list[dict]:
    return db.fetchall("SELECT * FROM images ORDER BY id")


def utc(dt: datetime) -> datetime:

    return dt.astimezone(UTC)


@pytest.fixture(scope="session")
def webhook_host(azurite, database_url, tmp_path_factory):
    """A local Functions host serving the real process-email function (one per test run, to stay fast)."""
    tmp = tmp_path_factory.mktemp("webhook-host")
    host = HostProcess(
        script_root=WEBHOOK_APP,
        env=host_env(azurite.connection_string, database_url),
        port=free_port(),
        log_path=tmp / "host.log",
        host_json=write_host_json(tmp / "host.json"),
    ).start()
    yield host
    host.stop(timeout_s=10)


def post(host, p: Payload, *, key: str | None = FUNCTION_KEY, signer=None, timestamp=None, **extra_headers):
    import httpx

    headers = p.headers(signer=signer, function_key=key, timestamp=timestamp)
    headers.update(extra_headers)
    return httpx.post(host.api(names.INBOUND_ROUTE), content=p.body, headers=headers, timeout=30)
