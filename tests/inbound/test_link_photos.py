"""Photos given as links (RidgeTec): recorded by process-email as 'linked' image rows
(functions/adapters/link_photos_repo.py), fetched by process-image (functions/inbound/links.py) from the
brand's https hosts only, with size and time limits; transient failures retried, permanent ones recorded.

The vendor's photo host is stood in for by ``FakePhotoHost`` below (tests/fakes/_server.py): it answers
``GET <path>`` with the image bytes, as RidgeTec's portal answers the ``<img src>`` link of its emails
(source: TNC animl-email-relay ``src/helpers.py`` ``download_image``, a plain GET of that link whose
non-OK answer is an error; the host ``portal.ridgetec.com`` from its RidgeTec test email). It has no public
certificate, so the tests allow it over http with LINK_PHOTO_ALLOW_HTTP_HOSTS (test only)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pytest

from functions import names
from functions.adapters.link_photos_repo import add_link_photo
from functions.adapters.scoring_client import ImageScore
from functions.handlers.process_image import handle
from functions.inbound import links
from functions.inbound.brands import samples
from functions.inbound.links import LinkPhotoRefused, LinkPhotoUnavailable, LinkPolicy, fetch
from functions.messages import ProcessImage
from tests.fakes._server import FakeServer, Reply

PHOTO = samples.jpeg(taken="2026:11:30 21:10:00", color=(10, 200, 30))


class FakePhotoHost(FakeServer):
    name = "photo-host"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.photos: dict[str, tuple[bytes, str]] = {}
        self.route("GET", r"/camera/image-cache/([A-Za-z0-9_-]+)", self._photo)
        self.route("GET", r"/go/(.+)", self._redirect)

    def _photo(self, req, key):
        if key not in self.photos:
            return Reply(404, {"detail": "Not found."})
        data, ctype = self.photos[key]
        return Reply(200, body=data, headers={"Content-Type": ctype})

    def _redirect(self, req, target):
        return Reply(302, body=b"", headers={"Location": target if "://" in target else "/" + target})


@pytest.fixture
def host():
    with FakePhotoHost() as fake:
        fake.photos["p1"] = (PHOTO, "image/jpeg")
        fake.photos["page"] = (b"<html>please log in</html>", "text/html")
        yield fake


def netloc(fake: FakeServer) -> str:
    return fake.root_url.split("://", 1)[1]


def policy_for(fake: FakeServer, **kw) -> LinkPolicy:
    return LinkPolicy(allow_http_hosts=frozenset({netloc(fake)}), **kw)


# ------------------------------------------------------------------------------------ fetch rules
def test_fetches_an_allowed_link(host):
    got = fetch(f"{host.url}/camera/image-cache/p1", (), policy_for(host))
    assert got.data == PHOTO and got.content_type == "image/jpeg"


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://portal.ridgetec.com/camera/image-cache/p1", "only https"),
        ("https://evil.example/camera/image-cache/p1", "host evil.example is not one of portal.ridgetec.com"),
        ("https://portal.ridgetec.com:8443/x", "port 8443"),
        ("https://user:pw@portal.ridgetec.com/x", "credentials"),
        ("ftp://portal.ridgetec.com/x", "ftp scheme"),
    ],
)
def test_refused_before_any_request(url, why, host):
    with pytest.raises(LinkPhotoRefused) as info:
        fetch(url, ("portal.ridgetec.com",), LinkPolicy())
    assert info.value.reason.startswith(links.NOT_ALLOWED) and why in info.value.reason
    assert host.requests == []


def test_plain_http_to_a_host_not_named_for_tests_is_refused(host):
    with pytest.raises(LinkPhotoRefused, match="only https"):
        fetch(f"{host.url}/camera/image-cache/p1", (netloc(host),), LinkPolicy())
    assert host.requests == []


def test_redirects_only_to_allowed_hosts(host):
    ok = fetch(f"{host.url}/go/camera/image-cache/p1", (), policy_for(host))
    assert ok.data == PHOTO and ok.url.endswith("/camera/image-cache/p1")
    with pytest.raises(LinkPhotoRefused, match="host elsewhere.example is not one of"):
        fetch(f"{host.url}/go/https://elsewhere.example/x.jpg", (), policy_for(host))


def test_too_big_is_permanent(host):
    with pytest.raises(LinkPhotoRefused) as info:
        fetch(f"{host.url}/camera/image-cache/p1", (), policy_for(host, max_bytes=len(PHOTO) - 1))
    assert info.value.reason.startswith(links.TOO_LARGE)


def test_not_found_is_permanent_and_unavailable_is_transient(host):
    with pytest.raises(LinkPhotoRefused) as info:
        fetch(f"{host.url}/camera/image-cache/gone", (), policy_for(host))
    assert info.value.reason == f"{links.NOT_FOUND}: HTTP 404"
    host.fail_next(1, status=503, retry_after=42)
    with pytest.raises(LinkPhotoUnavailable) as unavailable:
        fetch(f"{host.url}/camera/image-cache/p1", (), policy_for(host))
    assert unavailable.value.retry_after == 42
    host.fail_next(1, status=403)
    with pytest.raises(LinkPhotoRefused, match="link_photo_refused: HTTP 403"):
        fetch(f"{host.url}/camera/image-cache/p1", (), policy_for(host))


def test_slow_host_is_transient(host):
    host.delay_next(1, seconds=0.6)
    with pytest.raises(LinkPhotoUnavailable, match="timeout"):
        fetch(f"{host.url}/camera/image-cache/p1", (), policy_for(host, timeout_s=0.2))


def test_connection_refused_is_transient():
    with FakePhotoHost() as gone:
        url, loc = f"{gone.url}/camera/image-cache/p1", netloc(gone)
    with pytest.raises(LinkPhotoUnavailable):
        fetch(url, (), LinkPolicy(allow_http_hosts=frozenset({loc})))


# --------------------------------------------------------------- recorded, fetched, scored (DB + blobs)
class StubScoring:
    """process-image's scoring port, answering 'nothing detected' (these tests are about the link)."""

    def __init__(self):
        self.seen: list[bytes] = []

    def detect(self, data, *, filename, content_type, lane="live"):
        self.seen.append(data)
        return ImageScore(detector="stub", detector_version="0", detections=[], night=False)

    def close(self):
        pass


@pytest.fixture
def svc(azurite, database_url, clean_db, clean_queues, monkeypatch, host):
    from functions.bootstrap import Services, reset_services
    from functions.settings import load_settings

    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SCORING_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LINK_PHOTO_ALLOW_HTTP_HOSTS", netloc(host))
    monkeypatch.setenv("LINK_PHOTO_TIMEOUT_S", "3")
    reset_services()
    services = Services(load_settings())
    services.scoring = StubScoring()
    yield services
    services.db.close()
    reset_services()


def linked_email(svc, url: str, *, taken_at=None, tz=None, brand="ridgetec") -> tuple[int, int, int]:
    """An accepted RidgeTec email of camera 'waterhole' with one photo given as ``url``: (email, camera,
    image) ids; recorded the way process-email records it (one transaction, outbox message included)."""
    db = svc.db
    park = db.fetchone(
        "INSERT INTO parks (slug, name, timezone) VALUES ('kruger', 'Kruger', 'Africa/Johannesburg') "
        "ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name RETURNING id"
    )["id"]
    camera = db.fetchone(
        "INSERT INTO cameras (park_id, name) VALUES (%s, 'waterhole') ON CONFLICT DO NOTHING RETURNING id",
        (park,),
    ) or db.fetchone("SELECT id FROM cameras WHERE name = 'waterhole'")
    cid = uuid.uuid4()
    with db.transaction() as cur:
        cur.execute(
            """INSERT INTO inbound_emails (dedupe_key, mode, status, park_id, camera_id, correlation_id,
                                           email_date)
               VALUES (%s, 'parsed', 'accepted', %s, %s, %s, %s) RETURNING id""",
            (f"test-{cid}", park, camera["id"], str(cid), datetime(2026, 11, 30, 20, 0, tzinfo=UTC)),
        )
        email_id = cur.fetchone()["id"]
        image_id = add_link_photo(
            cur,
            email_id=email_id,
            camera_id=camera["id"],
            url=url,
            filename="PICT0042.JPG",
            taken_at=taken_at,
            tz=tz,
            brand=brand,
        )
        again = add_link_photo(cur, email_id=email_id, camera_id=camera["id"], url=url, brand=brand)
        assert again == image_id  # idempotent: a redelivered email adds nothing
    return email_id, camera["id"], image_id


def outbox_message(svc, email_id: int) -> ProcessImage:
    rows = svc.db.fetchall("SELECT * FROM outbox WHERE scope = %s", (f"email:{email_id}",))
    assert len(rows) == 1, rows
    body = rows[0]["body"]
    body = json.loads(body) if isinstance(body, str) else body
    return ProcessImage.model_validate(body)


def image(svc, image_id: int) -> dict:
    return svc.db.fetchone("SELECT * FROM images WHERE id = %s", (image_id,))


def test_link_photo_recorded_then_fetched_stored_and_scored(svc, host):
    url = f"{host.url}/camera/image-cache/p1"
    email_id, camera_id, image_id = linked_email(
        svc, url, taken_at=datetime(2026, 11, 30, 14, 15, 22), tz="America/Los_Angeles"
    )
    row = image(svc, image_id)
    assert row["status"] == "linked" and row["source_url"] == url and row["blob_name"] is None
    assert row["attachment_index"] == -1 and row["source_brand"] == "ridgetec"
    assert row["taken_at_source"] == "vendor"
    assert row["taken_at"] == datetime(2026, 11, 30, 22, 15, 22, tzinfo=UTC)  # 14:15:22 in Los Angeles
    msg = outbox_message(svc, email_id)
    assert msg.image_id == image_id and msg.camera_id == camera_id

    decision = handle(msg, svc)

    row = image(svc, image_id)
    assert row["status"] == "scored" and decision is not None
    assert row["sha256"] == hashlib.sha256(PHOTO).hexdigest() and row["size_bytes"] == len(PHOTO)
    assert row["fetched_at"] is not None and row["width"] == 160
    assert row["taken_at_source"] == "exif"  # the photo's own EXIF time wins over the email's
    assert row["blob_name"] == f"kruger/waterhole/2026-11-30/{row['sha256']}.jpg"
    assert svc.storage.get_blob(names.IMAGES_CONTAINER, row["blob_name"]) == PHOTO
    assert svc.scoring.seen == [PHOTO]
    handle(msg, svc)  # redelivered: nothing fetched or scored again
    assert len(host.requests_to("/camera/image-cache/p1")) == 1 and svc.scoring.seen == [PHOTO]


def test_transient_failure_raises_for_a_retry_and_leaves_the_photo_waiting(svc, host):
    email_id, _, image_id = linked_email(svc, f"{host.url}/camera/image-cache/p1")
    msg = outbox_message(svc, email_id)
    host.fail_next(1, status=503, retry_after=30)
    with pytest.raises(LinkPhotoUnavailable) as info:
        handle(msg, svc)
    assert info.value.retry_after == 30  # the retry middleware waits at least this long
    assert image(svc, image_id)["status"] == "linked"
    handle(msg, svc)  # the retry
    assert image(svc, image_id)["status"] == "scored"


@pytest.mark.parametrize(
    "path, brand, code",
    [
        ("/camera/image-cache/gone", "ridgetec", links.NOT_FOUND),
        ("/camera/image-cache/page", "ridgetec", links.NOT_A_PHOTO),
        ("/camera/image-cache/p1", "uninstalled-brand", links.NO_ALLOW_LIST),
    ],
)
def test_permanent_failure_is_recorded_with_its_reason(svc, host, path, brand, code):
    email_id, _, image_id = linked_email(svc, f"{host.url}{path}", brand=brand)
    assert handle(outbox_message(svc, email_id), svc) is None
    row = image(svc, image_id)
    assert row["status"] == "failed" and row["reason"].startswith(code + ":")
    assert row["fetched_at"] is not None and svc.scoring.seen == []


def test_a_host_outside_the_allow_list_is_never_fetched(svc, host):
    email_id, _, image_id = linked_email(svc, "https://tracker.example/camera/image-cache/p1")
    assert handle(outbox_message(svc, email_id), svc) is None
    row = image(svc, image_id)
    assert row["status"] == "failed" and row["reason"].startswith(links.NOT_ALLOWED)
    assert "tracker.example" in row["reason"] and host.requests == []


def test_same_photo_again_is_not_scored_twice(svc, host):
    first_email, _, first = linked_email(svc, f"{host.url}/camera/image-cache/p1")
    handle(outbox_message(svc, first_email), svc)
    second_email, _, second = linked_email(svc, f"{host.url}/go/camera/image-cache/p1")
    assert handle(outbox_message(svc, second_email), svc) is None
    row = image(svc, second)
    assert row["status"] == "rejected" and row["reason"] == f"duplicate_photo: same photo as image {first}"
    assert svc.scoring.seen == [PHOTO]


def test_quarantined_email_link_is_recorded_without_a_message(svc, host):
    db = svc.db
    email_id, camera_id, _ = linked_email(svc, f"{host.url}/camera/image-cache/p1")
    with db.transaction() as cur:
        other = add_link_photo(
            cur,
            email_id=email_id,
            camera_id=camera_id,
            url=f"{host.url}/camera/image-cache/p2",
            brand="ridgetec",
            announce=False,
        )
    assert image(svc, other)["attachment_index"] == -2
    assert len(db.fetchall("SELECT * FROM outbox WHERE scope = %s", (f"email:{email_id}",))) == 1


def test_the_real_default_client_is_used_without_environment_proxies(host, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    got = fetch(f"{host.url}/camera/image-cache/p1", (), policy_for(host))
    assert got.data == PHOTO  # through a proxy from the environment it would fail


def test_a_link_photo_whose_message_was_lost_is_swept_again(svc, host):
    """The sweeper re-drives a photo still waiting to be fetched, like any photo left undecided."""
    from functions.adapters.sweeper_repo import SweeperRepository

    email_id, _, image_id = linked_email(svc, f"{host.url}/camera/image-cache/lost")
    svc.db.execute("DELETE FROM outbox WHERE scope = %s", (f"email:{email_id}",))  # the message was lost
    repo = SweeperRepository(svc.db)
    assert repo.stale_images(stale_s=300, window_s=6 * 3600) == []  # too fresh: it may be on its way
    svc.db.execute("UPDATE images SET created_at = now() - interval '10 minutes' WHERE id = %s", (image_id,))
    stale = repo.stale_images(stale_s=300, window_s=6 * 3600)
    assert [row["id"] for row in stale] == [image_id]
    assert image(svc, image_id)["status"] == "linked"
    repo.redrive(stale, [], "test-run")
    rows = svc.db.fetchall("SELECT * FROM outbox WHERE subject = %s", (f"image:{image_id}",))
    assert len(rows) == 1
    body = rows[0]["body"]
    message = ProcessImage.model_validate(json.loads(body) if isinstance(body, str) else body)
    assert (message.image_id, message.blob_name) == (image_id, "")
