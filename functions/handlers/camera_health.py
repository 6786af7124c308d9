"""The camera-health handler."""

from __future__ import annotations

from . import NotBuiltYet


def handle(message, svc) -> None:
    raise NotBuiltYet("camera-health is not built yet (issue #7)")
