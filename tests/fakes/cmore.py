"""A local CMORE stand-in (token login, tags, events, comments), recorded.

    with FakeCmore(users={"ranger": "pw"}) as cm:
        cm.url                   # base_url for the cmore channel (ends in /za/WebAPI/api)
        cm.events                # {message_id: {...posted event..., "comments": [...]}}
        cm.expire_tokens()       # every issued token now answers 401 (forces a re-login)
        cm.requests, cm.fail_next(...), ...   (see _server.FakeServer)

Endpoints under ``/za/WebAPI/api``:

    POST /token/login          form username, password, clientType=SoftwareClient, uniqueId -> {"token"}
    GET  /v2/tags/getfull      [{"id", "name", "fields": [{"id", "name", "type"}]}]   (Token auth)
    POST /v2/messages/events   JSON event -> {"id": <message id>}                       (Token auth)
    POST /v2/messages/comments form or multipart (rootMessageId, description, dateOccurred, uploadType,
                               optional file part "file") -> {"id": <message id>}     (Token auth)

Sources of the shapes (a stand-in is only as true as its source): CSIR's CMORE API as the open-source
integration that reaches it in production calls it, PADAS ``gundi-integration-cmore``
``app/datasource/client.py``: ``POST /token/login`` (form fields, ``Authorization: Token <token>`` after),
``POST /v2/messages/events`` (JSON event, write endpoints may answer 2xx with an empty body). Two shapes here
still follow this project's first adapter and differ from that integration: the integration reads
``GET /v2/tags/getfull`` as a list of *domains* each holding ``tags[]`` (here: a flat list of tags), and
posts comments and photos to ``POST /comment`` (here: ``/v2/messages/comments``). Both are issue 21
("Channels as their real services speak"); tests that pass here do not prove those two against CMORE.

Run alone: ``python -m tests.fakes.cmore --port 8002``.
"""

from __future__ import annotations

import secrets
from typing import Any

from ._server import FakeServer, RecordedRequest, Reply, serve_main

DEFAULT_TAGS: list[dict[str, Any]] = [
    {
        "id": 501,
        "name": "Camera Trap Alert",
        "fields": [
            {"id": 9001, "name": "Camera", "type": "text"},
            {"id": 9002, "name": "Detected", "type": "text"},
            {"id": 9003, "name": "Confidence", "type": "number"},
            {"id": 9004, "name": "Photo link", "type": "text"},
        ],
    },
    {"id": 502, "name": "Poaching", "fields": [{"id": 9101, "name": "Suspects", "type": "number"}]},
]

EVENT_FIELDS = (
    "description",
    "latitude",
    "longitude",
    "altitude",
    "accuracy",
    "dateOccurred",
    "uploadType",
    "ownerGroupId",
    "tags",
)


class FakeCmore(FakeServer):
    name = "fake-cmore"
    base_path = "/za/WebAPI/api"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        users: dict[str, str] | None = None,
        tags: list[dict[str, Any]] | None = None,
        owner_groups: set[Any] | None = None,
    ):
        super().__init__(host, port)
        self.users = {"ranger": "cmore-pw"} if users is None else users
        self.tags = DEFAULT_TAGS if tags is None else tags
        self.owner_groups = owner_groups
        self.tokens: set[str] = set()
        self.logins = 0
        self.events: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self._next_id = 70000
        self.route("POST", r"/token/login", self._login)
        self.route("GET", r"/v2/tags/getfull", self._tags)
        self.route("POST", r"/v2/messages/events", self._event)
        self.route("POST", r"/v2/messages/comments", self._comment)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _auth(self, req: RecordedRequest) -> Reply | None:
        value = req.header("Authorization") or ""
        if not value.startswith("Token ") or value[6:] not in self.tokens:
            return Reply(401, {"message": "Authorization has been denied for this request."})
        return None

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _login(self, req: RecordedRequest) -> Reply:
        f = req.form
        if f.get("clientType") != "SoftwareClient" or not f.get("uniqueId"):
            return Reply(400, {"message": "clientType=SoftwareClient and uniqueId are required"})
        if self.users.get(f.get("username", "")) != f.get("password") or not f.get("password"):
            return Reply(401, {"message": "Invalid username or password"})
        token = secrets.token_hex(16)
        self.tokens.add(token)
        self.logins += 1
        return Reply(200, {"token": token})

    def _tags(self, req: RecordedRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        return Reply(200, self.tags)

    def _event(self, req: RecordedRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        body = req.json
        if not isinstance(body, dict):
            return Reply(400, {"message": "JSON body expected"})
        missing = [k for k in EVENT_FIELDS if k not in body]
        if missing:
            return Reply(400, {"message": f"missing {missing}"})
        if body["uploadType"] != "Generated":
            return Reply(400, {"message": "uploadType must be Generated"})
        if self.owner_groups is not None and body["ownerGroupId"] not in self.owner_groups:
            return Reply(400, {"message": "unknown ownerGroupId"})
        known = {t["id"]: {f["id"] for f in t.get("fields", [])} for t in self.tags}
        for tag in body["tags"]:
            if tag.get("tagId") not in known:
                return Reply(400, {"message": f"unknown tagId {tag.get('tagId')}"})
            for v in tag.get("values", []):
                if v.get("fieldId") not in known[tag["tagId"]]:
                    return Reply(400, {"message": f"unknown fieldId {v.get('fieldId')}"})
        mid = self._new_id()
        self.events[mid] = {**body, "id": mid, "comments": []}
        return Reply(200, {"id": mid})

    def _comment(self, req: RecordedRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        form = req.form
        try:
            root = int(form.get("rootMessageId", ""))
        except ValueError:
            return Reply(400, {"message": "rootMessageId is required"})
        if root not in self.events:
            return Reply(404, {"message": f"message {root} not found"})
        cid = self._new_id()
        photo = req.files.get("file")
        comment = {
            "id": cid,
            "rootMessageId": root,
            "description": form.get("description", ""),
            "dateOccurred": form.get("dateOccurred"),
            "uploadType": form.get("uploadType"),
            "file": None
            if photo is None
            else {"filename": photo.filename, "size": len(photo.data), "content_type": photo.content_type},
        }
        self.comments[cid] = comment
        self.events[root]["comments"].append(comment)
        return Reply(200, {"id": cid})


if __name__ == "__main__":
    serve_main(FakeCmore)
