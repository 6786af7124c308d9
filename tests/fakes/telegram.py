"""A stand-in for the Telegram Bot API (the part TrapAlert uses): ``sendPhoto``, ``sendMessage``, ``getMe``.

    with FakeTelegram(token="123456:ABC", chats={-1001}) as tg:
        tg.url                   # the channel's "api_root"
        tg.messages              # what the chats received: chat_id, text/caption, photo, reply_to
        tg.block(-1001)          # that user blocked the bot (403)
        tg.requests, tg.fail_next(...), ...

Source: the Bot API reference, https://core.telegram.org/bots/api (no code or text copied):
* "Making requests": every method is ``https://api.telegram.org/bot<token>/METHOD_NAME``; parameters as
  query string, ``application/x-www-form-urlencoded``, ``application/json`` or ``multipart/form-data``
  (the only way to upload a file); the answer is a JSON object with ``ok`` and ``result`` on success, or
  ``ok: false`` with ``error_code``, ``description`` and optional ``parameters`` (``ResponseParameters``:
  ``migrate_to_chat_id``, ``retry_after``). A wrong token answers 401 "Unauthorized" (observed behaviour
  documented by the official bot libraries' error tables).
* "sendPhoto": ``chat_id`` (integer or ``@channelusername``), ``photo`` (InputFile upload, file_id or URL),
  ``caption`` 0-1024 characters, ``parse_mode``, ``disable_notification``, ``reply_parameters``
  (a JSON-serialized ``ReplyParameters``: ``message_id``, ``allow_sending_without_reply``); returns the sent
  ``Message`` (``message_id``, ``date``, ``chat``, ``photo``: an array of ``PhotoSize``, ``caption``).
* "sendMessage": ``chat_id``, ``text`` 1-4096 characters, ``parse_mode``, ``link_preview_options``,
  ``reply_parameters``; returns the sent ``Message`` (``text``).
* "getMe": returns the bot's ``User``.
* A bot cannot write to a user who has not started a chat with it (403 "Forbidden: bot can't initiate
  conversation with a user") or who blocked it (403 "Forbidden: bot was blocked by the user"); an unknown
  chat answers 400 "Bad Request: chat not found". Flood control answers 429 with ``parameters.retry_after``.

Run alone: ``python -m tests.fakes.telegram --port 8006``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

from ._server import FakeServer, RecordedRequest, Reply, serve_main


def _error(status: int, description: str, **parameters: Any) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Reply(status, body)


class FakeTelegram(FakeServer):
    name = "fake-telegram"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = "123456:TEST-token_value",
        chats: set[int | str] | None = None,
    ):
        super().__init__(host, port)
        self.token = token
        self.chats: set[int | str] = set(chats if chats is not None else {-1001234567890})
        self.blocked: set[int | str] = set()
        self.migrated: dict[int | str, int] = {}
        self.messages: list[dict[str, Any]] = []
        self._next_id: dict[Any, int] = {}
        self._guard = threading.Lock()
        self.route("POST", r"/bot([^/]+)/(sendPhoto|sendMessage|getMe)", self._method)

    def block(self, chat_id: int | str) -> None:
        self.blocked.add(chat_id)

    def migrate(self, chat_id: int | str, new_id: int) -> None:
        self.migrated[chat_id] = new_id

    # ------------------------------------------------------------------ the methods
    def _params(self, req: RecordedRequest) -> dict[str, Any]:
        if req.json is not None:
            return dict(req.json)
        params = {k: v[-1] for k, v in req.query.items()}
        params.update(req.form)
        for key in ("reply_parameters", "link_preview_options"):  # JSON-serialized in form bodies
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    def _chat(self, raw: Any) -> int | str | None:
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str):
            raw = raw.strip()
            if raw.lstrip("-").isdigit():
                return int(raw)
            if raw.startswith("@"):
                return raw
        return None

    def _method(self, req: RecordedRequest, token: str, method: str) -> Reply:
        if token != self.token:
            return _error(401, "Unauthorized")
        if method == "getMe":
            bot_id = int(self.token.split(":", 1)[0]) if self.token.split(":", 1)[0].isdigit() else 1
            bot = {"id": bot_id, "is_bot": True, "first_name": "TrapAlert"}
            return Reply(200, {"ok": True, "result": bot})
        params = self._params(req)
        chat = self._chat(params.get("chat_id"))
        if chat is None:
            return _error(400, "Bad Request: chat_id is empty")
        if chat in self.migrated:
            return _error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=self.migrated[chat],
            )
        if chat in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        if chat not in self.chats:
            if isinstance(chat, int) and chat > 0:
                return _error(403, "Forbidden: bot can't initiate conversation with a user")
            return _error(400, "Bad Request: chat not found")
        reply = params.get("reply_parameters") or {}
        message: dict[str, Any] = {
            "message_id": 0,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private" if isinstance(chat, int) and chat > 0 else "supergroup"},
        }
        record: dict[str, Any] = {
            "method": method,
            "chat_id": chat,
            "parse_mode": params.get("parse_mode"),
            "reply_to": reply.get("message_id") if isinstance(reply, dict) else None,
            "disable_notification": str(params.get("disable_notification", "")).lower() == "true",
        }
        if method == "sendPhoto":
            photo = req.files.get("photo")
            if photo is None and not params.get("photo"):
                return _error(400, "Bad Request: there is no photo in the request")
            caption = params.get("caption") or ""
            if len(caption) > 1024:
                return _error(400, "Bad Request: message caption is too long")
            data = photo.data if photo else b""
            message["photo"] = [
                {
                    "file_id": "AgAD" + hashlib.sha256(data).hexdigest()[:24],
                    "file_unique_id": hashlib.sha256(data).hexdigest()[:12],
                    "width": 1280,
                    "height": 960,
                    "file_size": len(data),
                }
            ]
            message["caption"] = caption
            record.update(caption=caption, photo=data, filename=photo.filename if photo else None)
        else:
            text = params.get("text") or ""
            if not text:
                return _error(400, "Bad Request: message text is empty")
            if len(text) > 4096:
                return _error(400, "Bad Request: message is too long")
            message["text"] = text
            record["text"] = text
        with self._guard:
            self._next_id[chat] = self._next_id.get(chat, 0) + 1
            message["message_id"] = self._next_id[chat]
        if record["reply_to"]:
            message["reply_to_message"] = {"message_id": record["reply_to"], "chat": message["chat"]}
        record["message_id"] = message["message_id"]
        self.messages.append(record)
        return Reply(200, {"ok": True, "result": message})


if __name__ == "__main__":
    serve_main(FakeTelegram)
