"""Quarantine and release through the `trapalert inbound` CLI (in-process, real services)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from functions import names
from functions.cli import cli
from functions.inbound.sendgrid_payload import ImageFile

from .conftest import email_rows, image_rows, make_jpeg, payload, post, queue_messages


@pytest.fixture
def run(app_settings):
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        return result

    return invoke


def test_quarantined_list_show_and_release(webhook_host, registry, db, storage, run):
    photos = [ImageFile("a.jpg", make_jpeg(noise=True)), ImageFile("b.jpg", make_jpeg(color=(2, 3, 4)))]
    p = payload(
        photos,
        sender="new-camera@traps.example.org",
        to="unknown@alerts.example.org",
        subject="Photo from a camera nobody registered",
    )
    assert post(webhook_host, p).json()["status"] == "quarantined"
    [email] = email_rows(db)

    listed = run("inbound", "quarantined", "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.output)
    assert [r["id"] for r in rows] == [email["id"]]
    assert (
        rows[0]["reason"].startswith("unknown_sender") and rows[0]["sender"] == "new-camera@traps.example.org"
    )
    table = run("inbound", "quarantined")
    assert "unknown_sender" in table.output

    shown = json.loads(run("inbound", "show", str(email["id"]), "--json").output)
    assert shown["status"] == "quarantined" and shown["images"] == []
    assert shown["authenticated_by"] == ["dkim", "spf"] and shown["proofs"] == []  # authentic, but no camera
    text = run("inbound", "show", str(email["id"])).output
    assert "unknown_sender" in text and "no photos recorded" in text

    released = run("inbound", "release", str(email["id"]), "--camera", "CAM07", "--park", "park-x", "--json")
    assert released.exit_code == 0, released.output
    out = json.loads(released.output)
    assert out["status"] == "released" and out["queued"] == 2 and out["images_stored"] == 2
    [email] = email_rows(db)
    assert email["status"] == "released" and email["camera_id"] == registry["CAM07"]["id"]
    assert email["meta"]["quarantine_reason"].startswith("unknown_sender")
    imgs = image_rows(db)
    assert [i["status"] for i in imgs] == ["stored", "stored"]
    shown = run("inbound", "show", str(email["id"])).output
    assert "a.jpg: stored, camera CAM07 (park-x)" in shown
    assert all(i["blob_name"].startswith("park-x/CAM07/") for i in imgs)
    for i in imgs:
        assert storage.get_blob(names.IMAGES_CONTAINER, i["blob_name"])
    msgs = queue_messages(storage)
    assert sorted(m["image_id"] for m in msgs) == sorted(i["id"] for i in imgs)
    assert {m["correlation_id"] for m in msgs} == {str(email["correlation_id"])}

    # releasing again changes nothing; a SendGrid redelivery changes nothing either
    again = json.loads(run("inbound", "release", str(email["id"]), "--camera", "CAM07", "--json").output)
    assert again["queued"] == 0
    assert post(webhook_host, p).json()["status"] == "duplicate"
    assert len(image_rows(db)) == 2 and len(queue_messages(storage)) == 2
    assert run("inbound", "quarantined", "--json").output.strip() == "[]"


def test_release_errors_are_clear(webhook_host, registry, db, run):
    assert post(webhook_host, payload()).json()["status"] == "accepted"
    [email] = email_rows(db)
    r = run("inbound", "release", str(email["id"]), "--camera", "CAM07")
    assert r.exit_code != 0 and "not quarantined" in r.output
    assert run("inbound", "release", "999999", "--camera", "CAM07").exit_code != 0
    p = payload(sender="x@example.net", to="nobody@example.net", subject="?")
    assert post(webhook_host, p).json()["status"] == "quarantined"
    qid = email_rows(db)[-1]["id"]
    r = run("inbound", "release", str(qid), "--camera", "NO-SUCH-CAMERA")
    assert r.exit_code != 0 and "no camera" in r.output
    assert email_rows(db)[-1]["status"] == "quarantined"
