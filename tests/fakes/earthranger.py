"""A local EarthRanger (DAS) stand-in: the documented endpoints TrapAlert uses, recorded.

    with FakeEarthRanger(token="er-token") as er:
        er.url                      # service_root for ERClient / the earthranger channel
        er.events                   # {event_id: {...posted event..., "files": [...], "notes": [...]}}
        er.camera_trap_groups       # {group_id: [file names]}
        er.requests, er.fail_next(...), er.recover(), ...   (see _server.FakeServer)

Endpoints (``/api/v1.0`` prefix; ``Authorization: Bearer <token>`` required when ``token`` is given).
A stand-in is only as true as its source; each shape below names the one it follows (PADAS ``er-server``,
``das/``; PADAS ``er-client``, ``erclient/client.py`` and ``erclient/api_paths.py``):

    GET   /.well-known/oauth-protected-resource            404, or ``discovery_doc`` when given
    POST  /activity/events                                 201 {"data": event}; 400 unknown event_type.
          er-server ``activity/views.py`` ``EventsView.post`` (one ``transaction.atomic()``) and
          ``serializers.EventSerializerMixin.create_event``: ``notes: [{"text"}]`` are saved with the event;
          ``EventDetailsSerializer._to_internal_value_inner`` silently drops ``event_details`` keys the event
          type's schema does not name (here: when ``event_schemas`` gives the type's keys).
    GET   /activity/events                                 200 {"data": {"count", "next", "previous",
          "results"}}. er-server ``EventsView`` (``StandardResultsSetPagination``, ``page``/``page_size``,
          ``include_notes`` default false, ``include_files``/``include_details`` default true) and
          ``models.EventFilteringQuerySet.by_event_filter``: ``filter`` is JSON; ``text`` = every
          whitespace-separated word (``&|!()<>`` removed) prefix-matches a word of the event type, title,
          event_details or notes (PostgreSQL full text, ``word:*``), or ``serial_number`` starts with the
          text; ``date_range {lower, upper}`` bounds the event ``time``. er-client ``get_events`` follows
          ``next`` and reads ``data``. Tokens here are runs of letters and digits, lower-cased: close to
          ``to_tsvector`` for the words TrapAlert searches (``TA4711C12``, camera names), not a stemmer.
    GET   /activity/events/eventtypes                      200 {"data": [event type]}. er-client
          ``get_event_types`` (v1.0 path ``api_paths.EVENT_TYPES_PATHS``); er-server
          ``activity/views.py`` ``EventTypesView.get_queryset``: the active types of the categories the user
          has any permission on; ``serializers.EventTypeSerializer`` fields ``id, value, display, ordernum,
          is_collection, category, icon_id, is_active, default_priority, geometry_type`` (no schema).
    GET   /activity/event/<id>                             200 {"data": event}
    PATCH /activity/event/<id>                             200 {"data": event}
    DELETE /activity/event/<id>/                           204 (er-client ``delete_event``)
          Permissions (er-server ``activity/permissions.py`` ``EventCategoryPermissions``: POST with an
          ``event_type`` needs ``<category>_create``; PATCH ``_update``; DELETE ``_delete``): with
          ``permissions`` given (e.g. ``{"security_create", "security_read"}``) anything else answers 403
          ``{"status": {"detail": "You do not have permission to perform this action."}}``; None: all allowed.
    POST  /activity/event/<id>/files/                      multipart filecontent.file [+ comment]; 201
          (files are listed with ``filename``: er-server ``serializers/base.py`` ``FileSerializerMixin``)
    POST  /activity/event/<id>/notes                       JSON {event, text}; 201
    POST  /sensors/camera-trap/<provider_key>/status/      er-server ``sensors/camera_trap.py``: multipart
          filecontent.file + camera_name, camera_description, time, location (JSON string), group_id;
          creates a ``cameratrap_rep`` event titled "<camera_name> detection" at ``time`` holding the file,
          201 {"data": {"group_id": <that event's id>}}; with group_id the file joins that event (404 if
          none); 409 with ``"data": null`` (no group id) when the file name was seen before anywhere on the
          site. Every answer is wrapped ``{"data", "status": {code, message}}`` (er-server
          ``utils/json.py`` ``ExtendedJSONRenderer``).

Faults beyond ``_server.FakeServer``'s: ``answer_late(n, seconds, path=...)`` carries the request out (the
event is committed) and only then waits before answering, like a server whose answer outlives the client's
timeout. Such a request is recorded when its answer is written, after later requests.

Run alone: ``python -m tests.fakes.earthranger --port 8001``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from ._server import FakeServer, RecordedRequest, Reply, serve_main

API = "/api/v1.0"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _text_matches(event: dict[str, Any], text: str) -> bool:
    """er-server ``by_text_filter``: each query word prefix-matches a document word, or serial_number."""
    text = text.strip()
    if not text:
        return True
    if str(event.get("serial_number", "")).lower().startswith(text.lower()):
        return True
    doc_parts = [str(event.get("event_type") or ""), str(event.get("title") or "")]
    doc_parts.append(json.dumps(event.get("event_details") or {}))
    doc_parts += [str(n.get("text") or "") for n in event.get("notes") or []]
    doc = set(_words(" ".join(doc_parts)))
    query = [w for word in re.sub(r"[&|!()<>]", " ", text).split() for w in _words(word)]
    return bool(query) and all(any(d.startswith(q) for d in doc) for q in query)


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _true(value: str | None, default: bool) -> bool:
    """er-server ``utils.json.parse_bool``."""
    if value is None:
        return default
    return value.lower() in ("true", "1", "yes", "ok", "okay")


def _status(code: int, message: str, detail: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"code": code, "message": message}
    if detail:
        status["detail"] = detail
    return status


class FakeEarthRanger(FakeServer):
    name = "fake-earthranger"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = "er-test-token",
        event_types: set[str] | None = None,
        provider_keys: set[str] | None = None,
        discovery_doc: dict[str, Any] | None = None,
        event_schemas: dict[str, set[str]] | None = None,
        categories: dict[str, str] | None = None,
        permissions: set[str] | None = None,
    ):
        super().__init__(host, port)
        self.token = token
        self.event_types = event_types
        self.provider_keys = provider_keys
        self.discovery_doc = discovery_doc
        self.event_schemas = event_schemas or {}
        self.categories = categories or {}  # event type -> category value (default "security")
        self.permissions = permissions
        self.events: dict[str, dict[str, Any]] = {}
        self._late: list[tuple[list[int], float, str | None, str | None]] = []
        self._late_lock = threading.Lock()
        self.camera_trap_groups: dict[str, list[str]] = {}
        self._serial = 1000
        self.route("GET", r"/\.well-known/oauth-protected-resource", self._discovery)
        self.route("POST", API + r"/activity/events/?", self._post_event)
        self.route("GET", API + r"/activity/events/?", self._list_events)
        self.route("GET", API + r"/activity/events/eventtypes/?", self._event_types)
        self.route("GET", API + r"/activity/event/([^/]+)/?", self._get_event)
        self.route("DELETE", API + r"/activity/event/([^/]+)/?", self._delete_event)
        self.route("PATCH", API + r"/activity/event/([^/]+)/?", self._patch_event)
        self.route("POST", API + r"/activity/event/([^/]+)/files/?", self._post_file)
        self.route("POST", API + r"/activity/event/([^/]+)/notes/?", self._post_note)
        self.route("POST", API + r"/sensors/camera-trap/([^/]+)/status/?", self._camera_trap)

    # ------------------------------------------------------------------ helpers
    def _unauthorized(self, req: RecordedRequest) -> Reply | None:
        if self.token is None:
            return None
        if req.header("Authorization") != f"Bearer {self.token}":
            return Reply(
                401, {"status": _status(401, "Unauthorized", "Authentication credentials were not provided.")}
            )
        return None

    def category(self, event_type: str) -> str:
        return self.categories.get(event_type, "security")

    def _forbidden(self, event_type: str | None, action: str) -> Reply | None:
        if self.permissions is None or event_type is None:
            return None
        if f"{self.category(event_type)}_{action}" in self.permissions:
            return None
        detail = "You do not have permission to perform this action."
        return Reply(403, {"status": _status(403, "Forbidden", detail)})

    def _event(self, event_id: str) -> dict[str, Any] | None:
        return self.events.get(event_id)

    def _new_event(self, data: dict[str, Any], notes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        self._serial += 1
        now = datetime.now(UTC).isoformat()
        event = {
            **data,
            "id": str(uuid.uuid4()),
            "serial_number": self._serial,
            "created_at": now,
            "time": data.get("time") or now,
            "files": [],
            "notes": [],
            "patches": [],
        }
        for note in notes or []:
            event["notes"].append({"id": str(uuid.uuid4()), "text": note["text"], "event": event["id"]})
        self.events[event["id"]] = event
        return event

    # ------------------------------------------------------------------ faults
    def answer_late(
        self, n: int = 1, seconds: float = 1.0, *, path: str | None = None, method: str | None = None
    ) -> None:
        """The next ``n`` matching requests are carried out at once, then answered ``seconds`` later."""
        with self._late_lock:
            self._late.append(([n], seconds, path, method))

    def _route(self, req: RecordedRequest) -> Reply:
        reply = super()._route(req)  # the handler ran (and committed) under the lock
        delay = 0.0
        with self._late_lock:
            for rule in self._late:
                left, seconds, path, method = rule
                if (path is None or req.path.startswith(path)) and (method is None or method == req.method):
                    left[0] -= 1
                    if left[0] <= 0:
                        self._late.remove(rule)
                    delay = seconds
                    break
        if delay:
            time.sleep(delay)  # outside the state lock: other requests are served meanwhile
        return reply

    # ------------------------------------------------------------------ handlers
    def _discovery(self, req: RecordedRequest) -> Reply:
        if self.discovery_doc is None:
            return Reply(404, {"detail": "Not found."})
        return Reply(200, self.discovery_doc)

    def _post_event(self, req: RecordedRequest) -> Reply:
        if (denied := self._unauthorized(req)) is not None:
            return denied
        data = req.json
        if not isinstance(data, dict) or not data.get("event_type"):
            return Reply(400, {"status": _status(400, "Bad Request", "event_type is required")})
        if self.event_types is not None and data["event_type"] not in self.event_types:
            return Reply(
                400, {"status": _status(400, "Bad Request", f"Unknown event type {data['event_type']}")}
            )
        if (forbidden := self._forbidden(data["event_type"], "create")) is not None:
            return forbidden
        data = dict(data)
        notes = data.pop("notes", None) or []
        if not isinstance(notes, list) or not all(isinstance(n, dict) and n.get("text") for n in notes):
            return Reply(400, {"status": _status(400, "Bad Request", "notes: a list of {text}")})
        keys = self.event_schemas.get(data["event_type"])
        if keys is not None and isinstance(data.get("event_details"), dict):
            data["event_details"] = {k: v for k, v in data["event_details"].items() if k in keys}
        event = self._new_event(data, notes)
        return Reply(201, {"data": event, "status": _status(201, "Created")})

    def _list_events(self, req: RecordedRequest) -> Reply:
        if (denied := self._unauthorized(req)) is not None:
            return denied
        q = {k: v[-1] for k, v in req.query.items()}
        found = list(self.events.values())
        if q.get("filter"):
            try:
                flt = json.loads(q["filter"])
            except ValueError:
                return Reply(400, {"status": _status(400, "Bad Request", "Invalid filter expression")})
            if flt.get("text"):
                found = [e for e in found if _text_matches(e, str(flt["text"]))]
            if "date_range" in flt:
                lower = (
                    _parse_time(flt["date_range"].get("lower")) if flt["date_range"].get("lower") else None
                )
                upper = (
                    _parse_time(flt["date_range"].get("upper")) if flt["date_range"].get("upper") else None
                )
                kept = []
                for e in found:
                    t = _parse_time(e.get("time"))
                    if t is not None and (lower is None or t >= lower) and (upper is None or t <= upper):
                        kept.append(e)
                found = kept
        found.sort(key=lambda e: -e["serial_number"])  # '-sort_at': newest first
        page = max(1, int(q.get("page") or 1))
        size = max(1, min(int(q.get("page_size") or 25), 4000))
        chunk = found[(page - 1) * size : page * size]
        results = []
        for e in chunk:
            rep = {k: v for k, v in e.items() if k != "patches"}
            if not _true(q.get("include_notes"), False):
                rep.pop("notes", None)
            if not _true(q.get("include_files"), True):
                rep.pop("files", None)
            if not _true(q.get("include_details"), True):
                rep.pop("event_details", None)
            results.append(rep)

        def link(p: int) -> str:
            return f"{self.root_url}{API}/activity/events?{urlencode({**q, 'page': p})}"

        body = {
            "count": len(found),
            "next": link(page + 1) if page * size < len(found) else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": results,
        }
        return Reply(200, {"data": body, "status": _status(200, "OK")})

    def _get_event(self, req: RecordedRequest, event_id: str) -> Reply:
        if (denied := self._unauthorized(req)) is not None:
            return denied
        event = self._event(event_id)
        if event is None:
            return Reply(404, {"status": _status(404, "Not Found")})
        return Reply(200, {"data": event, "status": _status(200, "OK")})

    def _patch_event(self, req: RecordedRequest, event_id: str) -> Reply:
        if (denied := self._unauthorized(req)) is not None:
            return denied
        event = self._event(event_id)
        if event is None:
            return Reply(404, {"status": _status(404, "Not Found")})
        if (forbidden := self._forbidden(event.get("event_type"), "update")) is not None:
            return forbidden
        if not isinstance(req.json, dict):
            return Reply(400, {"status": _status(400, "Bad Request", "JSON object expected")})
        event["patches"].append(req.json)
        event.update({k: v for k, v in req.json.items() if k not in ("id", "files", "notes", "patches")})
        return Reply(200, {"data": event, "status": _status(200, "OK")})

    def _event_types(self, req: RecordedRequest) -> Reply:
        if (denied := self._unauthorized(req)) is not None:
            return denied
        known = sorted(self.event_types if self.event_types is not None else {"trapalert_detection"})
        known = sorted(set(known) | {"cameratrap_rep"})
        actions = ("create", "update", "read", "delete")
        listed = []
        for n, value in enumerate(known):
            category = self.category(value)
            if self.permissions is not None and not any(
                f"{category}_{a}" in self.permissions for a in actions
            ):
                continue
            listed.append(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, value)),
                    "value": value,
                    "display": value.replace("_", " ").title(),
                    "ordernum": n,
                    "is_collection": False,
                    "category": {"value": category, "display": category.title()},
                    "icon_id": value,
                    "is_active": True,
                    "default_priority": 0,
                    "geometry_type": "Point",
                }
            )
        return Reply(200, {"data": listed, "status": _status(200, "OK")})

    def _delete_event(self, req: RecordedRequest, event_id: str) -> Reply:
        if (denied := self._unauthorized(req)) is not None:
            return denied
        event = self._event(event_id)
        if event is None:
            return Reply(404, {"status": _status(404, "Not Found")})
        if (forbidden := self._forbidden(event.get("event_type"), "delete")) is not None:
            return forbidden
        del self.events[event_id]
        return Reply(204)

    def _post_file(self, req: RecordedRequest, event_id: str) -> Reply:
        if (denied := self._unauthorized(req)) is not None:
            return denied
        event = self._event(event_id)
        if event is None:
            return Reply(404, {"status": _status(404, "Not Found")})
        f = req.files.get("filecontent.file")
        if f is None:
            return Reply(400, {"status": _status(400, "Bad Request", "filecontent.file is required")})
        record = {
            "id": str(uuid.uuid4()),
            "filename": f.filename,
            "comment": req.form.get("comment", ""),
            "size": len(f.data),
            "content_type": f.content_type,
        }
        event["files"].append(record)
        return Reply(201, {"data": record, "status": _status(201, "Created")})

    def _post_note(self, req: RecordedRequest, event_id: str) -> Reply:
        if (denied := self._unauthorized(req)) is not None:
            return denied
        event = self._event(event_id)
        if event is None:
            return Reply(404, {"status": _status(404, "Not Found")})
        if not isinstance(req.json, dict) or not req.json.get("text"):
            return Reply(400, {"status": _status(400, "Bad Request", "text is required")})
        note = {"id": str(uuid.uuid4()), "text": req.json["text"], "event": event_id}
        event["notes"].append(note)
        return Reply(201, {"data": note, "status": _status(201, "Created")})

    def _camera_trap(self, req: RecordedRequest, provider_key: str) -> Reply:
        if (denied := self._unauthorized(req)) is not None:
            return denied
        if self.provider_keys is not None and provider_key not in self.provider_keys:
            return Reply(404, {"status": _status(404, "Not Found", f"unknown provider {provider_key}")})
        f = req.files.get("filecontent.file")
        if f is None or not f.filename:
            return Reply(400, {"status": _status(400, "Bad Request", "filecontent.file is required")})
        if "location" in req.form:
            try:
                json.loads(req.form["location"])
            except ValueError:
                return Reply(400, {"status": _status(400, "Bad Request", "location must be a JSON string")})
        seen = {name for names in self.camera_trap_groups.values() for name in names}
        seen |= {rec["filename"] for e in self.events.values() for rec in e["files"]}
        if f.filename in seen:
            # er-server: Response(status=HTTP_409_CONFLICT), no data (ExtendedJSONRenderer wraps it)
            return Reply(409, {"data": None, "status": _status(409, "Conflict")})
        group_id = req.form.get("group_id")
        if group_id:
            event = self._event(group_id)
            if event is None:
                return Reply(404, {"message": f"Group with id {group_id} for image not found"})
        else:
            camera_name = req.form.get("camera_name")
            data: dict[str, Any] = {
                "event_type": "cameratrap_rep",
                "title": f"{camera_name} detection",
                "priority": 300,
                "event_details": {
                    "cameratraprep_camera-name": camera_name,
                    "cameratraprep_camera-make": req.form.get("camera_description"),
                },
            }
            if req.form.get("time"):
                data["time"] = req.form["time"]
            if "location" in req.form:
                data["location"] = json.loads(req.form["location"])
            event = self._new_event(data)
            group_id = event["id"]
        event["files"].append(
            {"id": str(uuid.uuid4()), "filename": f.filename, "comment": "", "size": len(f.data)}
        )
        self.camera_trap_groups.setdefault(group_id, []).append(f.filename)
        return Reply(201, {"data": {"group_id": group_id}, "status": _status(201, "Created")})


if __name__ == "__main__":
    serve_main(FakeEarthRanger)
