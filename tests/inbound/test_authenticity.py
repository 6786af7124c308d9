"""Authenticated-sender facts: SendGrid's dkim/SPF fields, Authentication-Results, and DMARC-style alignment
(functions/domain/authenticity.py). Pure: no services."""

from __future__ import annotations

import pytest

from functions.domain.authenticity import (
    alignment,
    dkim_aligned,
    domain_of,
    organizational_domain,
    spf_aligned,
)
from functions.inbound.parse_sendgrid import (
    parse_authentication_results,
    parse_dkim,
    parse_request,
    parse_spf,
)
from functions.inbound.sendgrid_payload import FormBuilder, build_payload


@pytest.mark.parametrize(
    "value,pairs",
    [
        ("{@example.com : pass}", [("example.com", "pass")]),
        ("{@a.example : pass, @b.example : fail}", [("a.example", "pass"), ("b.example", "fail")]),
        ("{@Mail.Vendor.Example. : PASS}", [("mail.vendor.example", "pass")]),
        ("none", []),
        ("", []),
        (None, []),
        ("{}", []),
        ("pass", [("", "pass")]),
        (
            "{@a.example : pass, garbage without colon, @b.example: neutral}",
            [("a.example", "pass"), ("b.example", "neutral")],
        ),
    ],
)
def test_dkim_field_parses_into_domain_result_pairs(value, pairs):
    assert parse_dkim(value) == pairs


@pytest.mark.parametrize(
    "value,result", [("pass", "pass"), (" SoftFail ", "softfail"), ("none", "none"), ("", None), (None, None)]
)
def test_spf_field_gives_its_result_word(value, result):
    assert parse_spf(value) == result


@pytest.mark.parametrize(
    "domain,org",
    [
        ("mail.example.co.uk", "example.co.uk"),
        ("a.b.example.com", "example.com"),
        ("EXAMPLE.COM.", "example.com"),
        ("foo.github.io", "foo.github.io"),  # a private suffix of the list: each user is its own org
        ("co.uk", None),  # a public suffix has no organizational domain
        ("", None),
        (None, None),
        ("bad domain.com", None),
    ],
)
def test_organizational_domain_uses_the_bundled_public_suffix_list(domain, org):
    assert organizational_domain(domain) == org


def test_domain_of_an_address():
    assert domain_of("Cam 1 <cam1@Traps.Example.ORG>") == "traps.example.org"
    assert domain_of("no-at-sign") is None


@pytest.mark.parametrize(
    "from_domain,pairs,expected",
    [
        ("vendor.example", [("vendor.example", "pass")], True),
        ("vendor.example", [("mail.vendor.example", "pass")], True),  # relaxed: same org domain
        ("cams.vendor.example", [("vendor.example", "pass")], True),
        ("vendor.example", [("attacker.example", "pass")], False),  # a pass of another domain
        ("vendor.example", [("vendor.example", "fail"), ("attacker.example", "pass")], False),
        ("vendor.example", [("sendgrid.net", "pass"), ("vendor.example", "pass")], True),
        ("a.github.io", [("b.github.io", "pass")], False),  # different orgs under a private suffix
        ("vendor.example", [("", "pass")], False),  # a bare "pass" names no domain
        ("vendor.example", [], False),
        (None, [("vendor.example", "pass")], False),
    ],
)
def test_dkim_alignment(from_domain, pairs, expected):
    assert dkim_aligned(from_domain, pairs) is expected


def test_strict_dkim_alignment_needs_the_same_domain():
    assert not dkim_aligned("vendor.example", [("mail.vendor.example", "pass")], strict=True)
    assert dkim_aligned("vendor.example", [("VENDOR.example", "pass")], strict=True)


@pytest.mark.parametrize(
    "from_domain,envelope,spf,expected",
    [
        ("vendor.example", "vendor.example", "pass", True),
        ("vendor.example", "bounces.vendor.example", "pass", True),
        ("vendor.example", "attacker.example", "pass", False),  # SPF of another domain
        ("vendor.example", "vendor.example", "softfail", False),
        ("vendor.example", None, "pass", False),
    ],
)
def test_spf_alignment(from_domain, envelope, spf, expected):
    assert spf_aligned(from_domain, envelope, spf) is expected


def test_alignment_names_what_authenticates():
    assert alignment("cam@vendor.example", "b@x.example", "pass", [("vendor.example", "pass")]) == "dkim"
    assert alignment("cam@vendor.example", "b@mail.vendor.example", "pass", []) == "spf"
    assert (
        alignment("cam@vendor.example", "b@attacker.example", "pass", [("attacker.example", "pass")]) is None
    )
    assert alignment(None, "b@vendor.example", "pass", []) is None


def test_parsed_payload_carries_pairs_and_spf():
    p = build_payload(
        sender="cam01@traps.example.org", to="park-x@alerts.example.org", subject="s", spf="pass"
    )
    email = parse_request(p.body, p.content_type)
    assert email.dkim_results == [("traps.example.org", "pass")] and email.spf_result == "pass"
    assert dkim_aligned(domain_of(email.sender_address), email.dkim_results)
    assert not hasattr(email, "dkim_pass")  # "any passing signature" is gone: alignment decides


def test_authentication_results_header_parses_and_is_trusted_only_by_authserv_id():
    value = (
        "mx.park.example; dkim=pass (good signature) header.d=vendor.example header.s=sel; "
        "spf=pass smtp.mailfrom=bounce@vendor.example; dmarc=pass header.from=vendor.example"
    )
    [dkim, spf, dmarc] = parse_authentication_results(value, ("mx.park.example",))
    assert (dkim.method, dkim.result, dkim.prop("header.d"), dkim.trusted) == (
        "dkim",
        "pass",
        "vendor.example",
        True,
    )
    assert (spf.method, spf.result, spf.prop("smtp.mailfrom")) == ("spf", "pass", "bounce@vendor.example")
    assert dmarc.method == "dmarc"
    assert not any(r.trusted for r in parse_authentication_results(value, ()))


def _raw_post(headers: str, trusted: str | None = None) -> bytes:
    mime = (
        f"From: cam@vendor.example\r\nTo: park@alerts.example.org\r\nSubject: s\r\n{headers}"
        "Content-Type: text/plain\r\n\r\nhello\r\n"
    ).encode()
    fb = (
        FormBuilder()
        .add("to", "park@alerts.example.org")
        .add("from", "cam@vendor.example")
        .add("email", mime)
    )
    return fb.build(), fb.content_type


def test_raw_mode_uses_a_trusted_authentication_results_header_only():
    body, ctype = _raw_post("Authentication-Results: mx.park.example; dkim=pass header.d=vendor.example\r\n")
    untrusted = parse_request(body, ctype)
    assert untrusted.dkim_results == [] and len(untrusted.authentication_results) == 1
    from functions.inbound.parse_sendgrid import ParseOptions

    trusted = parse_request(body, ctype, options=ParseOptions(trusted_authserv_ids=("mx.park.example",)))
    assert trusted.dkim_results == [("vendor.example", "pass")]
    assert dkim_aligned("vendor.example", trusted.dkim_results)
