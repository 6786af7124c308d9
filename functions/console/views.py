"""What each console page shows and what each console API call does. Functions of
``(req, svc, repo, user, **route params)``; the role each needs is in :data:`API` (checked by app.py before
the call, with the CSRF check for every POST). Every change is audited (functions/console/audit.py)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import azure.functions as func
from markupsafe import Markup

from ..adapters.console_repo import PAGE_SIZE, ConsoleRepository
from ..domain.feedback import CONFIRMED_WHAT, FALSE_POSITIVE_WHAT
from ..domain.rules import CATEGORY_CODES, CATEGORY_NAMES
from ..names import IMAGES_CONTAINER
from . import audit

VERDICTS = ("confirmed", "false_positive", "unsure")
WHAT = (
    "animal",
    "shadow",
    "stump",
    "vegetation",
    "staff_vehicle",
    "staff",
    "weather",
    "person",
    "vehicle",
    "other",
)
TAMPER = ("someone_at_camera", "view_changed")
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


class NotFound(Exception):
    pass


class BadRequest(Exception):
    pass


def health(conditions: list[str] | None) -> str:
    """The map colour of a camera: tamper beats silent beats low battery beats ok."""
    c = set(conditions or [])
    if c & set(TAMPER):
        return "tamper"
    if "silent" in c:
        return "silent"
    if "low_battery" in c:
        return "low_battery"
    return "ok"


def _int(params, name: str) -> int | None:
    v = params.get(name)
    if v in (None, ""):
        return None
    if not re.fullmatch(r"\d{1,18}", v):
        raise BadRequest(f"{name} must be a number")
    return int(v)


def _body(req) -> dict[str, Any]:
    try:
        data = req.get_json()
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _filters(params) -> dict[str, Any]:
    category = params.get("category") or None
    if category and category not in CATEGORY_NAMES:
        category = CATEGORY_CODES.get(category)
        if category is None:
            raise BadRequest("category: animal, person or vehicle")
    state = params.get("state") or None
    if state and state not in VERDICTS + ("open",):
        raise BadRequest("state: open, confirmed, false_positive or unsure")
    return {
        "park_id": _int(params, "park"),
        "camera_id": _int(params, "camera"),
        "category": category,
        "state": state,
    }


def alert_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        r["category_names"] = [CATEGORY_NAMES.get(c, c) for c in r["categories"] or []]
    return rows


# ------------------------------------------------------------------------------------------------ pages
def page_context(page: str, svc, repo: ConsoleRepository, user, params, arg: int | None) -> dict[str, Any]:
    parks = repo.parks()
    ctx: dict[str, Any] = {
        "parks": parks,
        "verdicts": VERDICTS,
        "fp_what": FALSE_POSITIVE_WHAT,
        "confirmed_what": CONFIRMED_WHAT,
    }
    if page == "map":
        ctx["cameras"] = [
            dict(c, health=health(c["conditions"])) for c in repo.map_cameras(_int(params, "park"))
        ]
    elif page == "alerts":
        f = _filters(params)
        ctx["filters"] = {k: params.get(k, "") for k in ("park", "camera", "category", "state")}
        ctx["alerts"] = alert_rows(repo.alerts(**f, before_id=_int(params, "before")))
        ctx["page_size"] = PAGE_SIZE
        ctx["latest"] = repo.latest_alert_id()
    elif page == "alert":
        ctx.update(alert_detail(repo, arg))
    elif page == "precision":
        from ..handlers.feedback import camera_report

        park_id = _int(params, "park")
        rows = []
        for p in parks:
            if park_id is None or p["id"] == park_id:
                rows += [dict(r, park=p["slug"], park_id=p["id"]) for r in camera_report(repo.db, p["id"])]
        ctx["rows"] = rows
    elif page == "proposals":
        from ..adapters.suppressions_repo import SuppressionsRepository

        ctx["proposals"] = SuppressionsRepository(repo.db).proposals(params.get("park") or None)
    elif page == "cameras":
        ctx["cameras"] = repo.map_cameras(_int(params, "park"))
    elif page == "rules":
        ctx["rules"] = repo.rules(_int(params, "park"))
        ctx["cameras"] = repo.map_cameras(None)
    elif page == "channels":
        ctx["channels"] = repo.channels(_int(params, "park"))
    elif page == "audit":
        ctx["entries"] = repo.audit_log(before_id=_int(params, "before"))
    elif page == "upload":
        ctx["cameras"] = repo.map_cameras(None)
    elif page == "ops":
        from ..ops.page import render_body

        ctx["ops_html"] = Markup(render_body(svc))  # noqa: S704 - every value escaped by ops/page.py
    return ctx


def alert_detail(repo: ConsoleRepository, alert_id: int | None) -> dict[str, Any]:
    alert = repo.alert(alert_id) if alert_id else None
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    images = repo.alert_images(alert_id)
    for im in images:
        for d in im["detections"]:
            d["name"] = CATEGORY_NAMES.get(d["category"], d["category"])
    deliveries = repo.alert_deliveries(alert_id)
    timeline = []
    for im in images:
        if im["taken_at"]:
            timeline.append((im["taken_at"], f"photo {im['id']} taken"))
        timeline.append((im["received_at"], f"photo {im['id']} received"))
        if im["scored_at"]:
            timeline.append((im["scored_at"], f"photo {im['id']} scored"))
    timeline.append((alert["created_at"], "alert created"))
    for d in deliveries:
        if d["delivered_at"]:
            timeline.append((d["delivered_at"], f"delivered on {d['channel']} ({d['kind']})"))
    timeline.sort(key=lambda t: t[0])
    details = alert.get("details") or {}
    return {
        "alert": dict(alert, category_names=[CATEGORY_NAMES.get(c, c) for c in alert["categories"]]),
        "images": images,
        "deliveries": deliveries,
        "timeline": timeline,
        "feedback": repo.alert_feedback(alert_id),
        "rule": details.get("rule") or details.get("reason") or details.get("summary") or details,
    }


# -------------------------------------------------------------------------------------------------- API
def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    from .app import json_response

    return json_response(data, status, headers)


def api_map(req, svc, repo, user) -> func.HttpResponse:
    cams = [dict(c, health=health(c["conditions"])) for c in repo.map_cameras(_int(req.params, "park"))]
    outlines = {p["slug"]: (p["settings"] or {}).get("outline") for p in repo.parks()}
    return _json({"cameras": cams, "outlines": outlines})


def api_alerts(req, svc, repo, user) -> func.HttpResponse:
    f = _filters(req.params)
    latest = repo.latest_alert_id()
    tag = (
        '"' + hashlib.sha256(json.dumps([latest, sorted(req.params.items())]).encode()).hexdigest()[:16] + '"'
    )
    if req.headers.get("if-none-match") == tag:
        return func.HttpResponse(status_code=304, headers={"ETag": tag, "Cache-Control": "no-cache"})
    rows = alert_rows(
        repo.alerts(**f, before_id=_int(req.params, "before"), after_id=_int(req.params, "after"))
    )
    return _json({"alerts": rows, "latest": latest}, headers={"ETag": tag, "Cache-Control": "no-cache"})


def api_alert(req, svc, repo, user, id: str) -> func.HttpResponse:
    d = alert_detail(repo, int(id))
    d["timeline"] = [{"at": at, "what": what} for at, what in d["timeline"]]
    return _json(d)


def api_image(req, svc, repo, user, id: str, thumb: str | None = None) -> func.HttpResponse:
    from ..ops.api import downscale

    im = repo.image(int(id))
    if not im or not im["blob_name"]:
        raise NotFound(f"no stored image {id}")
    data = svc.storage.get_blob(IMAGES_CONTAINER, im["blob_name"])
    mimetype = im["content_type"] if im["content_type"] in IMAGE_TYPES else "application/octet-stream"
    if thumb:
        data, mimetype = downscale(data, 320, max_pixels=svc.settings.max_image_pixels), "image/jpeg"
    from .app import security_headers

    headers = security_headers()
    headers["Cache-Control"] = "private, max-age=300"
    return func.HttpResponse(data, mimetype=mimetype, headers=headers)


def api_feedback(req, svc, repo, user, id: str) -> func.HttpResponse:
    """A ranger's verdict on the alert or one photo: h11's service records it with its audit row and feeds the
    camera's static boxes (functions/handlers/feedback.py)."""
    from ..handlers.feedback import FeedbackError, FeedbackNotFound, give_feedback

    body = _body(req)
    image_id = body.get("image_id")
    if image_id is not None and not isinstance(image_id, int):
        raise BadRequest("image_id must be a number")
    try:
        out = give_feedback(
            repo.db,
            alert_id=int(id),
            verdict=str(body.get("verdict") or ""),
            user=user.name,
            role=user.role,
            via="console",
            image_id=image_id,
            what=body.get("what") or None,
            note=body.get("note") or None,
        )
    except FeedbackError as exc:
        raise BadRequest(str(exc)) from None
    except FeedbackNotFound as exc:
        raise BadRequest(str(exc)) from None
    return _json(
        {
            "feedback_id": out["feedback"]["id"],
            "verdict": out["feedback"]["verdict"],
            "proposed": out["proposed"],
            "suppressed": out["suppressed"],
        }
    )


def api_proposal(req, svc, repo, user, id: str, decision: str) -> func.HttpResponse:
    from ..adapters.suppressions_repo import SuppressionsRepository

    sup = SuppressionsRepository(repo.db)
    note = None
    if req.get_body():
        note = str(_body(req).get("note") or "").strip() or None
    fn = sup.confirm if decision == "confirm" else sup.reject
    row = fn(int(id), actor=user.name, actor_role=user.role, via="console", note=note)  # audited there
    if row is None:
        raise NotFound(f"no proposal {id} waiting")
    return _json({"id": int(id), "status": row["status"]})


def api_place(req, svc, repo, user, id: str) -> func.HttpResponse:
    body = _body(req)
    try:
        lat, lon = float(body["latitude"]), float(body["longitude"])
    except (KeyError, TypeError, ValueError):
        raise BadRequest("latitude and longitude are required numbers") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadRequest("latitude/longitude out of range")
    serials = body.get("serials")
    if serials is not None:
        if isinstance(serials, str):
            serials = [s.strip() for s in serials.split(",") if s.strip()]
        if not (isinstance(serials, list) and all(isinstance(s, str) and len(s) <= 100 for s in serials)):
            raise BadRequest("serials: a list of strings")
    row = repo.place_camera(int(id), lat, lon, serials)
    if row is None:
        raise NotFound(f"no camera {id}")
    audit.record(
        repo,
        actor=user.name,
        actor_role=user.role,
        action="camera.updated",
        park_id=row["park_id"],
        target=f"camera:{id}",
        details={"latitude": lat, "longitude": lon, "serials": row["serials"]},
    )
    return _json(row)


def api_rotate(req, svc, repo, user, id: str) -> func.HttpResponse:
    from ..adapters.parks import ParkRepository, RegistryError

    try:
        row, token = ParkRepository(repo.db).rotate_token(int(id))
    except RegistryError as exc:
        raise NotFound(str(exc)) from None
    audit.record(
        repo,
        actor=user.name,
        actor_role=user.role,
        action="camera.token_rotated",
        park_id=row["park_id"],
        target=f"camera:{id}",
        details={},
    )
    return _json(
        {"camera": row["name"], "token": token, "token_address": row["token_address"], "shown_once": True}
    )


def api_rules(req, svc, repo, user) -> func.HttpResponse:
    from ..adapters.rules_repo import RulesRepository
    from ..domain.rules import RulesError, new_layer, parse_assignment

    body = _body(req)
    park_id, camera_id = body.get("park_id"), body.get("camera_id")
    assignment = str(body.get("assignment") or "")
    if not isinstance(park_id, int) or (camera_id is not None and not isinstance(camera_id, int)):
        raise BadRequest("park_id (and camera_id) must be numbers")
    if camera_id is not None:
        cam = repo.camera(camera_id)
        if cam is None or cam["park_id"] != park_id:
            raise BadRequest("that camera is not in that park")
    rules = RulesRepository(repo.db)
    try:
        changes = parse_assignment(assignment)
        with rules.editing(park_id) as edit:
            park_layer, camera_layer = edit.layers(camera_id)
            overrides = edit.overrides() if camera_id is None else []
            layer = new_layer(
                park_layer, camera_layer, changes, overrides, camera_level=camera_id is not None
            )
            edit.save(camera_id, layer, updated_by=f"{user.name} (console)")
    except RulesError as exc:
        raise BadRequest(str(exc)) from None
    audit.record(
        repo,
        actor=user.name,
        actor_role=user.role,
        action="rules.updated",
        park_id=park_id,
        target=f"camera:{camera_id}" if camera_id else f"park:{park_id}",
        details={"set": assignment},
    )
    return _json({"rules": layer})


def api_channel_test(req, svc, repo, user, id: str) -> func.HttpResponse:
    from ..adapters.channels import ChannelRepository
    from ..cli.channels import channel_test_notice
    from ..notify import Channel, DeliveryError, build_notifier, close_notifier

    row = next((c for c in repo.channels(None) if c["id"] == int(id)), None)
    if row is None:
        raise NotFound(f"no channel {id}")
    chrepo = ChannelRepository(repo.db)
    full = chrepo.get(row["park"], row["name"])
    notifier, ok, message = None, False, ""
    try:
        notifier = build_notifier(
            Channel.from_row(full), svc.secrets, allowed_secrets=chrepo.allowed_secrets(full["park_id"])
        )
        check = getattr(notifier, "check", None)
        problems = list(check() or []) if callable(check) else []
        if problems:
            message = "; ".join(map(str, problems))
        else:
            notifier.send_new(channel_test_notice(repo.db, full))
            ok, message = True, "test notice delivered"
    except DeliveryError as exc:
        message = f"{type(exc).__name__}: {exc}"
    finally:
        close_notifier(notifier)
    audit.record(
        repo,
        actor=user.name,
        actor_role=user.role,
        action="channel.tested",
        park_id=full["park_id"],
        target=f"channel:{id}",
        details={"ok": ok},
    )
    return _json({"ok": ok, "message": message}, 200 if ok else 502)


def api_audit(req, svc, repo, user) -> func.HttpResponse:
    return _json({"entries": repo.audit_log(before_id=_int(req.params, "before"))})


def api_ops_replay(req, svc, repo, user, id: str) -> func.HttpResponse:
    from ..ops import poison as ops_poison

    try:
        result = ops_poison.replay(svc.db, svc.storage, int(id))
    except ops_poison.NotFound as exc:
        raise NotFound(str(exc)) from None
    audit.record(
        repo,
        actor=user.name,
        actor_role=user.role,
        action="poison.replayed",
        target=f"poison:{id}",
        details={"failed": bool(result.failed)},
    )
    return _json(result.as_dict(), 200 if not result.failed else 502)


def api_upload(req, svc, repo, user) -> func.HttpResponse:
    """One file (a photo or a zip) per request, the body its bytes: ``?camera=<id>&timezone=&filename=``.
    h11's functions/inbound/upload.py takes it down the emailed photos' path (bulk lane) and audits it."""
    from ..inbound.upload import UploadError, receive_upload

    camera_id = _int(req.params, "camera")
    cam = repo.camera(camera_id) if camera_id else None
    if cam is None:
        raise BadRequest("camera: the id of a camera")
    data = req.get_body() or b""
    if not data:
        raise BadRequest("an empty file")
    if len(data) > svc.settings.upload_max_bytes:
        raise BadRequest(
            f"{len(data)} bytes; the limit is {svc.settings.upload_max_bytes} (UPLOAD_MAX_BYTES)"
        )
    name = (req.params.get("filename") or "upload.jpg").replace("/", "_").replace("\\", "_")[:200]
    try:
        results = receive_upload(
            svc,
            park_slug=cam["park"],
            camera_name=str(cam["id"]),
            files=[(name, data)],
            tz=req.params.get("timezone") or None,
            uploader=user.name,
            uploader_role=user.role,
            via="console",
        )
    except UploadError as exc:
        raise BadRequest(str(exc)) from None
    ok = any(r["status"] in ("stored", "duplicate") for r in results)
    first = results[0] if results else {"status": "empty"}
    return _json({"status": first["status"], "results": results}, 200 if ok else 422)


API: list[tuple[str, re.Pattern, str, Any]] = [
    ("GET", re.compile(r"map"), "viewer", api_map),
    ("GET", re.compile(r"alerts"), "viewer", api_alerts),
    ("GET", re.compile(r"alerts/(?P<id>\d{1,18})"), "viewer", api_alert),
    ("GET", re.compile(r"images/(?P<id>\d{1,18})(?P<thumb>/thumbnail)?"), "viewer", api_image),
    ("POST", re.compile(r"alerts/(?P<id>\d{1,18})/feedback"), "ranger", api_feedback),
    (
        "POST",
        re.compile(r"proposals/(?P<id>\d{1,18})/(?P<decision>confirm|reject)"),
        "operator",
        api_proposal,
    ),
    ("POST", re.compile(r"cameras/(?P<id>\d{1,18})/place"), "operator", api_place),
    ("POST", re.compile(r"cameras/(?P<id>\d{1,18})/rotate-token"), "operator", api_rotate),
    ("POST", re.compile(r"rules"), "operator", api_rules),
    ("POST", re.compile(r"channels/(?P<id>\d{1,18})/test"), "operator", api_channel_test),
    ("POST", re.compile(r"upload"), "operator", api_upload),
    ("GET", re.compile(r"audit"), "admin", api_audit),
    ("POST", re.compile(r"ops/poison/(?P<id>\d{1,18})/replay"), "admin", api_ops_replay),
]
