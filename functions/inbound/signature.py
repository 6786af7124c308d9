"""Authenticating SendGrid's Inbound Parse POSTs: the signed webhook and the OAuth bearer option.

Source: Twilio SendGrid, "Securing your Inbound Parse Webhooks"
(https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/securing-your-parse-webhooks) and the
Parse Webhook security policy API (POST /v3/user/webhooks/security/policies, ``{"signature": {"enabled":
true}, "oauth": {"client_id", "client_secret", "token_url", "scopes"}}``). A security policy attached to the
Parse setting enables either mechanism or both ("hybrid").

Signature: the page says SendGrid signs the payload with ECDSA and puts the signature in HTTP headers, to be
verified with the public key the policy API returns (``signature.public_key``, base64 DER
SubjectPublicKeyInfo). The header names are those of SendGrid's signed webhooks, as its page "Getting
Started with the Event Webhook Security Features" names them and as integrations verifying Inbound Parse
use them: the base64 DER signature in ``X-Twilio-Email-Event-Webhook-Signature``, the Unix timestamp in
``X-Twilio-Email-Event-Webhook-Timestamp``, signed over ``timestamp + raw body`` with P-256/SHA-256
(checked: the names here were already right; the parts of the Parse page we could read do not print them).
SENDGRID_WEBHOOK_PUBLIC_KEY takes the key as the API shows it, or PEM. Verification runs on the raw bytes,
before anything is parsed or stored.
Missing headers -> ``SignatureMissing`` (401); a bad signature or a timestamp older than
SENDGRID_WEBHOOK_MAX_AGE_S (or from the future by as much) -> ``SignatureInvalid`` (403).

OAuth: the page says that SendGrid fetches an access token from the OAuth server the customer designates
(``token_url``, with the policy's ``client_id``/``client_secret`` and ``scopes``: the client-credentials
grant) and sends it in the ``Authorization`` header of each POST; it does not define the token's format,
because the token is the customer's own identity provider's. So we verify it as that provider's token: a
JWT (Entra ID and other providers issue JWT access tokens for client credentials), signed with an
asymmetric algorithm by a key of the provider's JWKS (SENDGRID_WEBHOOK_OAUTH_JWKS: the JWK Set JSON, or its
https URL, fetched and cached for an hour), whose ``iss`` is SENDGRID_WEBHOOK_OAUTH_ISSUER, whose ``aud``
is SENDGRID_WEBHOOK_OAUTH_AUDIENCE, not expired (``exp`` required, 30 s leeway), and, when
SENDGRID_WEBHOOK_OAUTH_SCOPE is set, carrying that scope (in ``scope``/``scp``, or ``roles`` as Entra
writes application permissions). No or a non-Bearer Authorization -> ``SignatureMissing`` (401); any other
failure -> ``SignatureInvalid`` (403). With both configured, both must pass (the hybrid policy).

``authenticate(headers, body, settings)`` applies what the settings configure; ``required(settings)`` says
whether anything is configured.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
AUTHORIZATION_HEADER = "Authorization"
# asymmetric only: never "none", never HMAC (a shared secret would let anyone holding it mint tokens)
OAUTH_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
OAUTH_LEEWAY_S = 30
JWKS_CACHE_S = 3600


class SignatureMissing(Exception):
    """The webhook is configured to be signed but the request carries no signature (401)."""


class SignatureInvalid(Exception):
    """The signature does not verify, or its timestamp is too old (403)."""


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM or from base64 DER (what the SendGrid console shows)."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        try:
            der = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"SENDGRID_WEBHOOK_PUBLIC_KEY is neither PEM nor base64 DER ({exc})") from None
        key = serialization.load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("SENDGRID_WEBHOOK_PUBLIC_KEY must be an ECDSA P-256 public key")
    return key


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value.strip() if value else None


def verify(
    headers: Mapping[str, str],
    body: bytes,
    public_key: ec.EllipticCurvePublicKey,
    *,
    max_age_s: int,
    now: float | None = None,
) -> None:
    """Raise SignatureMissing or SignatureInvalid unless ``body`` is signed by SendGrid's key."""
    signature = _header(headers, SIGNATURE_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise SignatureMissing(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureInvalid("the timestamp is not a Unix time") from None
    now = time.time() if now is None else now
    if abs(now - ts) > max_age_s:
        raise SignatureInvalid(f"the timestamp is {int(now - ts)} s away from now (max {max_age_s} s)")
    try:
        der = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("the signature is not base64") from None
    try:
        public_key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureInvalid("the signature does not verify") from None


# -- OAuth bearer -------------------------------------------------------------------------------------
class OAuthVerifier:
    """Verifies SendGrid's bearer token as a JWT of our identity provider (module docstring)."""

    def __init__(self, issuer: str, audience: str, jwks: str, scope: str | None = None):
        import jwt

        if not issuer or not audience or not jwks:
            raise ValueError("OAuth needs SENDGRID_WEBHOOK_OAUTH_ISSUER, _AUDIENCE and _JWKS")
        self.issuer, self.audience, self.scope = issuer, audience, (scope or "").strip() or None
        text = jwks.strip()
        self._client = None
        self._keys: dict[str | None, object] = {}
        if text.startswith("https://"):
            self._client = jwt.PyJWKClient(text, cache_jwk_set=True, lifespan=JWKS_CACHE_S, timeout=5)
        elif text.startswith("{"):
            try:
                keyset = jwt.PyJWKSet.from_json(text)
            except (jwt.PyJWKError, jwt.PyJWKSetError, ValueError) as exc:
                raise ValueError(f"SENDGRID_WEBHOOK_OAUTH_JWKS is not a usable JWK Set ({exc})") from None
            for k in keyset.keys:
                self._keys[k.key_id] = k
        else:
            raise ValueError("SENDGRID_WEBHOOK_OAUTH_JWKS must be a JWK Set (JSON) or an https:// URL")

    def _key(self, token: str):
        import jwt

        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientError as exc:
                raise SignatureInvalid(f"no signing key for the token ({exc})") from None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise SignatureInvalid("the bearer token is not a JWT") from None
        if kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        raise SignatureInvalid("the token's key is not in the configured JWK Set")

    def verify(self, headers: Mapping[str, str], *, now: float | None = None) -> dict:
        """The token's claims; SignatureMissing without a bearer token, SignatureInvalid when it fails."""
        import jwt

        value = _header(headers, AUTHORIZATION_HEADER) or ""
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise SignatureMissing("an Authorization: Bearer token is required")
        key = self._key(token)
        options = {"require": ["exp", "iss", "aud"]}
        try:
            if now is None:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=list(OAUTH_ALGORITHMS),
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=OAUTH_LEEWAY_S,
                    options=options,
                )
            else:  # tests: judge exp/nbf/iat at ``now``
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=list(OAUTH_ALGORITHMS),
                    audience=self.audience,
                    issuer=self.issuer,
                    options={**options, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
                )
                if now > float(claims["exp"]) + OAUTH_LEEWAY_S:
                    raise jwt.ExpiredSignatureError("Signature has expired")
        except jwt.InvalidTokenError as exc:
            raise SignatureInvalid(f"the bearer token is not valid: {exc}") from None
        if self.scope and self.scope not in _scopes(claims):
            raise SignatureInvalid(f"the bearer token lacks the scope {self.scope!r}")
        return claims


def _scopes(claims: Mapping) -> set[str]:
    out: set[str] = set()
    for name in ("scope", "scp", "roles"):
        value = claims.get(name)
        if isinstance(value, str):
            out.update(value.split())
        elif isinstance(value, list):
            out.update(str(v) for v in value)
    return out


_verifiers: dict[tuple, OAuthVerifier] = {}


def _verifier(settings) -> OAuthVerifier:
    key = (
        settings.sendgrid_webhook_oauth_issuer,
        settings.sendgrid_webhook_oauth_audience,
        settings.sendgrid_webhook_oauth_jwks,
        settings.sendgrid_webhook_oauth_scope,
    )
    if key not in _verifiers:
        _verifiers.clear()
        _verifiers[key] = OAuthVerifier(*key)
    return _verifiers[key]


def required(settings) -> bool:
    """Whether the settings configure any authentication of the POST (signature, OAuth or both)."""
    return bool(
        settings.sendgrid_webhook_public_key or getattr(settings, "sendgrid_webhook_oauth_issuer", None)
    )


def authenticate(headers: Mapping[str, str], body: bytes, settings, *, now: float | None = None) -> None:
    """Every mechanism the settings configure must pass: the signature (SENDGRID_WEBHOOK_PUBLIC_KEY) and the
    OAuth bearer token (SENDGRID_WEBHOOK_OAUTH_ISSUER). Raises SignatureMissing (401) / SignatureInvalid
    (403); returns quietly when none is configured."""
    if settings.sendgrid_webhook_public_key:
        verify(
            headers,
            body,
            _public_key(settings.sendgrid_webhook_public_key),
            max_age_s=settings.sendgrid_webhook_max_age_s,
            now=now,
        )
    if getattr(settings, "sendgrid_webhook_oauth_issuer", None):
        _verifier(settings).verify(headers, now=now)


@lru_cache(maxsize=2)
def _public_key(text: str) -> ec.EllipticCurvePublicKey:
    return load_public_key(text)


# -- the sending side, for tests, benchmarks and `trapalert simulate` ------------------------------------
class WebhookSigner:
    """Signs bodies the way SendGrid does, with a fresh (or given) P-256 key pair."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None):
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key_base64(self) -> str:
        """The public key as SendGrid shows it (base64 DER), the value of SENDGRID_WEBHOOK_PUBLIC_KEY."""
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sig = self.private_key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE_HEADER: base64.b64encode(sig).decode(), TIMESTAMP_HEADER: ts}


class TokenIssuer:
    """An identity provider's side, for tests: an RSA key, its JWK Set, and client-credentials tokens as
    SendGrid would obtain them from ``token_url`` and send as ``Authorization: Bearer``."""

    def __init__(self, issuer: str = "https://login.example.org/tenant/v2.0", kid: str = "test-key-1"):
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.issuer, self.kid = issuer, kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def jwks_json(self) -> str:
        import json

        import jwt

        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return json.dumps({"keys": [jwk]})

    def token(
        self,
        audience: str,
        *,
        scope: str | None = None,
        ttl_s: int = 3600,
        now: float | None = None,
        issuer: str | None = None,
        **claims,
    ) -> str:
        import jwt

        now = time.time() if now is None else now
        payload = {
            "iss": issuer or self.issuer,
            "aud": audience,
            "iat": int(now),
            "exp": int(now + ttl_s),
            "sub": "sendgrid-inbound-parse",
            **claims,
        }
        if scope:
            payload["scope"] = scope
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": self.kid})

    def headers(self, audience: str, **kw) -> dict[str, str]:
        return {AUTHORIZATION_HEADER: f"Bearer {self.token(audience, **kw)}"}
