"""The process-image handler."""

from __future__ import annotations

from . import NotBuiltYet


def handle(message, svc) -> None:
    raise NotBuiltYet("process-image is not built yet (issue #5)")
