"""A stand-in for Twilio's Programmable Messaging API: create a Message (SMS, MMS, WhatsApp).

    with FakeTwilio(account_sid=SID, auth_token="tok") as tw:
        tw.url             # the channel's "api_root"
        tw.messages        # accepted messages: dicts with To, From / MessagingServiceSid, Body, MediaUrl, sid
        tw.requests, tw.fail_next(...), ...

Sources (no code or text copied):
* Twilio API reference, "Message resource", https://www.twilio.com/docs/messaging/api/message-resource:
  ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with form fields ``To`` (E.164, or
  ``whatsapp:+...``), ``From`` or ``MessagingServiceSid`` (one is required), ``Body`` and/or ``MediaUrl``
  (repeatable, up to 10; one of Body/MediaUrl is required: error 21602); the answer is 201 with the Message
  resource as JSON (``sid`` "SM" + 32 hex, ``account_sid``, ``to``, ``from``, ``body``, ``status``
  "queued"/"accepted", ``num_media``, ``num_segments``, ``direction`` "outbound-api", ``date_created``
  RFC 2822, ``uri``).
* Twilio API reference, "Authentication" (HTTP basic auth: Account SID + auth token, or API key SID +
  secret with the Account SID in the path) and the error pages https://www.twilio.com/docs/errors/<code>:
  errors are JSON ``{code, message, more_info, status}``: 20003 authentication (401), 21211 invalid To,
  21212 invalid From, 21602 no Body/MediaUrl, 63007 no WhatsApp sender for From (400), 20429 too many
  requests (429).
* twilio-python (the official client, ``twilio/rest/api/v2010/account/message/__init__.py``): the form
  field names it sends and that it posts ``application/x-www-form-urlencoded`` with ``Accept:
  application/json``.

Run alone: ``python -m tests.fakes.twilio --port 8007``.
"""

from __future__ import annotations

import base64
import re
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

from ._server import FakeServer, RecordedRequest, Reply, serve_main

DEFAULT_SID = "AC" + "0123456789abcdef" * 2
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _error(status: int, code: int, message: str) -> Reply:
    return Reply(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


class FakeTwilio(FakeServer):
    name = "fake-twilio"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account_sid: str = DEFAULT_SID,
        auth_token: str = "twilio-test-token",
        api_keys: dict[str, str] | None = None,
        senders: set[str] | None = None,
        whatsapp_senders: set[str] | None = None,
    ):
        super().__init__(host, port)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_keys = dict(api_keys or {})  # SK... -> secret
        self.senders = set(senders or {"+15005550006"})
        self.whatsapp_senders = set(whatsapp_senders or {"+14155238886"})
        self.messages: list[dict[str, Any]] = []
        self.route("POST", r"/2010-04-01/Accounts/([^/]+)/Messages\.json", self._create)

    def _authorized(self, req: RecordedRequest, account: str) -> bool:
        header = req.header("Authorization") or ""
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if account != self.account_sid:
            return False
        if user == self.account_sid:
            return password == self.auth_token
        return self.api_keys.get(user) == password

    def _create(self, req: RecordedRequest, account: str) -> Reply:
        if not self._authorized(req, account):
            return _error(401, 20003, "Authenticate")
        # repeated fields (MediaUrl) need every value, not the last one the base parser keeps
        fields = parse_qs(req.body.decode("utf-8"), keep_blank_values=True)
        one = {k: v[-1] for k, v in fields.items()}
        to, sender, service = one.get("To", ""), one.get("From"), one.get("MessagingServiceSid")
        body, media = one.get("Body", ""), fields.get("MediaUrl", [])
        channel = "whatsapp" if to.startswith("whatsapp:") else "sms"
        if not _E164.match(to.removeprefix("whatsapp:")):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and not service:
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        if sender:
            if channel == "whatsapp":
                if not sender.startswith("whatsapp:") or sender[9:] not in self.whatsapp_senders:
                    return _error(
                        400, 63007, "Twilio could not find a Channel with the specified From address"
                    )
            elif sender not in self.senders:
                return _error(400, 21212, f"The 'From' number {sender} is not a valid phone number")
        if not body and not media:
            return _error(400, 21602, "Message body is required.")
        if len(media) > 10:
            return _error(400, 21623, "Number of media files exceeds allowed limit")
        sid = "SM" + uuid.uuid4().hex
        record = {
            "sid": sid,
            "To": to,
            "From": sender,
            "MessagingServiceSid": service,
            "Body": body,
            "MediaUrl": media,
            "channel": channel,
        }
        with self.lock:
            self.messages.append(record)
        now = formatdate(usegmt=True)
        return Reply(
            201,
            {
                "sid": sid,
                "account_sid": account,
                "messaging_service_sid": service,
                "to": to,
                "from": sender,
                "body": body,
                "status": "accepted" if service else "queued",
                "num_media": str(len(media)),
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "price": None,
                "price_unit": "USD",
                "error_code": None,
                "error_message": None,
                "date_created": now,
                "date_updated": now,
                "date_sent": None,
                "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
                "subresource_uris": {"media": f"/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json"},
            },
        )


if __name__ == "__main__":
    serve_main(FakeTwilio)
