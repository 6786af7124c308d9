"""The park console: HTML pages and a JSON API behind one HTTP function (function_app.py route
``console/{*path}``, anonymous at the host: this module signs people in and checks roles on every request).

    GET  /api/console/login#t=TOKEN         sign-in page: its script POSTs the token (never sent in a URL)
    POST /api/console/login                 {"token"} -> session cookie (one-time link)
    POST /api/console/logout
    GET  /api/console/static/<file>         the console's script and style (CSP: no inline script)
    GET  /api/console/<page>                map, alerts, alerts/<id>, proposals, precision, cameras, rules,
                                            channels, upload (operator+), audit, ops (admin)
    GET  /api/console/data/...              the JSON API the pages call (see _API below)
    POST /api/console/data/...              changes: CSRF token + same Origin + role, each one audited

Roles (server-side, every endpoint): viewer reads; ranger + feedback; operator + configuration, suppression
proposals, thresholds, upload; admin + audit log and ops.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import azure.functions as func
import jinja2

from ..adapters.console_repo import ConsoleRepository
from ..adapters.storage import StorageUnavailable
from ..db import DatabaseUnavailable
from ..domain.rules import CATEGORY_NAMES
from ..ops.api import json_default
from . import audit, views
from .auth import (
    CSRF_COOKIE,
    PRINCIPAL_HEADER,
    ROLES,
    SESSION_COOKIE,
    SESSION_TTL_S,
    AuthError,
    User,
    check_csrf,
    cookie_header,
    cookies,
    easy_auth_trusted,
    new_token,
    principal_user,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
PAGES: dict[str, tuple[str, str]] = {  # page -> (template, least role)
    "map": ("map.html", "viewer"),
    "alerts": ("alerts.html", "viewer"),
    "alert": ("alert.html", "viewer"),
    "precision": ("precision.html", "viewer"),
    "proposals": ("proposals.html", "operator"),
    "cameras": ("cameras.html", "operator"),
    "rules": ("rules.html", "operator"),
    "channels": ("channels.html", "operator"),
    "upload": ("upload.html", "operator"),
    "audit": ("audit.html", "admin"),
    "ops": ("ops.html", "admin"),
}
NAV = [
    ("map", "Map"),
    ("alerts", "Alerts"),
    ("precision", "Precision"),
    ("proposals", "Proposals"),
    ("cameras", "Cameras"),
    ("rules", "Rules"),
    ("channels", "Channels"),
    ("upload", "Upload"),
    ("audit", "Audit log"),
    ("ops", "Ops"),
]

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every value escaped; no template uses |safe on data
    undefined=jinja2.StrictUndefined,
    finalize=lambda v: _when(v) if isinstance(v, datetime) else v,
)


_env.filters["json"] = lambda v, indent=None: json.dumps(
    v, default=json_default, ensure_ascii=False, indent=indent
)
_env.filters["category"] = lambda code: CATEGORY_NAMES.get(code, code)


def _when(value: datetime) -> str:
    """Times on the pages: UTC, to the second."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def security_headers(tiles: str = "", nonce: str | None = None) -> dict[str, str]:
    """The console's headers; ``tiles``: the map tile template (its host joins img-src)."""
    tile_origin = ""
    if tiles.startswith("https://"):
        tile_origin = " " + re.sub(r"^(https://[^/]+).*$", r"\1", tiles).replace("{s}", "*")
    style = "style-src 'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    script = "script-src 'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; {script}; {style}; img-src 'self' data:{tile_origin}; connect-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    h = security_headers()
    h.update(headers or {})
    return func.HttpResponse(
        json.dumps(data, default=json_default), status_code=status, mimetype="application/json", headers=h
    )


def error(message: str, status: int) -> func.HttpResponse:
    return json_response({"error": message}, status)


def current_user(req: func.HttpRequest, repo: ConsoleRepository, console_auth: str) -> User | None:
    """The Easy Auth principal (only where the platform sets it), else a console session cookie."""
    if easy_auth_trusted(console_auth):
        header = req.headers.get(PRINCIPAL_HEADER)
        if header:
            return principal_user(header)
    token = cookies(req.headers).get(SESSION_COOKIE)
    if token:
        row = repo.session(token)
        if row and row["role"] in ROLES:
            return User(name=row["user_name"], role=row["role"], via="link")
    return None


def _secure(req: func.HttpRequest) -> bool:
    return req.url.lower().startswith("https://") or (req.headers.get("x-forwarded-proto") == "https")


def _csrf_cookie(req: func.HttpRequest) -> tuple[str, str | None]:
    """The double-submit token of this browser (a new one, with its Set-Cookie, when it has none)."""
    token = cookies(req.headers).get(CSRF_COOKIE)
    if token and re.fullmatch(r"[A-Za-z0-9_-]{20,100}", token):
        return token, None
    token = new_token()
    return token, cookie_header(CSRF_COOKIE, token, secure=_secure(req), http_only=True)


def base_path(req: func.HttpRequest) -> str:
    from urllib.parse import urlsplit

    path = urlsplit(req.url).path
    i = path.find("/console")
    return (path[:i] if i >= 0 else "/api") + "/console"


# ------------------------------------------------------------------------------------------------- entry
def handle(req: func.HttpRequest, svc) -> func.HttpResponse:
    path = (req.route_params.get("path") or "").strip("/")
    method = req.method.upper()
    try:
        if path.startswith("static/"):
            return _static(path.removeprefix("static/"))
        repo = ConsoleRepository(svc.db)
        if path == "login":
            return _login_page(req) if method == "GET" else _login(req, repo)
        user = current_user(req, repo, svc.settings.console_auth)
        if path == "logout" and method == "POST":
            check_csrf(method, req.url, req.headers)
            return _logout(req, repo)
        if user is None:
            if path.startswith("data/"):
                return error("not signed in", 401)
            if easy_auth_trusted(
                svc.settings.console_auth
            ):  # Azure: Entra ID sign-in by the platform, then back to this page
                target = quote(f"{base_path(req)}/{path}", safe="/")
                return func.HttpResponse(
                    status_code=302,
                    headers={
                        **security_headers(),
                        "Location": f"/.auth/login/aad?post_login_redirect_uri={target}",
                    },
                )
            return _html(req, "signin.html", None, status=401)
        if path.startswith("data/"):
            return _api(req, svc, repo, user, path.removeprefix("data/"), method)
        if method != "GET":
            return func.HttpResponse(status_code=405, headers={"Allow": "GET"})
        return _page(req, svc, repo, user, path or "map")
    except AuthError as exc:
        return error(str(exc), exc.status)
    except views.NotFound as exc:
        return error(str(exc), 404)
    except views.BadRequest as exc:
        return error(str(exc), 400)
    except (DatabaseUnavailable, StorageUnavailable) as exc:
        log.warning("console %s %s: %s", method, path, exc)
        return error("unavailable, try again", 503)


def _static(name: str) -> func.HttpResponse:
    if name not in STATIC:
        return error("no such file", 404)
    headers = security_headers()
    headers["Cache-Control"] = "public, max-age=300"
    return func.HttpResponse((HERE / "static" / name).read_bytes(), mimetype=STATIC[name], headers=headers)


def _html(
    req: func.HttpRequest,
    template: str,
    user: User | None,
    status: int = 200,
    tiles: str = "",
    **context: Any,
) -> func.HttpResponse:
    csrf, set_cookie = _csrf_cookie(req)
    nav = [(p, label) for p, label in NAV if user and user.can(PAGES[p][1])]
    body = _env.get_template(template).render(
        user=user, csrf=csrf, base=base_path(req), nav=nav, tiles=tiles, now=datetime.now(UTC), **context
    )
    headers = security_headers(tiles)
    if set_cookie:
        headers["Set-Cookie"] = set_cookie
    return func.HttpResponse(body, status_code=status, mimetype="text/html", charset="utf-8", headers=headers)


def _page(req, svc, repo: ConsoleRepository, user: User, path: str) -> func.HttpResponse:
    m = re.fullmatch(r"alerts/(\d+)", path)
    page, arg = ("alert", int(m.group(1))) if m else (path, None)
    if page not in PAGES:
        return error(f"no console page {path!r}", 404)
    template, least = PAGES[page]
    if not user.can(least):
        return _html(req, "forbidden.html", user, status=403, need=least, page=page)
    context = views.page_context(page, svc, repo, user, req.params, arg)
    tiles = svc.settings.console_map_tiles if page == "map" else ""
    return _html(req, template, user, page=page, tiles=tiles, **context)


# ------------------------------------------------------------------------------------------------ sign-in
def _login_page(req) -> func.HttpResponse:
    return _html(req, "login.html", None)


def _login(req, repo: ConsoleRepository) -> func.HttpResponse:
    check_csrf("POST", req.url, req.headers)
    try:
        token = str((req.get_json() or {}).get("token") or "")
    except ValueError:
        token = ""
    if not token or len(token) > 200:
        return error("no sign-in token", 400)
    session = new_token()
    link = repo.use_link(token, session, SESSION_TTL_S)
    if link is None:
        state = repo.link_state(token)
        why = (
            "unknown link" if state is None else ("link already used" if state["used_at"] else "link expired")
        )
        audit.record(
            repo,
            actor=state["user_name"] if state else "unknown",
            actor_role=state and state["role"],
            action="console.signin_refused",
            details={"reason": why},
        )
        return error(f"sign-in refused: {why}; ask for a new link", 403)
    audit.record(
        repo,
        actor=link["user_name"],
        actor_role=link["role"],
        action="console.signin",
        details={"link_id": link["id"]},
    )
    headers = security_headers()
    headers["Set-Cookie"] = cookie_header(SESSION_COOKIE, session, secure=_secure(req), max_age=SESSION_TTL_S)
    return json_response({"user": link["user_name"], "role": link["role"]}, headers=headers)


def _logout(req, repo: ConsoleRepository) -> func.HttpResponse:
    token = cookies(req.headers).get(SESSION_COOKIE)
    if token:
        repo.end_session(token)
    headers = {"Set-Cookie": cookie_header(SESSION_COOKIE, "", secure=_secure(req), max_age=0)}
    return json_response({"signed_out": True}, headers=headers)


# -------------------------------------------------------------------------------------------------- API
def _api(req, svc, repo: ConsoleRepository, user: User, path: str, method: str) -> func.HttpResponse:
    allowed = []
    for m_, pattern, least, fn in views.API:
        match = pattern.fullmatch(path)
        if not match:
            continue
        allowed.append(m_)
        if m_ != method:
            continue
        if not user.can(least):
            return error(f"your role ({user.role}) may not do this; it needs {least}", 403)
        if method == "POST":
            check_csrf(method, req.url, req.headers)
        return fn(req, svc, repo, user, **match.groupdict())
    if allowed:
        return func.HttpResponse(status_code=405, headers={"Allow": ", ".join(sorted(set(allowed)))})
    return error(f"no console API {path!r}", 404)
