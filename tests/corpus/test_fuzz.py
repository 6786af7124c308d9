"""Hypothesis fuzzing of the inbound parser (functions/inbound/parse_sendgrid.py), both SendGrid modes.

Properties: whatever the bytes, ``parse_request`` returns an InboundEmail or raises ``Rejected`` (the one
documented error, which the webhook records and answers 200); and a valid photo embedded in a mutated form or
MIME message comes out as an attachment, byte for byte, whenever the mutation left its part intact. The
profile is fixed (derandomized, no example database, bounded examples) so CI runs the same cases each time.
"""

from __future__ import annotations

import base64
from datetime import UTC

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.inbound.images import inspect_image
from functions.inbound.parse_sendgrid import InboundEmail, parse_request
from functions.inbound.reasons import Rejected
from functions.inbound.sendgrid_payload import ImageFile, build_payload
from tests.inbound.conftest import make_jpeg

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PHOTO = make_jpeg(48, 32, color=(70, 140, 210))
CT = "multipart/form-data; boundary=xYzZY"
TEMPLATES = {
    mode: build_payload(
        sender="cam01@traps.example.org",
        to="park-x@alerts.example.org",
        subject="CAM01 motion",
        images=[ImageFile("fuzz.jpg", PHOTO)],
        mode=mode,
        message_id="<fuzz@x>",
    ).body
    for mode in ("parsed", "raw")
}


def parse(body: bytes, content_type: str | None = CT) -> InboundEmail | None:
    try:
        email = parse_request(body, content_type, max_parts=140)
    except Rejected as exc:
        assert exc.code and exc.reason.startswith(exc.code)
        return None
    assert isinstance(email, InboundEmail) and email.mode in ("parsed", "raw")
    for att in email.attachments:
        assert att.filename is None or not any(c in att.filename for c in "/\\\x00")
        assert isinstance(att.data, bytes)
    return email


def test_templates_parse_to_the_photo():
    for body in TEMPLATES.values():
        email = parse(body)
        assert email is not None and [a.data for a in email.attachments] == [PHOTO]


@FUZZ
@given(
    st.binary(max_size=3000),
    st.sampled_from([CT, "multipart/form-data; boundary=a", None, "text/plain", "multipart/form-data"]),
)
def test_arbitrary_bytes_never_raise_anything_else(body, content_type):
    parse(body, content_type)


@FUZZ
@given(mode=st.sampled_from(["parsed", "raw"]), data=st.data())
def test_mutated_bodies_keep_the_photo_when_its_part_is_intact(mode, data):
    body = bytearray(TEMPLATES[mode])
    photo_at = _photo_span(bytes(body), mode)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        pos = data.draw(st.integers(0, len(body)), label="position")
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "crlf", "boundary"]), label="kind")
        chunk = {
            "flip": bytes([data.draw(st.integers(0, 255))]),
            "insert": data.draw(st.binary(min_size=1, max_size=16)),
            "delete": b"",
            "crlf": b"\r\n",
            "boundary": b"\r\n--xYzZY\r\n",
        }[kind]
        end = pos + (1 if kind in ("flip", "delete") else 0)
        body[pos:end] = chunk
        if photo_at is not None:  # does the mutation land before, inside or after the photo's part?
            start, stop = photo_at
            shift = len(chunk) - (end - pos)
            if end <= start:
                photo_at = (start + shift, stop + shift)
            elif pos < stop:
                photo_at = None
    email = parse(bytes(body))
    if photo_at is not None and email is not None and mode == "parsed":
        # the part is intact: if the form still decodes, the photo is an attachment, unchanged
        assert PHOTO in [a.data for a in email.attachments]


def _photo_span(body: bytes, mode: str) -> tuple[int, int] | None:
    """The bytes of the photo's whole part (headers and data) in the template."""
    if mode == "parsed":
        start = body.index(b'--xYzZY\r\nContent-Disposition: form-data; name="attachment1"')
        return start, body.index(PHOTO) + len(PHOTO) + 2
    return None


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=B\r\n",
                b"Content-Type: multipart/mixed\r\n",
                b"Content-Type: message/rfc822\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"Content-Transfer-Encoding: quoted-printable\r\n",
                b'Content-Disposition: attachment; filename="../x.jpg"\r\n',
                b"Content-Type: text/plain; charset=x-bogus\r\n",
                b"Subject: =?x-bogus?B?////?=\r\n",
                b"\r\n",
                b"--B\r\n",
                b"--B--\r\n",
                b"\xff\xfe\x00",
                b"=?utf-8?Q?=FF?=",
                b"From: a@b\r\n",
                b"AAAA====\r\n",
            ]
        ),
        max_size=25,
    ),
    st.binary(max_size=200),
)
def test_raw_mime_oddities_never_raise_anything_else(pieces, tail):
    mime = b"From: cam01@traps.example.org\r\nTo: park-x@alerts.example.org\r\n" + b"".join(pieces) + tail
    from functions.inbound.sendgrid_payload import FormBuilder

    fb = FormBuilder().add("to", "park-x@alerts.example.org").add("email", mime)
    email = parse(fb.build(), fb.content_type)
    assert email is not None and email.mode == "raw"  # it has headers: always an email, never a crash


@FUZZ
@given(st.lists(st.binary(max_size=300), min_size=0, max_size=3), st.integers(0, 2))
def test_raw_mime_with_junk_parts_keeps_the_photo(junk_parts, position):
    """Junk leaf parts around a well-formed photo part never hide or alter the photo."""
    photo_part = (
        b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="p.jpg"\r\n\r\n' + base64.encodebytes(PHOTO)
    )
    parts = [
        b"Content-Type: application/octet-stream\r\n\r\n" + j.replace(b"--B", b"-_B") for j in junk_parts
    ]
    parts.insert(min(position, len(parts)), photo_part)
    mime = (
        b"From: cam01@traps.example.org\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        + b"".join(b"--B\r\n" + p + b"\r\n" for p in parts)
        + b"--B--\r\n"
    )
    from functions.inbound.sendgrid_payload import FormBuilder

    fb = FormBuilder().add("to", "park-x@alerts.example.org").add("email", mime)
    email = parse(fb.build(), fb.content_type)
    assert email is not None and PHOTO in [a.data for a in email.attachments]


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(["image/jpeg", "image/png", None, "application/pdf"]))
def test_inspect_image_never_raises(data, declared):
    from datetime import datetime

    for blob in (data, b"\xff\xd8\xff" + data, b"\x89PNG\r\n\x1a\n" + data, PHOTO[: len(data) % len(PHOTO)]):
        check = inspect_image(
            blob,
            declared_type=declared,
            max_pixels=10_000_000,
            tz="Africa/Johannesburg",
            email_date=None,
            received_at=datetime.now(UTC),
        )
        assert check.status in ("stored", "rejected", "unsupported")
        assert (check.status == "stored") == (check.reason is None or check.reason.startswith("filename"))
