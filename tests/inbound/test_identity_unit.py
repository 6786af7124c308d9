"""identify.py's decision without a database: authenticity x proof, one expected outcome per case."""

from __future__ import annotations

import pytest

from functions.adapters.parks import token_hash
from functions.inbound.brands import read_email
from functions.inbound.identify import Claims, PhotoClaim, identify, load_patterns
from functions.inbound.ingest import claims_of
from functions.inbound.parse_sendgrid import parse_request
from functions.inbound.sendgrid_payload import ImageFile, build_payload

PATTERNS = load_patterns()
PARK = {"id": 1, "slug": "park-x", "inbound_address": "park-x@alerts.example.org", "shared_senders": []}
TOKEN = "abcdefghijklmnopqrstuvwx"


def camera(cid: int, name: str, *, senders=(), serials=(), token=None, aliases=(), park=PARK) -> dict:
    return {
        "id": cid,
        "park_id": park["id"],
        "name": name,
        "aliases": list(aliases),
        "sender_addresses": list(senders),
        "serials": list(serials),
        "token_hash": token_hash(token) if token else None,
        "active": True,
        "park_row": park,
    }


CAMS = [
    camera(1, "OWN-1", senders=["own@traps.example.org"]),
    camera(2, "TOK-1", token=TOKEN),
    camera(3, "SER-1", serials=["861234567890123"]),
    camera(4, "RELAY-A", senders=["relay@park.example.org"], aliases=["CAM07"]),
    camera(5, "RELAY-B", senders=["relay@park.example.org"]),
]


def decide(claims=None, dkim_field=None, **kw):
    kw = {"sender": "own@traps.example.org", "to": "park-x@alerts.example.org", "subject": "motion", **kw}
    p = build_payload(images=[ImageFile("a.jpg", b"\xff\xd8\xff")], **kw)
    email = parse_request(p.body, p.content_type)
    if dkim_field is not None:  # signatures of other domains than the sender's, as SendGrid reports them
        email.dkim_results = dkim_field
    if claims is None:
        claims = claims_of(email, read_email(email))  # as process-email builds them
    tags = [r.split("+", 1)[1].split("@")[0] for r in email.recipients if "+" in r.split("@")[0]]
    return identify(email, claims, [PARK], CAMS, PATTERNS, {token_hash(t) for t in tags})


FREE = "x@freemail.example"
RELAY = "relay@park.example.org"
TO_TOKEN = f"park-x+{TOKEN}@alerts.example.org"
BOTH = ["dkim", "spf"]
CASES = [
    # id, email, expected camera, authenticated by, proofs, quarantine reason
    ("aligned", {}, "OWN-1", BOTH, ["sender"], None),
    (
        "dkim-attacker",
        {"dkim_field": [("attacker.tld", "pass")], "spf": "fail"},
        None,
        [],
        [],
        "unauthenticated",
    ),
    (
        "dkim-org-domain",
        {"dkim_field": [("mail.traps.example.org", "pass")], "spf": "none"},
        "OWN-1",
        ["dkim"],
        ["sender"],
        None,
    ),
    (
        "spf-other-domain",
        {"dkim": None, "spf": "pass", "envelope_from": "b@attacker.tld"},
        None,
        [],
        [],
        "unauthenticated",
    ),
    (
        "token-alone",
        {"sender": FREE, "to": TO_TOKEN, "dkim": None, "spf": "none"},
        "TOK-1",
        ["token"],
        ["token"],
        None,
    ),
    ("serial-in-body", {"sender": FREE, "text": "IMEI: 861234567890123"}, "SER-1", BOTH, ["serial"], None),
    (
        "serial-word-in-subject",
        {"sender": FREE, "subject": "861234567890123"},
        None,
        BOTH,
        [],
        "unknown_sender",
    ),
    ("relay-with-name", {"sender": RELAY, "subject": "CAM07 motion"}, "RELAY-A", BOTH, ["sender_name"], None),
    ("relay-without-name", {"sender": RELAY}, None, BOTH, [], "ambiguous_camera"),
    ("name-is-no-proof", {"sender": FREE, "subject": "[OWN-1] motion"}, None, BOTH, [], "unknown_sender"),
    ("conflicting-proofs", {"to": TO_TOKEN}, None, [*BOTH, "token"], [], "ambiguous_camera"),
    ("stranger-unsigned", {"sender": FREE, "dkim": None, "spf": "none"}, None, [], [], "unknown_sender"),
]


@pytest.mark.parametrize(
    "email, camera_name, auth, proofs, reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_cases(email, camera_name, auth, proofs, reason):
    ident = decide(**email)
    assert (ident.camera or {}).get("name") == camera_name
    assert ident.authenticated_by == auth
    assert ident.proofs == proofs
    assert (ident.quarantine_reason or "").split(":")[0] == (reason or "")


def test_vendor_shared_sender_names_no_camera_but_an_exif_serial_does():
    claims = Claims(brand="cuddelink", vendor_shared=True, photos=[PhotoClaim(1)])
    ident = decide(claims=claims)  # OWN-1's address, but the brand says the sender is the vendor's
    assert ident.camera is None and ident.quarantine_reason.startswith("shared_sender")
    claims = Claims(brand="cuddelink", vendor_shared=True, photos=[PhotoClaim(1, "X", "861234567890123")])
    ident = decide(claims=claims)
    assert ident.quarantine_reason is None
    assert ident.photos[1].camera["name"] == "SER-1" and ident.photos[1].proofs == ["exif_serial"]


def test_proof_and_auth_literals_match_the_migration_checks():
    """statuses.Proof / AuthMethod are the arrays of 0010_trust.sql's CHECK (x <@ ARRAY[...]) constraints."""
    import re
    import typing
    from pathlib import Path

    from functions import statuses

    sql = (Path(__file__).resolve().parents[2] / "functions/db/migrations/0010_trust.sql").read_text()
    checks = {
        m.group(1): set(re.findall(r"'([^']*)'", m.group(2)))
        for m in re.finditer(r"CHECK \((\w+) <@ ARRAY\[([^\]]*)\]", sql)
    }
    assert checks["authenticated_by"] == set(typing.get_args(statuses.AuthMethod))
    assert checks["proofs"] == set(typing.get_args(statuses.Proof))
    assert len(re.findall(r"CHECK \(proofs <@ ARRAY\[([^\]]*)\]", sql)) == 2  # emails and images alike
    assert len(set(re.findall(r"CHECK \(proofs <@ ARRAY\[([^\]]*)\]", sql))) == 1
