"""The send-alert handler."""

from __future__ import annotations

from . import NotBuiltYet


def handle(message, svc) -> None:
    raise NotBuiltYet("send-alert is not built yet (issue #6)")
