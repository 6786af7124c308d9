"""Upload ingest (functions/inbound/upload.py) against PostgreSQL and Azurite: photos and zips of photos for
one camera take the emailed photos' path (same checks, same blob names, same repository and outbox), on the
bulk lane, deduplicated, with the uploader recorded and audited; hostile zips are refused with the reason."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from click.testing import CliRunner

from functions import names
from functions.adapters.audit_repo import AuditRepository
from functions.inbound.upload import UploadError, receive_upload
from tests.inbound.conftest import make_jpeg


@pytest.fixture
def svc(seeded, app_settings, clean_queues, monkeypatch):
    from functions.bootstrap import reset_services, services

    monkeypatch.setenv("UPLOAD_MAX_FILES", "6")
    reset_services()
    yield services()
    reset_services()


def photos(n: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [
        (
            f"IMG_{i:04d}.JPG",
            make_jpeg(64, 48, color=(10 * i, 200 - 10 * i, 90), exif_time="2026:11:30 21:15:00"),
        )
        for i in range(start, start + n)
    ]


def zipped(members: list[tuple[str, bytes]], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def upload(svc, files, **kw):
    return receive_upload(
        svc,
        park_slug="mara",
        camera_name="gate-1",
        files=files,
        tz=kw.pop("tz", None),
        uploader=kw.pop("uploader", "ranger-asha"),
        **kw,
    )


def test_photos_go_through_the_email_path_on_the_bulk_lane_and_a_repeat_is_a_duplicate(svc, seeded):
    db = svc.db
    files = photos(3) + [("notes.txt", b"not a photo at all")]
    got = upload(svc, files, tz="Africa/Nairobi", uploader_role="ranger", via="console")
    assert [r["status"] for r in got] == ["stored", "stored", "stored", "unsupported"]
    assert got[3]["reason"].startswith("not_an_image")
    ids = [r["image_id"] for r in got[:3]]
    rows = db.fetchall(
        "SELECT i.id, i.blob_name, i.status, i.taken_at, e.mode, e.sender, e.status AS email_status "
        "FROM images i JOIN inbound_emails e ON e.id = i.email_id ORDER BY i.id"
    )
    assert [r["id"] for r in rows] == ids
    assert {(r["mode"], r["sender"], r["email_status"], r["status"]) for r in rows} == {
        ("upload", "ranger-asha", "accepted", "stored")
    }
    assert all(r["blob_name"].startswith("mara/gate-1/2026-11-30/") for r in rows)
    assert rows[0]["taken_at"].isoformat() == "2026-11-30T18:15:00+00:00"  # EXIF read in the given zone
    assert svc.storage.get_blob(names.IMAGES_CONTAINER, rows[0]["blob_name"]) == files[0][1]
    # each photo's message went to the bulk lane, none to the live one
    outbox = db.fetchall("SELECT queue, key, body, sent_at FROM outbox ORDER BY id")
    assert [o["queue"] for o in outbox] == [names.BULK_IMAGE_QUEUE] * 3 and all(o["sent_at"] for o in outbox)
    assert [o["key"] for o in outbox] == [f"bulk:upload:{i}" for i in ids]
    body = outbox[0]["body"] if isinstance(outbox[0]["body"], dict) else json.loads(outbox[0]["body"])
    assert body["purpose"] == "upload" and body["image_id"] == ids[0]
    assert svc.storage.queue_depth(names.BULK_IMAGE_QUEUE) == 3
    assert svc.storage.queue_depth(names.PROCESS_IMAGE_QUEUE) == 0
    # the same photos again: duplicates, nothing stored or queued twice
    again = upload(svc, files[:2])
    assert [(r["status"], r["image_id"]) for r in again] == [("duplicate", ids[0]), ("duplicate", ids[1])]
    assert db.fetchone("SELECT count(*) AS n FROM images")["n"] == 3
    assert svc.storage.queue_depth(names.BULK_IMAGE_QUEUE) == 3
    audit = AuditRepository(db).list(seeded.park_id)
    assert [a["action"] for a in audit] == ["upload.received", "upload.received"]
    assert audit[1]["actor"] == "ranger-asha" and audit[1]["details"]["counts"] == {
        "stored": 3,
        "unsupported": 1,
    }


def test_a_zip_is_expanded_and_hostile_zips_are_refused_with_the_reason(svc):
    [known] = photos(1)
    upload(svc, [known])
    archive = zipped(
        [
            ("DCIM/" + known[0], known[1]),
            *[("DCIM/" + n, d) for n, d in photos(2, 5)],
            ("__MACOSX/._IMG_0005.JPG", b"resource fork"),
            (".DS_Store", b"x"),
        ]
    )
    traversal = zipped([("../../etc/cron.d/evil.jpg", known[1])])
    bomb = zipped([("huge.jpg", b"\0" * (20 * 1024 * 1024))])
    nested = zipped([("inner.zip", zipped(photos(1, 9)))], method=zipfile.ZIP_STORED)
    got = upload(
        svc,
        [
            ("sd.zip", archive),
            ("evil.zip", traversal),
            ("bomb.zip", bomb),
            ("nest.zip", nested),
            ("broken.zip", b"PK\x03\x04 truncated"),
        ],
    )
    by_file = {r["file"]: r for r in got}
    assert by_file["sd.zip/DCIM/IMG_0000.JPG"]["status"] == "duplicate"
    assert [by_file[f"sd.zip/DCIM/IMG_000{i}.JPG"]["status"] for i in (5, 6)] == ["stored", "stored"]
    assert not any("__MACOSX" in f or "DS_Store" in f for f in by_file)
    assert (
        by_file["evil.zip"]["status"] == "rejected" and "leaves the archive" in by_file["evil.zip"]["reason"]
    )
    assert by_file["bomb.zip"]["status"] == "rejected" and "zip bomb" in by_file["bomb.zip"]["reason"]
    assert by_file["nest.zip/inner.zip"]["reason"].startswith("nested_archive")
    assert by_file["broken.zip"]["reason"].startswith("zip_refused")
    assert svc.db.fetchone("SELECT count(*) AS n FROM images")["n"] == 3


def test_limits_unknown_camera_and_the_cli(svc, tmp_path, monkeypatch):
    got = upload(svc, photos(8))
    assert [r["status"] for r in got].count("stored") == 6  # UPLOAD_MAX_FILES=6
    assert got[-1]["status"] == "rejected" and got[-1]["reason"].startswith("too_many_files")
    with pytest.raises(UploadError):
        receive_upload(svc, park_slug="mara", camera_name="nope", files=photos(1), tz=None, uploader="x")
    with pytest.raises(UploadError):
        upload(svc, photos(1), tz="Mars/Olympus")

    from functions.cli import cli

    monkeypatch.setenv("TRAPALERT_ACTOR", "op-cli")
    (tmp_path / "a.jpg").write_bytes(photos(1, 20)[0][1])
    (tmp_path / "b.zip").write_bytes(zipped(photos(1, 21)))
    out = CliRunner().invoke(
        cli,
        [
            "upload",
            "--park",
            "mara",
            "--camera",
            "gate-1",
            "--tz",
            "UTC",
            "--json",
            str(tmp_path / "a.jpg"),
            str(tmp_path / "b.zip"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert [r["status"] for r in json.loads(out.output)] == ["stored", "stored"]
    assert svc.db.fetchone("SELECT sender FROM inbound_emails ORDER BY id DESC LIMIT 1")["sender"] == "op-cli"


def test_a_photo_the_camera_already_emailed_is_a_duplicate(svc, seeded):
    import hashlib

    [(name, data)] = photos(1, 30)
    with svc.db.transaction() as cur:
        cur.execute(
            "INSERT INTO inbound_emails (dedupe_key, mode, status, park_id, camera_id, correlation_id) "
            "VALUES ('mid:x', 'parsed', 'accepted', %s, %s, gen_random_uuid()) RETURNING id",
            (seeded.park_id, seeded.camera_id),
        )
        email_id = cur.fetchone()["id"]
        cur.execute(
            "INSERT INTO images (email_id, attachment_index, park_id, camera_id, sha256, status, "
            "correlation_id) VALUES (%s, 1, %s, %s, %s, 'scored', gen_random_uuid()) RETURNING id",
            (email_id, seeded.park_id, seeded.camera_id, hashlib.sha256(data).hexdigest()),
        )
        image_id = cur.fetchone()["id"]
    [got] = upload(svc, [(name, data)])
    assert (got["status"], got["image_id"]) == ("duplicate", image_id) and "already sent" in got["reason"]
    assert svc.storage.queue_depth(names.BULK_IMAGE_QUEUE) == 0


def test_a_clip_from_an_sd_card_is_stored_as_video_on_the_bulk_lane(svc, tmp_path):
    """Uploads take video clips like emails do (functions/inbound/video.py); process-image's video path
    scores them (tests/video)."""
    from tests.video.controlled import blank_frame, write_clip

    clip = write_clip(tmp_path / "clip.avi", "MJPG", [blank_frame(seed=i) for i in range(6)], fps=3.0)
    got = upload(svc, [("PICT0001.AVI", clip)])
    assert [r["status"] for r in got] == ["stored"]
    row = svc.db.fetchone("SELECT content_type, blob_name FROM images WHERE id = %s", (got[0]["image_id"],))
    assert row["content_type"] == "video/x-msvideo"
    assert svc.storage.get_blob(names.IMAGES_CONTAINER, row["blob_name"]) == clip
    assert svc.storage.queue_depth(names.BULK_IMAGE_QUEUE) == 1


def test_a_lost_upload_message_is_swept_back_onto_the_bulk_lane_once_it_drained(svc):
    """The sweeper never moves an upload's backlog onto the live lane, and waits while the bulk lane is
    busy."""
    from functions.handlers import sweeper

    got = upload(svc, photos(1))
    image_id = got[0]["image_id"]
    svc.db.execute("UPDATE images SET created_at = now() - interval '10 minutes' WHERE id = %s", (image_id,))
    svc.db.execute("UPDATE outbox SET sent_at = now() - interval '10 minutes'")
    # its message still waits on the busy bulk lane: nothing is swept
    assert svc.storage.queue_depth(names.BULK_IMAGE_QUEUE) == 1
    assert sweeper.handle(None, svc)["images"] == 0
    # the lane drained and the photo is still undecided (its message was lost): swept back to the bulk lane
    svc.storage.queue(names.BULK_IMAGE_QUEUE).clear_messages()
    assert sweeper.handle(None, svc)["images"] == 1
    assert svc.storage.queue_depth(names.PROCESS_IMAGE_QUEUE) == 0
    assert svc.storage.queue_depth(names.BULK_IMAGE_QUEUE) == 1
    row = svc.db.fetchone("SELECT queue, body FROM outbox WHERE key LIKE 'sweep:image:%'")
    body = row["body"] if isinstance(row["body"], dict) else json.loads(row["body"])
    assert row["queue"] == names.BULK_IMAGE_QUEUE and (body["purpose"], body["image_id"]) == (
        "upload",
        image_id,
    )
