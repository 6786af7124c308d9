"""A camera is who it proves to be (issue 19): authenticity (aligned DKIM/SPF or the camera's token), the
proofs that name the camera (own sender, token, serial/EXIF serial), quarantine of everything else, dedup
that a forged Message-ID cannot defeat, and health facts moved only by accepted mail.

Each spoofing case states its expected outcome. The emails go through ``ingest.receive`` in-process (the
same code the webhook runs) against the real PostgreSQL and Azurite of the test session.
"""

from __future__ import annotations

import logging

import pytest

from functions.adapters.parks import CameraIn, ParkIn, ParkRepository, token_hash
from functions.inbound.ingest import receive
from functions.inbound.sendgrid_payload import ImageFile, build_payload

from .conftest import email_rows, image_rows, make_jpeg, queue_messages

PARK_T = "park-t@alerts.example.org"
PARK_R = "park-r@alerts.example.org"
OWN = "own@traps.example.org"
CUDDELINK = "Cuddeback <noreply@images.cuddelink.com>"
RELAY = "alerts@relay-vendor.example.net"  # a vendor cloud the park declared shared


@pytest.fixture
def svc(app_settings):
    from functions.bootstrap import services

    return services()


@pytest.fixture
def trust(clean_db, clean_queues):
    """park-t: a camera with its own sender, one with a token only, a CuddeLink network (home camera with a
    token, a satellite known by its serial), one behind a shared relay; park-r requires tokens."""
    repo = ParkRepository(clean_db)
    repo.add_park(ParkIn(slug="park-t", name="Park T", inbound_address=PARK_T, shared_senders=[RELAY]))
    repo.add_park(ParkIn(slug="park-r", name="Park R", inbound_address=PARK_R, require_token=True))
    return {
        "OWN-1": repo.add_camera("park-t", CameraIn(name="OWN-1", sender_addresses=[OWN])),
        "TOK-1": repo.add_camera("park-t", CameraIn(name="TOK-1")),
        "NET-1": repo.add_camera("park-t", CameraIn(name="NET-1", brand="cuddelink")),
        "NET-2": repo.add_camera(
            "park-t", CameraIn(name="NET-2", brand="cuddelink", serials=["00:AA:BB:CC:DD:EE"])
        ),
        "RELAY-1": repo.add_camera("park-t", CameraIn(name="RELAY-1", sender_addresses=[RELAY])),
        "R-1": repo.add_camera("park-r", CameraIn(name="R-1", sender_addresses=["r1@traps.example.org"])),
    }


def plus(address: str, token: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local}+{token}@{domain}"


def send(svc, *, sender=OWN, to=PARK_T, subject="motion", images=None, dkim="pass", **kw):
    """Build a SendGrid POST and receive it: (outcome, payload). ``dkim``: a result for the sender's own
    domain ("pass"), None (no field), or a whole field value (``{@attacker.tld : pass}``)."""
    dkim_field = dkim if dkim is not None and "{" in dkim else None
    p = build_payload(
        sender=sender,
        to=to,
        subject=subject,
        images=images if images is not None else [ImageFile("a.jpg", make_jpeg())],
        dkim=None if dkim_field else dkim,
        **kw,
    )
    body = p.body
    if dkim_field:  # the field as SendGrid writes it, for signatures of other domains than the sender's
        part = f'name="dkim"\r\n\r\n{dkim_field}\r\n--xYzZY\r\nContent-Disposition: form-data; name="to"'
        body = body.replace(b'name="to"', part.encode(), 1)
    return receive(body, {"content-type": p.content_type}, svc), p


def last_seen(db, camera) -> object:
    return db.fetchone("SELECT last_seen_at FROM cameras WHERE id = %s", (camera["id"],))["last_seen_at"]


def one_email(db) -> dict:
    [row] = email_rows(db)
    return row


# -- authenticity -----------------------------------------------------------------------------------------
def test_aligned_dkim_and_own_sender_is_accepted(svc, trust, db):
    out, _ = send(svc, spf="fail", subject="motion Battery: 55%")
    assert out.status == "accepted" and out.queued == 1
    email = one_email(db)
    assert email["authenticated_by"] == ["dkim"] and email["proofs"] == ["sender"]
    assert email["camera_id"] == trust["OWN-1"]["id"] and email["meta"]["battery_pct"] == 55
    [img] = image_rows(db)
    assert img["camera_id"] == trust["OWN-1"]["id"] and img["proofs"] == ["sender"]
    assert last_seen(db, trust["OWN-1"]) is not None


def test_dkim_of_the_organizational_domain_is_aligned(svc, trust, db):
    out, _ = send(svc, dkim="{@mail.traps.example.org : pass}", spf="none")
    assert out.status == "accepted"
    assert one_email(db)["authenticated_by"] == ["dkim"]


@pytest.mark.parametrize(
    "dkim, spf, envelope_from",
    [
        ("{@attacker.tld : pass}", "fail", None),  # DKIM of attacker.tld passes: it proves nothing
        ("{@traps.example.org : fail}", "softfail", None),  # the From domain's signature failed
        (None, "pass", "bounce@attacker.tld"),  # SPF passes for another domain
        ("{@attacker.tld : pass, @traps.example.org : fail}", "pass", "x@attacker.tld"),
    ],
    ids=["dkim-other-domain", "dkim-fail", "spf-other-domain", "both-unaligned"],
)
def test_unaligned_authentication_is_quarantined_and_moves_no_health_fact(
    svc, trust, db, storage, dkim, spf, envelope_from
):
    out, _ = send(svc, dkim=dkim, spf=spf, envelope_from=envelope_from, subject="OWN-1 motion Battery: 5%")
    assert out.status == "quarantined" and out.reason.startswith("unauthenticated")
    email = one_email(db)
    assert email["authenticated_by"] == [] and email["proofs"] == []
    assert "battery_pct" not in email["meta"]
    assert image_rows(db) == [] and queue_messages(storage) == []
    assert last_seen(db, trust["OWN-1"]) is None


def test_aligned_spf_alone_is_enough(svc, trust, db):
    out, _ = send(svc, dkim=None, spf="pass", envelope_from="bounce@traps.example.org")
    assert out.status == "accepted"
    assert one_email(db)["authenticated_by"] == ["spf"]


# -- the token ------------------------------------------------------------------------------------------
def test_the_token_authenticates_and_names_the_camera_on_its_own(svc, trust, db):
    token = trust["TOK-1"]["token"]
    out, _ = send(svc, sender="someone@freemail.example", to=plus(PARK_T, token), dkim=None, spf="none")
    assert out.status == "accepted"
    email = one_email(db)
    assert email["authenticated_by"] == ["token"] and email["proofs"] == ["token"]
    assert email["camera_id"] == trust["TOK-1"]["id"]


def test_tokens_are_stored_hashed_and_never_logged(svc, trust, db, caplog):
    token = trust["TOK-1"]["token"]
    row = db.fetchone("SELECT to_jsonb(c) AS j FROM cameras c WHERE id = %s", (trust["TOK-1"]["id"],))
    assert token not in str(row["j"]) and row["j"]["token_hash"] == token_hash(token)
    with caplog.at_level(logging.DEBUG):
        out, _ = send(svc, sender="someone@freemail.example", to=plus(PARK_T, token), dkim=None)
    assert out.status == "accepted" and token not in caplog.text
    email = one_email(db)
    assert token not in str(email["to_address"]) + str(email["meta"])


def test_token_rotation(svc, trust, db, clean_db):
    old = trust["TOK-1"]["token"]
    _row, new = ParkRepository(clean_db).rotate_token(trust["TOK-1"]["id"])
    assert new != old
    out, _ = send(svc, sender="someone@freemail.example", to=plus(PARK_T, old), dkim=None, spf="none")
    assert out.status == "quarantined" and out.reason.startswith("unknown_sender")  # the old token is nothing
    out, _ = send(svc, sender="someone@freemail.example", to=plus(PARK_T, new), dkim=None, spf="none")
    assert out.status == "accepted"
    assert email_rows(db)[-1]["camera_id"] == trust["TOK-1"]["id"]


def test_a_camera_name_as_plus_tag_or_in_the_subject_is_no_proof(svc, trust, db):
    out, _ = send(svc, sender="x@freemail.example", to=plus(PARK_T, "tok-1"), subject="[TOK-1] motion")
    assert out.status == "quarantined" and out.reason.startswith("unknown_sender")


def test_park_requiring_tokens(svc, trust, db):
    out, _ = send(svc, sender="r1@traps.example.org", to=PARK_R)
    assert out.status == "quarantined" and out.reason.startswith("token_required")
    # a token of another park's camera does not satisfy it either
    out, _ = send(svc, sender="r1@traps.example.org", to=plus(PARK_R, trust["TOK-1"]["token"]))
    assert out.status == "quarantined"
    out, _ = send(svc, sender="r1@traps.example.org", to=plus(PARK_R, trust["R-1"]["token"]))
    assert out.status == "accepted"
    assert sorted(email_rows(db)[-1]["proofs"]) == ["sender", "token"]


# -- vendor-shared senders --------------------------------------------------------------------------------
def cuddelink_photo(camera_id: str, serial: str | None = None, color=(1, 2, 3)) -> bytes:
    comment = f"ID={camera_id}" + (f",MA={serial}" if serial else "")
    return make_jpeg(color=color, user_comment=comment)


def test_shared_vendor_sender_without_token_or_serial_is_quarantined(svc, trust, db):
    photo = ImageFile("a.jpg", cuddelink_photo("NET-1"))
    out, _ = send(svc, sender=CUDDELINK, subject="NET-1 - 11/20/2026 - 2:14 AM", images=[photo])
    assert out.status == "quarantined" and out.reason.startswith("shared_sender"), out.reason
    assert image_rows(db) == [] and last_seen(db, trust["NET-1"]) is None


def test_a_sender_the_park_declares_shared_names_no_camera(svc, trust, db):
    out, _ = send(svc, sender=RELAY, subject="RELAY-1 motion")
    assert out.status == "quarantined" and out.reason.startswith("shared_sender")


def test_cuddelink_network_each_photo_is_its_own_camera(svc, trust, db):
    """Home camera NET-1 has the token; satellite NET-2 is named by the serial in its photo's EXIF."""
    photos = [
        ImageFile("home.jpg", cuddelink_photo("NET-1", color=(9, 9, 9))),
        ImageFile("sat.jpg", cuddelink_photo("NET-2", serial="00AABBCCDDEE", color=(8, 8, 8))),
    ]
    out, _ = send(
        svc,
        sender=CUDDELINK,
        to=plus(PARK_T, trust["NET-1"]["token"]),
        subject="NET-1 - 11/20/2026 - 2:14 AM",
        images=photos,
    )
    assert out.status == "accepted", out.reason
    home, sat = image_rows(db)
    assert (home["camera_id"], home["proofs"]) == (trust["NET-1"]["id"], ["token"])
    assert (sat["camera_id"], sat["proofs"]) == (trust["NET-2"]["id"], ["exif_serial"])
    assert sat["blob_name"].startswith("park-t/NET-2/")
    assert sorted(one_email(db)["proofs"]) == ["exif_serial", "token"]
    assert last_seen(db, trust["NET-1"]) is not None and last_seen(db, trust["NET-2"]) is not None
    msgs = {m["image_id"]: m["camera_id"] for m in queue_messages(svc.storage)}
    assert msgs == {home["id"]: trust["NET-1"]["id"], sat["id"]: trust["NET-2"]["id"]}


def test_a_photo_naming_an_unknown_camera_quarantines_the_email(svc, trust, db):
    photos = [ImageFile("x.jpg", cuddelink_photo("STRANGER-9"))]
    out, _ = send(svc, sender=CUDDELINK, to=plus(PARK_T, trust["NET-1"]["token"]), images=photos)
    assert out.status == "quarantined" and out.reason.startswith("unattributed_photo")


# -- dedup ------------------------------------------------------------------------------------------------
def test_forged_message_id_from_an_unauthenticated_sender_cannot_hide_the_genuine_email(svc, trust, db):
    mid = "<burst-1@traps.example.org>"
    forged, _ = send(svc, message_id=mid, dkim="{@attacker.tld : pass}", spf="fail")
    assert forged.status == "quarantined"
    genuine, _ = send(svc, message_id=mid)
    assert genuine.status == "accepted" and genuine.email_id != forged.email_id
    # a repeated forgery is a duplicate of the forgery, never of the genuine email
    again, _ = send(svc, message_id=mid, dkim="{@attacker.tld : pass}", spf="fail")
    assert again.status == "duplicate" and again.email_id == forged.email_id
    # ... and in the other order: a forgery after the genuine email is recorded (quarantined) on its own
    mid2 = "<burst-1b@traps.example.org>"
    genuine2, _ = send(svc, message_id=mid2)
    late, _ = send(svc, message_id=mid2, dkim="{@attacker.tld : pass}", spf="fail")
    assert (genuine2.status, late.status) == ("accepted", "quarantined")
    assert [e["status"] for e in email_rows(db)] == ["quarantined", "accepted", "accepted", "quarantined"]


def test_repeated_message_id_with_other_photos_is_a_new_email_the_same_photos_a_duplicate(svc, trust, db):
    mid = "<burst-2@traps.example.org>"
    first, p = send(svc, message_id=mid, images=[ImageFile("a.jpg", make_jpeg(color=(1, 1, 1)))])
    other, _ = send(svc, message_id=mid, images=[ImageFile("a.jpg", make_jpeg(color=(2, 2, 2)))])
    assert (first.status, other.status) == ("accepted", "accepted")
    assert first.email_id != other.email_id
    retry = receive(p.body, {"content-type": p.content_type}, svc)
    assert retry.status == "duplicate" and retry.email_id == first.email_id
    assert len(image_rows(db)) == 2


# -- ops view ---------------------------------------------------------------------------------------------
def test_cli_add_rotate_and_show(svc, trust, db):
    from click.testing import CliRunner

    from functions.cli import cli

    run = CliRunner()
    r = run.invoke(cli, ["cameras", "add", "NEW-1", "--park", "park-t", "--serial", "SN-998877"])
    assert r.exit_code == 0, r.output
    token = r.output.split("token: ", 1)[1].split()[0]
    assert f"park-t+{token}@alerts.example.org" in r.output
    stored = db.fetchone("SELECT token_hash, serials FROM cameras WHERE name = 'NEW-1'")
    assert stored == {"token_hash": token_hash(token), "serials": ["SN998877"]}
    # adding it again updates it and keeps the token
    r = run.invoke(cli, ["cameras", "add", "NEW-1", "--park", "park-t"])
    assert "token unchanged" in r.output and token not in r.output
    r = run.invoke(cli, ["cameras", "rotate-token", "NEW-1", "--park", "park-t"])
    assert r.exit_code == 0, r.output
    new = r.output.split("token: ", 1)[1].split()[0]
    row = db.fetchone("SELECT token_hash FROM cameras WHERE name = 'NEW-1'")
    assert new != token and row["token_hash"] == token_hash(new)

    out, _ = send(svc, to=plus(PARK_T, trust["OWN-1"]["token"]))
    shown = run.invoke(cli, ["inbound", "show", str(out.email_id)])
    assert shown.exit_code == 0, shown.output
    assert "authenticated by: dkim, spf, token" in shown.output
    assert "camera OWN-1 (park-t), proofs token, sender" in shown.output
    assert trust["OWN-1"]["token"] not in shown.output  # the recorded address says +<token>
    assert "park-t+<token>@alerts.example.org" in shown.output
    listed = run.invoke(cli, ["cameras", "list", "--park", "park-t", "--json"])
    assert "token_hash" not in listed.output


# -- brands' samples end to end ---------------------------------------------------------------------------
def test_ridgetec_link_photo_named_by_its_imei_is_recorded_and_queued(svc, trust, db, clean_db):
    from functions.inbound.brands import samples

    ParkRepository(clean_db).add_camera("park-t", CameraIn(name="RT-1", serials=["860000000000042"]))
    sample = samples.ridgetec(to=PARK_T)
    out = receive(sample.payload.body, {"content-type": sample.payload.content_type}, svc)
    assert out.status == "accepted" and out.queued == 1, out.reason
    [img] = image_rows(db)
    assert img["status"] == "linked" and img["source_url"] == sample.expected["url"]
    assert img["camera_id"] == email_rows(db)[0]["camera_id"]
    assert one_email(db)["proofs"] == ["serial"]
    [msg] = queue_messages(svc.storage)
    assert msg["image_id"] == img["id"] and msg["camera_id"] == img["camera_id"]
    # without a registered IMEI or token, the vendor's sender names no camera
    clean_db.execute("UPDATE cameras SET serials = '{}' WHERE name = 'RT-1'")
    again = samples.ridgetec(to=PARK_T, url="https://portal.ridgetec.com/camera/image-cache/other")
    out = receive(again.payload.body, {"content-type": again.payload.content_type}, svc)
    assert out.status == "quarantined" and out.reason.startswith("shared_sender")


def test_cuddelink_sample_without_registration_is_quarantined(svc, trust, db):
    from functions.inbound.brands import samples

    sample = samples.cuddelink(to=PARK_T)
    out = receive(sample.payload.body, {"content-type": sample.payload.content_type}, svc)
    assert out.status == "quarantined" and out.reason.startswith("shared_sender")


def test_simulate_camera_with_its_token(svc, trust, tmp_path):
    """`trapalert simulate camera --token`: a camera without a sender address mails its token address."""
    from click.testing import CliRunner

    from functions.cli import cli
    from tests.fakes import FakeServer, Reply

    class Hook(FakeServer):
        name = "webhook-recorder"

        def __init__(self):
            super().__init__()
            self.route("POST", r"/api/inbound/sendgrid", lambda req: Reply(200, {"status": "accepted"}))

    photo = tmp_path / "IMG_0001.JPG"
    photo.write_bytes(make_jpeg())
    token = trust["TOK-1"]["token"]
    with Hook() as hook:
        url = f"{hook.root_url}/api/inbound/sendgrid"
        args = ["simulate", "camera", "--camera", "TOK-1", "--park", "park-t", "--image", str(photo)]
        res = CliRunner().invoke(cli, [*args, "--token", token, "--url", url, "--timeout", "0.1"])
        (req,) = hook.requests
    assert req.form["to"] == plus(PARK_T, token) and token not in res.output
    # the webhook itself accepts that POST as TOK-1's
    out = receive(req.body, {"content-type": req.header("Content-Type")}, svc)
    assert out.status == "accepted"


def test_a_brand_reader_bug_does_not_lose_the_email(svc, trust, db, monkeypatch):
    from functions.inbound import ingest

    def broken(email, exif=None):
        raise RuntimeError("brand bug")

    monkeypatch.setattr(ingest, "read_email", broken)
    out, _ = send(svc)
    assert out.status == "accepted" and one_email(db)["proofs"] == ["sender"]
    assert "brand reading failed" in one_email(db)["meta"]["brand_notes"][0]
