"""Absolute addresses of the park console's pages, for links that leave the app (ops notices, printed links):
the Function app's public address (setting ``PUBLIC_BASE_URL``) + the console's route. The pages themselves
link relative to the request (functions/console/app.py ``base_path``).

No secret ever goes into these URLs: the console signs people in itself (Entra ID or a one-time link whose
token travels in the #fragment), so a link in a chat or an email opens nothing by itself.
"""

from __future__ import annotations

# function_app.py route "console/{*path}" under the host's route prefix "api"
CONSOLE_ROUTE = "/api/console"


def console_url(base_url: str, page: str = "map") -> str:
    """``https://<app>/api/console/<page>``."""
    return f"{base_url.rstrip('/')}{CONSOLE_ROUTE}/{page.strip('/')}"


def ops_page_url(base_url: str) -> str:
    """The console's ops page (admin role): queues, poisoned messages and their Replay, refused deliveries.
    Ops notices link here."""
    return console_url(base_url, "ops")
