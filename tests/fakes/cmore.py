"""A local CMORE stand-in (token login, tag catalogue, events, comments), recorded.

    with FakeCmore(users={"ranger": "pw"}, api_tokens={"tok"}) as cm:
        cm.url                   # base_url for the cmore channel (ends in /za/WebAPI/api)
        cm.events                # {message_id: {...posted event..., "comments": [...]}}
        cm.expire_tokens()       # every token issued by a login now answers 401 (forces a re-login)
        cm.empty_comment_answers = True   # POST /comment answers 200 with an empty body
        cm.requests, cm.fail_next(...), ...   (see _server.FakeServer)

The shapes follow CMORE as the open-source integration that reaches it in production talks to it: PADAS
``gundi-integration-cmore`` (it cites CSIR's CMORE API reference). Endpoints under ``/za/WebAPI/api``
(``AuthenticateConfig.base_url``: "the server plus '/za/WebAPI/api'"), each with its source:

``POST /token/login``
    ``app/datasource/client.py`` ``CmoreClient.login``: form ``username``, ``password``, ``clientType``
    (``SoftwareClient`` among ``BrowserClient``/``MobileClient``/``SoftwareClient``/``SystemClient``,
    ``app/datasource/cli.py`` ``login``), ``uniqueId``. The answer is "a security token + user info"
    (``cli.py``); the integration prints it whole, so the key of the token is not known from it: this
    stand-in answers ``{"token": ..., "user": {"username": ...}}``.
Every other endpoint
    ``Authorization: Token <token>`` (``CmoreClient.__init__``); the token is one issued by a login or a
    long-lived API token (``app/actions/configurations.py`` ``AuthenticateConfig.token``). 401 otherwise.
``GET /v2/tags/getfull``
    ``CmoreClient.get_tags`` and ``app/datasource/tag_index.py`` ``_build_index`` (the sample of
    ``app/datasource/tests/test_tag_index.py`` "mirrors the real shape"): a list of tag *domains*
    ``{id, name, iconId, tags: [{id, name, typeLimiter, tagDomainId, fields: [{id, name, dataType,
    lookups}]}]}``. It takes about 25 s in production: tests slow it down with ``delay_next``.
``POST /v2/messages/events``
    ``CmoreClient.post_event`` / ``app/datasource/schemas.py`` ``CmoreEvent``: JSON ``description``,
    ``latitude``, ``longitude``, ``altitude``, ``accuracy``, ``dateOccurred``, ``uploadType``
    (``Generated``/``Mobile``/``Website``/``Unknown``), ``ownerGroupId``, ``tags: [{tagId, values:
    [{fieldId, value}]}]``; the answer carries ``messageId`` (``app/actions/handlers.py``
    ``_extract_message_id``). Unknown tag or field ids are refused here with 400 (the integration's docs,
    ``docs/configuration.md``, say an invisible tag is *silently dropped* by CMORE; refusing makes a wrong
    id visible in tests).
``POST /comment`` (no ``v2`` prefix)
    ``CmoreClient.post_comment`` (JSON ``{description, rootMessageId, uploadType}``, ``schemas.CmoreComment``)
    and ``CmoreClient.post_comment_with_file`` (multipart: the same fields as form parts plus a ``file``
    part). Answers ``{"id": <comment id>}`` (``app/datasource/tests/test_client.py``) or, with
    ``empty_comment_answers``, 200 with an empty body (``client._safe_json``: write endpoints may do that).

Run alone: ``python -m tests.fakes.cmore --port 8002``.
"""

from __future__ import annotations

import secrets
from typing import Any

from ._server import FakeServer, RecordedRequest, Reply, serve_main

DEFAULT_TAGS: list[dict[str, Any]] = [
    {
        "id": 8,
        "name": "Wildlife",
        "iconId": None,
        "tags": [
            {
                "id": 501,
                "name": "Camera Trap Alert",
                "typeLimiter": "Incident",
                "tagDomainId": 8,
                "fields": [
                    {"id": 9001, "name": "Camera", "dataType": "String", "lookups": []},
                    {"id": 9002, "name": "Detected", "dataType": "String", "lookups": []},
                    {"id": 9003, "name": "Confidence", "dataType": "Number", "lookups": []},
                    {"id": 9004, "name": "Photo link", "dataType": "String", "lookups": []},
                ],
            },
            {
                "id": 502,
                "name": "Poaching",
                "typeLimiter": "Incident",
                "tagDomainId": 8,
                "fields": [{"id": 9101, "name": "Suspects", "dataType": "Number", "lookups": []}],
            },
        ],
    },
    {
        "id": 2,
        "name": "Other",
        "iconId": 7,
        "tags": [
            {"id": 3144, "name": "Poaching", "typeLimiter": "Message", "tagDomainId": 2, "fields": []},
        ],
    },
]

EVENT_FIELDS = ("description", "uploadType")
UPLOAD_TYPES = {"Generated", "Mobile", "Website", "Unknown"}
CLIENT_TYPES = {"BrowserClient", "MobileClient", "SoftwareClient", "SystemClient"}


class FakeCmore(FakeServer):
    name = "fake-cmore"
    base_path = "/za/WebAPI/api"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        users: dict[str, str] | None = None,
        api_tokens: set[str] | None = None,
        tags: list[dict[str, Any]] | None = None,
        owner_groups: set[Any] | None = None,
    ):
        super().__init__(host, port)
        self.users = {"ranger": "cmore-pw"} if users is None else users
        self.api_tokens = set(api_tokens or ())
        self.tags = DEFAULT_TAGS if tags is None else tags
        self.owner_groups = owner_groups
        self.empty_comment_answers = False
        self.tokens: set[str] = set()
        self.logins = 0
        self.events: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self._next_id = 70000
        self.route("POST", r"/token/login", self._login)
        self.route("GET", r"/v2/tags/getfull", self._tags)
        self.route("POST", r"/v2/messages/events", self._event)
        self.route("POST", r"/comment", self._comment)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _auth(self, req: RecordedRequest) -> Reply | None:
        value = req.header("Authorization") or ""
        token = value[6:] if value.startswith("Token ") else None
        if token is None or (token not in self.tokens and token not in self.api_tokens):
            return Reply(401, {"message": "Authorization has been denied for this request."})
        return None

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _login(self, req: RecordedRequest) -> Reply:
        f = req.form
        if f.get("clientType") not in CLIENT_TYPES or not f.get("uniqueId"):
            return Reply(400, {"message": "clientType and uniqueId are required"})
        if self.users.get(f.get("username", "")) != f.get("password") or not f.get("password"):
            return Reply(401, {"message": "Invalid username or password"})
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens.add(token)
            self.logins += 1
        return Reply(200, {"token": token, "user": {"username": f["username"]}})

    def _tags(self, req: RecordedRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        return Reply(200, self.tags)

    def _known(self) -> dict[int, set[int]]:
        return {t["id"]: {f["id"] for f in t.get("fields", [])} for d in self.tags for t in d.get("tags", [])}

    def _event(self, req: RecordedRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        body = req.json
        if not isinstance(body, dict):
            return Reply(400, {"message": "JSON body expected"})
        missing = [k for k in EVENT_FIELDS if k not in body]
        if missing:
            return Reply(400, {"message": f"missing {missing}"})
        if body["uploadType"] not in UPLOAD_TYPES:
            return Reply(400, {"message": "invalid uploadType"})
        if self.owner_groups is not None and body.get("ownerGroupId") not in self.owner_groups:
            return Reply(400, {"message": "unknown ownerGroupId"})
        known = self._known()
        for tag in body.get("tags") or []:
            if tag.get("tagId") not in known:
                return Reply(400, {"message": f"unknown tagId {tag.get('tagId')}"})
            for v in tag.get("values", []):
                if v.get("fieldId") not in known[tag["tagId"]]:
                    return Reply(400, {"message": f"unknown fieldId {v.get('fieldId')}"})
        with self.lock:
            mid = self._new_id()
            self.events[mid] = {**body, "id": mid, "comments": []}
        return Reply(200, {"messageId": mid})

    def _comment(self, req: RecordedRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        multipart = (req.header("Content-Type") or "").startswith("multipart/form-data")
        fields: dict[str, Any] = (
            dict(req.form) if multipart else (req.json if isinstance(req.json, dict) else {})
        )
        try:
            root = int(fields.get("rootMessageId", ""))
        except (TypeError, ValueError):
            return Reply(400, {"message": "rootMessageId is required"})
        if not multipart and not isinstance(fields.get("rootMessageId"), int):
            return Reply(400, {"message": "rootMessageId must be an integer"})
        if fields.get("uploadType", "Generated") not in UPLOAD_TYPES or "description" not in fields:
            return Reply(400, {"message": "description and a valid uploadType are required"})
        if root not in self.events:
            return Reply(404, {"message": f"message {root} not found"})
        photo = req.files.get("file")
        with self.lock:
            cid = self._new_id()
            comment = {
                "id": cid,
                "rootMessageId": root,
                "description": fields.get("description", ""),
                "uploadType": fields.get("uploadType"),
                "file": None
                if photo is None
                else {
                    "filename": photo.filename,
                    "size": len(photo.data),
                    "content_type": photo.content_type,
                },
            }
            self.comments[cid] = comment
            self.events[root]["comments"].append(comment)
        if self.empty_comment_answers:
            return Reply(200)
        return Reply(200, {"id": cid})


if __name__ == "__main__":
    serve_main(FakeCmore)
