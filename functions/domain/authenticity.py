"""Is an email authentic for its From domain? DMARC-style alignment (RFC 7489, section 3.1), pure.

The facts come from SendGrid (functions/inbound/parse_sendgrid.py): the results of the DKIM signatures it
checked, as (signing domain, result) pairs from its ``dkim`` field (``{@a.example : pass, @b.example :
fail}``), and its SPF result for the envelope sender (the ``SPF`` field, with the envelope ``from``). What
counts:

- DKIM: a signature that *passed* and whose signing domain is the From domain or shares its organizational
  domain (relaxed alignment: ``mail.vendor.example`` signs for ``cam@vendor.example``). A passing signature
  of any other domain (``{@attacker.example : pass}``, or a mailing service's own domain) proves nothing
  about the From address.
- SPF: a ``pass`` for an envelope sender whose domain is aligned in the same way with the From domain.

The organizational domain is the registrable domain of the Public Suffix List (``a.b.example.co.uk`` ->
``example.co.uk``), taken from the copy bundled with the `publicsuffixlist` package: nothing is fetched at
run time (upgrade the package to refresh the list). A domain that is itself a public suffix (``co.uk``) has
no organizational domain and aligns only with itself (strict).

    alignment("cam@vendor.example", "bounce@mail.vendor.example", "pass", [("vendor.example", "pass")])
    -> "dkim"
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

PASS = "pass"


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package; no network


def normalize_domain(domain: str | None) -> str | None:
    """Lower case, no surrounding ``@``, dots or spaces, IDNA (punycode) for non-ASCII; None when empty or
    not a plausible domain."""
    if not domain:
        return None
    d = domain.strip().strip("<>").strip().lstrip("@").rstrip(".").lower()
    if "@" in d:
        d = d.rsplit("@", 1)[1]
    if not d or len(d) > 253 or any(c.isspace() for c in d) or ".." in d or d.startswith("."):
        return None
    if not d.isascii():
        try:
            d = d.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return d


def domain_of(address: str | None) -> str | None:
    """The domain of an address (``Cam <cam@vendor.example>`` -> ``vendor.example``)."""
    if not address or "@" not in address:
        return None
    return normalize_domain(address.rsplit("@", 1)[1].split(">", 1)[0])


@lru_cache(maxsize=1024)
def organizational_domain(domain: str | None) -> str | None:
    """The registrable domain of ``domain`` by the Public Suffix List; None for a public suffix itself
    (``co.uk``) or an unusable value."""
    d = normalize_domain(domain)
    if d is None:
        return None
    return _psl().privatesuffix(d)


def aligned(domain_a: str | None, domain_b: str | None, *, strict: bool = False) -> bool:
    """Relaxed alignment: the same organizational domain; strict: the same domain."""
    a, b = normalize_domain(domain_a), normalize_domain(domain_b)
    if a is None or b is None:
        return False
    if a == b:
        return True
    if strict:
        return False
    org_a = organizational_domain(a)
    return org_a is not None and org_a == organizational_domain(b)


def _result(value: str | None) -> str:
    return (value or "").strip().lower()


def aligned_dkim_domain(
    from_domain: str | None, dkim_pairs: Iterable[tuple[str, str]], *, strict: bool = False
) -> str | None:
    """The signing domain of the first passing DKIM signature aligned with ``from_domain``, else None."""
    for domain, result in dkim_pairs:
        if _result(result) == PASS and aligned(domain, from_domain, strict=strict):
            return normalize_domain(domain)
    return None


def dkim_aligned(
    from_domain: str | None, dkim_pairs: Iterable[tuple[str, str]], *, strict: bool = False
) -> bool:
    """A passing DKIM signature of the From domain (or of its organizational domain, relaxed)."""
    return aligned_dkim_domain(from_domain, dkim_pairs, strict=strict) is not None


def spf_aligned(
    from_domain: str | None, envelope_domain: str | None, spf_result: str | None, *, strict: bool = False
) -> bool:
    """SPF passed for an envelope sender aligned with the From domain."""
    return _result(spf_result) == PASS and aligned(envelope_domain, from_domain, strict=strict)


def alignment(
    from_address: str | None,
    envelope_from: str | None,
    spf_result: str | None,
    dkim_pairs: Iterable[tuple[str, str]],
    *,
    strict: bool = False,
) -> str | None:
    """``"dkim"`` or ``"spf"``: what makes the email authentic for its From address; None: nothing does."""
    from_domain = domain_of(from_address)
    if from_domain is None:
        return None
    if dkim_aligned(from_domain, dkim_pairs, strict=strict):
        return "dkim"
    if spf_aligned(from_domain, domain_of(envelope_from), spf_result, strict=strict):
        return "spf"
    return None
