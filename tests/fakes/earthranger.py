"""A local EarthRanger (DAS) stand-in: the documented endpoints TrapAlert uses, recorded.

    with FakeEarthRanger(token="er-token") as er:
        er.url                      # service_root for ERClient / the earthranger channel
        er.events                   # {event_id: {...posted event..., "files": [...], "notes": [...]}}
        er.camera_trap_groups       # {group_id: [file names]}
        er.requests, er.fail_next(...), er.recover(), ...   (see _server.FakeServer)

Endpoints (``/api/v1.0`` prefix; ``Authorization: Bearer <token>`` required when ``token`` is given):

    GET   /.well-known/oauth-protected-resource            404, or ``discovery_doc`` when given
    POST  /activity/events                                 201 {"data": event}; 400 unknown event_type
    GET   /activity/event/<id>                             200 {"data": event}
    PATCH /activity/event/<id>                             200 {"data": event}
    POST  /activity/event/<id>/files/                      multipart filecontent.file [+ comment]; 201
    POST  /activity/event/<id>/notes                       JSON {event, text}; 201
    POST  /sensors/camera-trap/<provider_key>/status/      multipart filecontent.file + camera_name, time,
                                                           location (JSON string), group_id; 201
                                                           {"data": {"group_id"}}; 409 file name seen

Run alone: ``python -m tests.fakes.earthranger --port 8001``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from ._server import FakeServer, RecordedRequest, Reply, serve_main

API = "/api/v1.0"


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
    ):
        super().__init__(host, port)
        self.token = token
        self.event_types = event_types
        self.provider_keys = provider_keys
        self.discovery_doc = discovery_doc
        self.events: dict[str, dict[str, Any]] = {}
        self.camera_trap_groups: dict[str, list[str]] = {}
        self._serial = 1000
        self.route("GET", r"/\.well-known/oauth-protected-resource", self._discovery)
        self.route("POST", API + r"/activity/events/?", self._post_event)
        self.route("GET", API + r"/activity/event/([^/]+)/?", self._get_event)
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

    def _event(self, event_id: str) -> dict[str, Any] | None:
        return self.events.get(event_id)

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
        self._serial += 1
        event = {
            **data,
            "id": str(uuid.uuid4()),
            "serial_number": self._serial,
            "created_at": datetime.now(UTC).isoformat(),
            "files": [],
            "notes": [],
            "patches": [],
        }
        self.events[event["id"]] = event
        return Reply(201, {"data": event, "status": _status(201, "Created")})

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
        if not isinstance(req.json, dict):
            return Reply(400, {"status": _status(400, "Bad Request", "JSON object expected")})
        event["patches"].append(req.json)
        event.update({k: v for k, v in req.json.items() if k not in ("id", "files", "notes", "patches")})
        return Reply(200, {"data": event, "status": _status(200, "OK")})

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
        if f.filename in seen:
            return Reply(409, {"status": _status(409, "Conflict", "file name already seen")})
        group_id = req.form.get("group_id") or str(uuid.uuid4())
        self.camera_trap_groups.setdefault(group_id, []).append(f.filename)
        return Reply(201, {"data": {"group_id": group_id}, "status": _status(201, "Created")})


if __name__ == "__main__":
    serve_main(FakeEarthRanger)
