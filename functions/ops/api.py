"""The admin JSON API, for automation only (function_app.py route ``ops/{*path}``, auth level ADMIN: the
master key in the ``x-functions-key`` header or ``?code=``; the host checks it before we run). No person is
given the master key: people use the ops page of the park console (``/api/console/ops``, admin role, signed
in through Entra ID or a one-time link, every replay audited; functions/console/, docs/operations.md).

    GET  /api/ops/status                        queue depths, poison counts, camera health
    GET  /api/ops/poison?queue=&status=&limit=  poison records (no bodies)
    GET  /api/ops/poison/{id}                   one record with its body and failures
    POST /api/ops/poison/{id}/replay            put its message back on its queue (safe twice; 502: the
                                                message waits in the outbox, replay again to send it)
    POST /api/ops/poison/replay-all?queue=      replay every poisoned record (502 when some failed)
    POST /api/ops/poison/purge?older_than=30d   purge old records (and their poison-queue messages)
    GET  /api/ops/images/{id}/thumbnail         an image downscaled (JPEG, at most 320 px)
    GET  /api/ops/deliveries?park=&channel=     deliveries a channel refused for good, with what to fix
    POST /api/ops/deliveries/redeliver?channel=&park=&alert=   send them again once fixed

Errors are JSON ``{"error": "..."}`` with 400 (bad argument), 404 (unknown record/route), 503 (database or
storage unreachable); anything else is answered 500 by the middleware chain (functions/middleware/).
"""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import azure.functions as func

from ..adapters.ops_repo import OpsRepository
from ..adapters.storage import StorageUnavailable
from ..db import DatabaseUnavailable
from ..names import IMAGES_CONTAINER
from . import deliveries as ops_deliveries
from . import poison as ops_poison
from .status import status

log = logging.getLogger(__name__)

THUMBNAIL_PX = 320
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def json_default(o: Any) -> Any:
    """What json.dumps writes for the values rows hold besides JSON's own (the ops API, the console)."""
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Decimal):
        return float(o)
    return str(o)


def json_response(data: Any, status_code: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(data, default=json_default),
        status_code=status_code,
        mimetype="application/json",
        headers=dict(_SECURITY_HEADERS),
    )


def error(message: str, status_code: int) -> func.HttpResponse:
    return json_response({"error": message}, status_code)


def _int_param(req: func.HttpRequest, name: str, default: int) -> int:
    value = req.params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ops_poison.PoisonError(f"{name} must be an integer") from None


_ROUTES: list[tuple[str, re.Pattern, str]] = [
    ("GET", re.compile(r"^status$"), "get_status"),
    ("GET", re.compile(r"^poison$"), "list_poison"),
    ("GET", re.compile(r"^poison/(?P<id>\d+)$"), "show_poison"),
    ("POST", re.compile(r"^poison/(?P<id>\d+)/replay$"), "replay_one"),
    ("POST", re.compile(r"^poison/replay-all$"), "replay_all"),
    ("POST", re.compile(r"^poison/purge$"), "purge"),
    ("GET", re.compile(r"^images/(?P<id>\d+)/thumbnail$"), "thumbnail"),
    ("GET", re.compile(r"^deliveries$"), "list_deliveries"),
    ("POST", re.compile(r"^deliveries/redeliver$"), "redeliver"),
]


def handle(req: func.HttpRequest, svc) -> func.HttpResponse:
    path = (req.route_params.get("path") or "").strip("/")
    allowed = []
    for method, pattern, name in _ROUTES:
        m = pattern.match(path)
        if m:
            allowed.append(method)
            if req.method.upper() == method:
                try:
                    return globals()["_" + name](req, svc, **m.groupdict())
                except ops_poison.NotFound as exc:
                    return error(str(exc), 404)
                except ops_poison.PoisonError as exc:
                    return error(str(exc), 400)
                except (DatabaseUnavailable, StorageUnavailable) as exc:
                    log.warning("ops api %s %s: %s", method, path, exc)
                    return error(f"unavailable: {exc}", 503)
    if allowed:
        return func.HttpResponse(status_code=405, headers={"Allow": ", ".join(allowed)})
    if not path:  # the old page's address
        return error("no ops page here: people use the park console's ops page (/api/console/ops)", 404)
    return error(f"no ops route {path!r}", 404)


def _get_status(req, svc) -> func.HttpResponse:
    return json_response(status(svc))


def _list_poison(req, svc) -> func.HttpResponse:
    rows = ops_poison.list_records(
        svc.db,
        queue=req.params.get("queue") or None,
        status=req.params.get("status") or None,
        limit=_int_param(req, "limit", 100),
    )
    return json_response({"records": rows})


def _show_poison(req, svc, id: str) -> func.HttpResponse:
    return json_response(ops_poison.get_record(svc.db, int(id)))


def _replay_one(req, svc, id: str) -> func.HttpResponse:
    result = ops_poison.replay(svc.db, svc.storage, int(id))
    return json_response(result.as_dict(), 200 if not result.failed else 502)


def _replay_all(req, svc) -> func.HttpResponse:
    result = ops_poison.replay_all(svc.db, svc.storage, queue=req.params.get("queue") or None)
    return json_response(result.as_dict(), 200 if not result.failed else 502)


def _purge(req, svc) -> func.HttpResponse:
    older_than = req.params.get("older_than")
    if not older_than:
        raise ops_poison.PoisonError("older_than is required, e.g. ?older_than=30d")
    return json_response(
        ops_poison.purge(svc.db, svc.storage, older_than, queue=req.params.get("queue") or None)
    )


def _list_deliveries(req, svc) -> func.HttpResponse:
    park, channel = req.params.get("park") or None, req.params.get("channel") or None
    rows = ops_deliveries.list_failures(svc.db, park, channel, _int_param(req, "limit", 200))
    return json_response({"deliveries": rows})


def _redeliver(req, svc) -> func.HttpResponse:
    park, channel = req.params.get("park") or None, req.params.get("channel") or None
    alert = _int_param(req, "alert", 0) or None
    if not (park or channel or alert):
        raise ops_poison.PoisonError("name what to redeliver: ?channel=, ?park= and/or ?alert=")
    return json_response(ops_deliveries.redeliver(svc, park, channel, alert))


def _thumbnail(req, svc, id: str) -> func.HttpResponse:
    blob = OpsRepository(svc.db).image_blob(int(id))
    if not blob:
        return error(f"no stored image {id}", 404)
    try:
        data = svc.storage.get_blob(IMAGES_CONTAINER, blob)
    except StorageUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - missing blob
        return error(f"image {id} not readable: {type(exc).__name__}", 404)
    try:
        jpeg = downscale(data, THUMBNAIL_PX, max_pixels=getattr(svc.settings, "max_image_pixels", 50_000_000))
    except Exception as exc:  # noqa: BLE001 - not an image Pillow reads
        return error(f"image {id} cannot be shown: {type(exc).__name__}", 415)
    headers = dict(_SECURITY_HEADERS)
    headers["Cache-Control"] = "private, max-age=300"
    return func.HttpResponse(jpeg, status_code=200, mimetype="image/jpeg", headers=headers)


def downscale(data: bytes, max_px: int, max_pixels: int = 50_000_000) -> bytes:
    """JPEG of ``data`` fitting in max_px x max_px (decompression bombs refused)."""
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = max_pixels
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (max_px, max_px))  # JPEG: decode at a reduced scale
        img = ImageOps.exif_transpose(img)
        img = img.convert("RGB")
        img.thumbnail((max_px, max_px))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=80)
        return out.getvalue()
