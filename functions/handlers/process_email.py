"""The process-email webhook handler."""

from __future__ import annotations

import azure.functions as func

from . import NotBuiltYet


def handle(req: func.HttpRequest, svc) -> tuple[func.HttpResponse, list[str]]:
    """Return the HTTP response and the process-image messages to enqueue."""
    raise NotBuiltYet("process-email is not built yet (issue #3)")
