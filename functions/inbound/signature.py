"""SendGrid's signed webhook: ECDSA P-256 with SHA-256 over ``timestamp + raw body``.

SendGrid sends the signature (base64 DER) in ``X-Twilio-Email-Event-Webhook-Signature`` and the Unix
timestamp in ``X-Twilio-Email-Event-Webhook-Timestamp``. The public key (Settings > Mail Settings; the app
setting SENDGRID_WEBHOOK_PUBLIC_KEY) is base64 DER (SubjectPublicKeyInfo), as SendGrid shows it, or PEM.
Verification runs on the raw bytes, before anything is parsed or stored.

Missing headers -> ``SignatureMissing`` (401); a bad signature or a timestamp older than
SENDGRID_WEBHOOK_MAX_AGE_S (or from the future by as much) -> ``SignatureInvalid`` (403).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


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
