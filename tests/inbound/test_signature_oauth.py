"""The OAuth bearer option of SendGrid's Inbound Parse security policy, and ``authenticate`` combining it
with the signature (functions/inbound/signature.py). No services: the identity provider is a TokenIssuer
(an RSA key and its JWK Set), SendGrid's side is its token in ``Authorization: Bearer``."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import jwt
import pytest

from functions.inbound import signature
from functions.inbound.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    OAuthVerifier,
    SignatureInvalid,
    SignatureMissing,
    TokenIssuer,
    WebhookSigner,
    authenticate,
    required,
)

AUD = "api://trapalert-inbound"
ISSUER = TokenIssuer()
OTHER = TokenIssuer(kid="other-key")  # another provider's key, same kid scheme
BODY = b'--xYzZY\r\nContent-Disposition: form-data; name="to"\r\n\r\npark@x\r\n--xYzZY--\r\n'


def _settings(**kw) -> SimpleNamespace:
    base = dict(
        sendgrid_webhook_public_key=None,
        sendgrid_webhook_max_age_s=600,
        sendgrid_webhook_oauth_issuer=ISSUER.issuer,
        sendgrid_webhook_oauth_audience=AUD,
        sendgrid_webhook_oauth_jwks=ISSUER.jwks_json,
        sendgrid_webhook_oauth_scope=None,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def test_a_valid_token_passes_and_its_claims_are_returned():
    v = OAuthVerifier(ISSUER.issuer, AUD, ISSUER.jwks_json)
    claims = v.verify(ISSUER.headers(AUD))
    assert claims["iss"] == ISSUER.issuer and claims["aud"] == AUD


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer "}],
    ids=["none", "empty", "basic", "bearer-without-token"],
)
def test_no_bearer_token_is_missing(headers):
    with pytest.raises(SignatureMissing):
        OAuthVerifier(ISSUER.issuer, AUD, ISSUER.jwks_json).verify(headers)


def _forged_none_alg() -> str:
    header = jwt.utils.base64url_encode(json.dumps({"alg": "none", "kid": ISSUER.kid}).encode()).decode()
    payload = {"iss": ISSUER.issuer, "aud": AUD, "exp": int(time.time()) + 60}
    body = jwt.utils.base64url_encode(json.dumps(payload).encode()).decode()
    return f"{header}.{body}."


def _hs256_with_the_public_key() -> str:
    """The classic confusion: an HMAC token keyed with the (public) JWK."""
    return jwt.encode(
        {"iss": ISSUER.issuer, "aud": AUD, "exp": int(time.time()) + 60},
        "not-the-key-but-an-hmac-secret-of-32-bytes!",
        algorithm="HS256",
        headers={"kid": ISSUER.kid},
    )


@pytest.mark.parametrize(
    "token",
    [
        lambda: ISSUER.token("api://someone-else"),  # another audience
        lambda: ISSUER.token(AUD, issuer="https://evil.example/"),  # another issuer
        lambda: ISSUER.token(AUD, ttl_s=-3600),  # expired an hour ago
        lambda: OTHER.token(AUD),  # signed by a key not in the JWK Set
        lambda: TokenIssuer(kid=ISSUER.kid).token(AUD),  # the right kid, the wrong key
        _forged_none_alg,
        _hs256_with_the_public_key,
        lambda: "not.a.jwt",
        lambda: ISSUER.token(AUD)[:-4] + "AAAA",  # signature changed
    ],
    ids=[
        "wrong-audience",
        "wrong-issuer",
        "expired",
        "unknown-kid",
        "wrong-key-same-kid",
        "alg-none",
        "hs256",
        "garbage",
        "tampered",
    ],
)
def test_invalid_tokens_are_refused(token):
    with pytest.raises(SignatureInvalid):
        OAuthVerifier(ISSUER.issuer, AUD, ISSUER.jwks_json).verify({"Authorization": f"Bearer {token()}"})


def test_scope_is_required_when_configured_in_scope_scp_or_roles():
    v = OAuthVerifier(ISSUER.issuer, AUD, ISSUER.jwks_json, scope="inbound.post")
    with pytest.raises(SignatureInvalid, match="scope"):
        v.verify(ISSUER.headers(AUD, scope="webhooks:read"))
    assert v.verify(ISSUER.headers(AUD, scope="webhooks:read inbound.post"))
    assert v.verify(ISSUER.headers(AUD, roles=["inbound.post"]))  # Entra application permission
    assert v.verify(ISSUER.headers(AUD, scp="inbound.post"))


def test_expiry_is_judged_at_the_given_time_with_leeway():
    v = OAuthVerifier(ISSUER.issuer, AUD, ISSUER.jwks_json)
    now = time.time()
    headers = ISSUER.headers(AUD, ttl_s=60, now=now)
    assert v.verify(headers, now=now + 60 + signature.OAUTH_LEEWAY_S - 1)
    with pytest.raises(SignatureInvalid):
        v.verify(headers, now=now + 60 + signature.OAUTH_LEEWAY_S + 1)


@pytest.mark.parametrize("jwks", ["", "not json", "http://plain-http.example/jwks", '{"keys": "x"}'])
def test_misconfigured_jwks_fails_at_construction(jwks):
    with pytest.raises(ValueError):
        OAuthVerifier(ISSUER.issuer, AUD, jwks)


def test_authenticate_applies_what_is_configured():
    signer = WebhookSigner()
    oauth_only = _settings()
    both = _settings(sendgrid_webhook_public_key=signer.public_key_base64)
    none = _settings(sendgrid_webhook_oauth_issuer=None)
    assert required(oauth_only) and required(both) and not required(none)
    authenticate({}, BODY, none)  # nothing configured: nothing checked
    authenticate(ISSUER.headers(AUD), BODY, oauth_only)
    with pytest.raises(SignatureMissing):
        authenticate({}, BODY, oauth_only)
    # hybrid: the signature alone or the token alone is not enough
    with pytest.raises(SignatureMissing):
        authenticate(ISSUER.headers(AUD), BODY, both)
    with pytest.raises(SignatureMissing):
        authenticate(signer.headers(BODY), BODY, both)
    authenticate({**signer.headers(BODY), **ISSUER.headers(AUD)}, BODY, both)
    with pytest.raises(SignatureInvalid):
        authenticate({**signer.headers(BODY), **ISSUER.headers(AUD)}, BODY + b"x", both)


def test_header_names_are_sendgrids():
    assert SIGNATURE_HEADER == "X-Twilio-Email-Event-Webhook-Signature"
    assert TIMESTAMP_HEADER == "X-Twilio-Email-Event-Webhook-Timestamp"
    assert set(WebhookSigner().headers(BODY)) == {SIGNATURE_HEADER, TIMESTAMP_HEADER}


def test_the_webhook_answers_401_403_or_goes_on_by_the_bearer_token(monkeypatch):
    """process-email applies the OAuth option: no token 401, a token of another provider 403, nothing stored;
    a valid token lets the email through to ingest (here a database outage, answered 503 for SendGrid's
    retry)."""
    import azure.functions as func

    from functions.db import DatabaseUnavailable
    from functions.handlers import process_email

    reached: list[bytes] = []

    def receive(body, headers, svc, correlation_id=None):
        reached.append(body)
        raise DatabaseUnavailable("down for the test")

    monkeypatch.setattr(process_email, "receive", receive)
    svc = SimpleNamespace(settings=_settings())

    def post(headers):
        req = func.HttpRequest("POST", "http://x/api/inbound/sendgrid", headers=headers, body=BODY)
        return process_email.handle(req, svc)

    assert post({}).status_code == 401
    assert post(OTHER.headers(AUD)).status_code == 403
    assert reached == []
    assert post(ISSUER.headers(AUD)).status_code == 503
    assert reached == [BODY]
