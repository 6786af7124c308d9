"""Bounded parsing (functions/inbound/parse_sendgrid.py) and patterns with timeouts (patterns.py), without
services: what is cut, what is refused and with which reason. The webhook-level cases (status 200, the
recorded reason, the raw email kept) are the "bounds" category of tests/corpus/cases.py; their timings are
printed by bench/inbound_bounds.py, never asserted."""

from __future__ import annotations

from email.feedparser import BytesFeedParser

import pytest
import regex

from functions.inbound import parse_sendgrid
from functions.inbound.parse_sendgrid import ParseOptions, parse_mime, parse_request
from functions.inbound.patterns import PATTERN_TIMEOUT, safe_compile, search
from functions.inbound.reasons import MIME_TOO_COMPLEX, TOO_MANY_ATTACHMENTS, Rejected
from functions.inbound.sendgrid_payload import build_payload
from tests.corpus.cases import (
    CATASTROPHIC_PATTERN,
    SPYPOINT_QUADRATIC,
    deep_mime,
    many_parts_mime,
    mime_message,
    raw_form,
)

OLD_SPYPOINT = r"\bSPYPOINT\b.*?\bfrom\s+(?P<camera>[A-Za-z0-9][A-Za-z0-9_.-]{0,40}[A-Za-z0-9]|[A-Za-z0-9])"


def _post(mode="parsed", **kw):
    kw.setdefault("subject", "CAM01 motion")
    p = build_payload(sender="cam01@traps.example.org", to="park-x@alerts.example.org", mode=mode, **kw)
    return parse_request(p.body, p.content_type)


# ------------------------------------------------------------------------------------------ patterns
def test_a_catastrophic_pattern_answers_no_match_and_records_a_defect():
    rx = safe_compile(r"^(?P<camera>(a|aa)+)$", name="evil")
    defects: list[str] = []
    assert rx.search("a" * 60 + "!", defects) is None
    assert rx.timed_out and rx.timeouts == 1
    assert defects and defects[0].startswith(f"{PATTERN_TIMEOUT}: evil after ")
    # the same object still works, and a later call that does not time out clears the flag
    assert rx.search("aaaa").group("camera") == "aaaa" and not rx.timed_out


def test_finditer_keeps_the_matches_found_before_a_timeout_and_stops_at_the_limit():
    rx = safe_compile(r"CAM\d")
    assert [m.group() for m in rx.finditer("CAM1 CAM2 CAM3", limit=2)] == ["CAM1", "CAM2"]
    defects: list[str] = []
    assert safe_compile(r"(x+x+)+y").finditer("x" * 5000, defects) == [] and defects


def test_after_the_per_email_budget_of_timeouts_the_rest_is_skipped():
    from functions.inbound.patterns import MAX_TIMEOUTS_PER_EMAIL, PATTERN_BUDGET

    evil, fine = safe_compile(r"(x+x+)+y"), safe_compile(r"x")
    defects: list[str] = []
    for _ in range(MAX_TIMEOUTS_PER_EMAIL + 3):
        assert evil.search("x" * 5000, defects) is None
    assert sum(d.startswith(PATTERN_TIMEOUT) for d in defects) == MAX_TIMEOUTS_PER_EMAIL
    assert sum(d.startswith(PATTERN_BUDGET) for d in defects) == 1
    assert fine.search("xyz", defects) is None and fine.timed_out  # this email's budget is spent
    assert fine.search("xyz", []).group() == "x"  # another email's is not


def test_the_old_spypoint_pattern_on_the_72kb_subject_is_stopped():
    defects: list[str] = []
    assert search(OLD_SPYPOINT, SPYPOINT_QUADRATIC, defects=defects, flags=regex.IGNORECASE) is None
    assert defects and PATTERN_TIMEOUT in defects[0]


@pytest.mark.parametrize("bad", ["(unclosed", "x" * 3000, "[z-a]"])
def test_invalid_or_overlong_patterns_fail_at_compile_time(bad):
    with pytest.raises(ValueError):
        safe_compile(bad)


def test_the_configured_catastrophic_pattern_is_valid_so_it_reaches_run_time():
    import json

    [entry] = json.loads(CATASTROPHIC_PATTERN)
    assert "camera" in safe_compile(entry["regex"]).groupindex


# ---------------------------------------------------------------------------------------- cut fields
@pytest.mark.parametrize("mode", ["parsed", "raw"])
def test_subject_and_body_are_cut_before_any_pattern_runs(mode):
    email = _post(mode, subject=SPYPOINT_QUADRATIC, text="Camera Name: CAM01\n" + "x" * 100_000)
    assert len(email.subject) == 1000 and email.subject == SPYPOINT_QUADRATIC[:1000].strip()
    assert len(email.text) == 64 * 1024 and email.text.startswith("Camera Name: CAM01")
    assert any(d.startswith("subject_cut: 72000") for d in email.defects), email.defects
    assert any(d.startswith("text_cut: ") for d in email.defects), email.defects


def test_html_is_kept_and_cut_too():
    email = _post(html="<p>" + "y" * 70_000 + "</p>")
    assert len(email.html) == 64 * 1024 and any(d.startswith("html_cut") for d in email.defects)


def test_limits_come_from_the_options():
    p = build_payload(sender="c@x.example", to="p@y.example", subject="s" * 500, text="t" * 5000)
    email = parse_request(
        p.body, p.content_type, options=ParseOptions(max_subject_chars=100, max_body_chars=2000)
    )
    assert (len(email.subject), len(email.text)) == (100, 2000)


def test_options_from_settings_read_each_bound():
    class S:
        max_subject_chars, max_body_chars, max_header_bytes = 200, 3000, 9000
        max_mime_parts, max_mime_depth, max_mime_lines = 50, 7, 20_000
        inbound_trusted_authserv_ids = "MX.Park.Example, other"

    o = ParseOptions.from_settings(S())
    assert (o.max_subject_chars, o.max_body_chars, o.max_header_bytes) == (200, 3000, 9000)
    assert (o.max_mime_parts, o.max_mime_depth, o.max_mime_lines) == (50, 7, 20_000)
    assert o.trusted_authserv_ids == ("mx.park.example", "other")


def test_a_huge_headers_field_is_cut_at_a_line_end():
    from tests.corpus.cases import GOOD, base_fields, form

    headers = b"Message-ID: <m1@x>\r\n" + b"X-Junk: " + b"(" * 400_000 + b"\r\n"
    r = form(*base_fields(), ("headers", headers), ("attachment1", GOOD, "g.jpg", "image/jpeg"))
    email = parse_request(r.body, r.headers["Content-Type"])
    assert email.message_id == "m1@x" and len(email.attachments) == 1
    assert any(d.startswith("headers_cut: ") for d in email.defects)


# ------------------------------------------------------------------------------------------ raw MIME
def test_mime_parts_are_counted_while_parsing_not_after():
    created = []
    original = parse_sendgrid._Splitter.message

    def spy(self, start, end, depth, default_type=None):
        created.append(depth)
        return original(self, start, end, depth, default_type)

    parse_sendgrid._Splitter.message = spy
    try:
        with pytest.raises(Rejected) as info:
            parse_mime(many_parts_mime(20_000), ParseOptions(max_mime_parts=200))
    finally:
        parse_sendgrid._Splitter.message = original
    assert info.value.code == TOO_MANY_ATTACHMENTS and "more than 200 MIME parts" in info.value.reason
    assert len(created) == 201  # the split stopped at the first part over the limit


def test_thousands_of_nesting_levels_are_refused_without_recursion_error():
    with pytest.raises(Rejected) as info:
        parse_mime(deep_mime(2500))
    assert info.value.code == MIME_TOO_COMPLEX and "deeper than 20" in info.value.reason


def test_nesting_within_the_limit_still_parses():
    msg = parse_mime(deep_mime(15))
    assert [p.get_content_type() for p in msg.walk()][-1] == "image/jpeg"


def test_lines_cost_nothing_to_the_splitter_and_the_photo_comes_out_whole():
    import base64
    import os

    photo = os.urandom(2_300_000)  # ~31,000 base64 lines of 76 characters
    part = b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(
        photo
    ).replace(b"\n", b"\r\n")
    text = b"Content-Type: text/plain\r\n\r\nCamera Name: CAM01\r\n" + b"\n" * 600_000
    raw = mime_message(
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        + text
        + b"--b\r\n"
        + part
        + b"--b--\r\n"
    )
    defects: list[str] = []
    msg = parse_mime(raw, ParseOptions(max_mime_lines=10_000), defects)  # the line limit is the fallback's
    leaves = [p for p in msg.walk() if not p.is_multipart()]
    assert leaves[0].get_content().startswith("Camera Name: CAM01\r\n\n\n")
    assert leaves[1].get_payload(decode=True) == photo and defects == []


def test_deep_nesting_over_a_30mb_leaf_is_not_scanned_once_per_level():
    """Each level looks only at the delimiter candidates (lines beginning with "--") found once for the
    whole message, so 19 levels over 29 MB do not scan 19 x 29 MB (that took 6 s)."""
    levels = 18
    head = b"".join(
        f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n'.encode()
        for i in range(levels)
    )
    tail = b"".join(f"\r\n--b{i}--\r\n".encode() for i in reversed(range(levels + 1)))
    leaf = f"--b{levels}\r\nContent-Type: text/plain\r\n\r\n".encode() + b"x" * 70 + b"\r\n--b1x\r\n"
    raw = mime_message(b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n' + head + leaf + tail)
    splitter = parse_sendgrid._Splitter(raw, ParseOptions(), [])
    msg = splitter.message(0, len(raw), 0)
    assert len(splitter.delimiters[b"b1"]) == 2 and splitter.delimiters[b"b1x"]  # indexed once, by boundary
    leaves = [p for p in msg.walk() if not p.is_multipart()]
    assert len(leaves) == 1 and leaves[0].get_payload().rstrip().endswith(
        "--b1x"
    )  # not a delimiter of b1 here


def test_header_blocks_of_all_parts_together_are_bounded():
    fat = b"Content-Type: text/plain\r\n" + b"a:b\r\n" * 50_000 + b"\r\nx\r\n"  # 250 KB of header lines
    raw = mime_message(
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"".join(b"--b\r\n" + fat for _ in range(20))
    )
    with pytest.raises(Rejected) as info:
        parse_mime(raw)
    assert (
        info.value.code == MIME_TOO_COMPLEX and "header blocks over 524288 bytes in all" in info.value.reason
    )


def test_too_many_delimiter_candidates_are_refused():
    raw = mime_message(b"Content-Type: text/plain\r\n\r\n" + b"--x\r\n" * 120_000)
    with pytest.raises(Rejected) as info:
        parse_mime(raw)
    assert info.value.code == MIME_TOO_COMPLEX and "lines begin with '--'" in info.value.reason


def test_the_fallback_parser_refuses_too_many_lines_before_parsing():
    raw = mime_message(b"Content-Type: text/plain\r\n\r\n" + b"\n" * 600_000)
    with pytest.raises(Rejected) as info:
        parse_sendgrid._parse_with_feedparser(raw, ParseOptions())
    assert info.value.code == MIME_TOO_COMPLEX and "600007 lines, limit 500000" in info.value.reason


def test_a_splitter_failure_falls_back_to_the_standard_parser(monkeypatch):
    def broken(self, start, end, depth, default_type=None):
        raise LookupError("a bug")

    monkeypatch.setattr(parse_sendgrid._Splitter, "message", broken)
    defects: list[str] = []
    msg = parse_mime(deep_mime(3), defects=defects)
    assert [p.get_content_type() for p in msg.walk()][-1] == "image/jpeg"
    assert defects == ["mime_splitter_failed: LookupError"]


def test_a_header_block_over_the_limit_is_cut_and_the_body_still_parsed():
    raw = mime_message(b"Content-Type: text/plain\r\n\r\nhello\r\n", extra_headers="X-A: b\r\n" * 50_000)
    defects: list[str] = []
    msg = parse_mime(raw, ParseOptions(max_header_bytes=64 * 1024), defects)
    assert msg["Subject"] == "CAM01 raw" and any(d.startswith("headers_cut") for d in defects)


def test_a_header_with_thousands_of_nested_comments_is_no_crash():
    part = (
        b"Content-Type: image/jpeg; name="
        + b"(" * 5000
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
    )
    r = raw_form(
        mime_message(b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n' + part + b"--b--\r\n")
    )
    try:
        email = parse_request(r.body, r.headers["Content-Type"])
    except Rejected as exc:  # refused with a reason is fine; an exception of another kind is not
        assert exc.code == MIME_TOO_COMPLEX
    else:
        assert len(email.attachments) == 1


def test_the_parser_hook_this_module_relies_on_exists():
    """The fallback _BoundedParser overrides FeedParser._new_message and reads _msgstack: if a Python version
    renames them, its bounds would silently stop counting. This test fails first."""
    p = BytesFeedParser()
    assert callable(getattr(p, "_new_message", None)) and isinstance(p._msgstack, list)
