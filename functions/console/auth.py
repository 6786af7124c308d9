"""Who is asking, and may they: sign-in for the park console.

Two ways in (docs/console.md):

* **Azure, App Service authentication (Easy Auth)** with an Entra ID app registration whose app roles are
  ``viewer``, ``ranger``, ``operator``, ``admin``. The platform signs the user in and passes the principal
  to the app in ``X-MS-CLIENT-PRINCIPAL`` (base64 JSON: ``auth_typ``, ``claims`` [{typ, val}], ``name_typ``,
  ``role_typ``); it removes any copy a client sends. So the header is trusted only when the platform says
  authentication is on: ``WEBSITE_AUTH_ENABLED=True`` (set by App Service when authsettingsV2 is enabled)
  and the app setting ``CONSOLE_AUTH=easyauth``. Locally (and whenever either is missing) it is ignored.
* **One-time sign-in links** (``trapalert console login-url``): a random token, stored hashed with an
  expiry, used once; it opens a server-side session whose random id travels in an HttpOnly, SameSite=Strict
  cookie (Secure on https). The session is looked up by its SHA-256 hash, so the cookie cannot be forged
  and a session can be ended server-side; no signing key has to be kept. The same links are the audited
  break-glass path in Azure.

CSRF: every change needs (1) a double-submit token: the ``ta_csrf`` cookie (SameSite=Strict) equal to the
``X-CSRF-Token`` header (or ``csrf`` form field), and (2) an ``Origin`` (or ``Referer``) of the console's own
origin. Roles are ordered: each role may do what the roles before it may.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

ROLES = ("viewer", "ranger", "operator", "admin")
SESSION_COOKIE = "ta_session"
CSRF_COOKIE = "ta_csrf"
CSRF_HEADER = "x-csrf-token"
PRINCIPAL_HEADER = "x-ms-client-principal"
SESSION_TTL_S = 12 * 3600


class AuthError(Exception):
    """Refused: ``status`` is 401 (not signed in), 403 (role or CSRF) or 400."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class User:
    name: str
    role: str
    via: str  # "easyauth" | "link"

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def role_rank(role: str) -> int:
    return ROLES.index(role)


def easy_auth_trusted(console_auth: str, environ: dict[str, str] | None = None) -> bool:
    """True only when the app is set up for Easy Auth (setting CONSOLE_AUTH=easyauth) *and* the platform says
    authentication is on (WEBSITE_AUTH_ENABLED=True, set by App Service, never by us)."""
    env = os.environ if environ is None else environ
    return console_auth == "easyauth" and env.get("WEBSITE_AUTH_ENABLED", "").lower() == "true"


def principal_user(header_value: str) -> User | None:
    """The user of an Easy Auth principal (highest app role it carries); None when it has no console role."""
    try:
        data = json.loads(base64.b64decode(header_value, validate=False))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    claims = data.get("claims") or []
    role_typ = data.get("role_typ") or "roles"
    name_typ = data.get("name_typ") or "name"
    roles = {c.get("val") for c in claims if isinstance(c, dict) and c.get("typ") in (role_typ, "roles")}
    names = [
        c.get("val")
        for c in claims
        if isinstance(c, dict) and c.get("typ") in (name_typ, "preferred_username", "name")
    ]
    held = [r for r in ROLES if r in roles]
    if not held or not names:
        return None
    return User(name=str(names[0])[:200], role=held[-1], via="easyauth")


def cookies(headers) -> dict[str, str]:
    raw = headers.get("cookie") or ""
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # noqa: BLE001 - a malformed cookie header means no cookies
        return {}
    return {k: m.value for k, m in jar.items()}


def cookie_header(
    name: str,
    value: str,
    *,
    secure: bool,
    http_only: bool = True,
    max_age: int | None = None,
    path: str = "/",
) -> str:
    parts = [f"{name}={value}", f"Path={path}", "SameSite=Strict"]
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_csrf(method: str, url: str, headers, form_token: str | None = None) -> None:
    """Raise AuthError(403) unless a state-changing request carries the double-submit token and comes from
    the console's own origin."""
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        return
    expected_origin = origin_of(url)
    forwarded_host = headers.get("x-forwarded-host") or headers.get("x-original-host")
    allowed = {expected_origin}
    if forwarded_host:  # behind the App Service front end, the public host
        allowed.add(f"https://{forwarded_host}".lower())
    origin = headers.get("origin")
    if not origin:
        referer = headers.get("referer")
        origin = origin_of(referer) if referer else None
    if not origin or origin.lower() not in allowed:
        raise AuthError("cross-site request refused (Origin)", 403)
    cookie = cookies(headers).get(CSRF_COOKIE, "")
    supplied = headers.get(CSRF_HEADER) or form_token or ""
    if not cookie or not hmac.compare_digest(cookie.encode(), supplied.encode()):
        raise AuthError("missing or wrong CSRF token", 403)
