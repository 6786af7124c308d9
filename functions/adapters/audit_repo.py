"""The audit log (table audit_log, migration 0013): every change and every feedback, by whom, through which
door (console, cli, api, system). Read by admins in the park console and by `trapalert audit list`.

Nothing secret is ever written: keys of ``details`` that look like secrets (password, token, secret, key,
authorization, cookie, ...) are dropped, at every depth, and long strings are cut. Call :meth:`record_in`
with the cursor of the change itself, so the change and its audit row commit together; :meth:`record` opens
its own transaction (for a change that was committed elsewhere).

Actions are dotted names: ``<thing>.<verb>`` (``feedback.recorded``, ``suppression.confirmed``,
``suppression.rejected``, ``suppression.lifted``, ``channel.added``, ``channel.removed``, ``rules.updated``,
``camera.added``, ``camera.token_rotated``, ``park.added``, ``upload.received``, ``console.login_link``).
Targets are ``<thing>:<id or name>`` (``alert:42``, ``camera:7``, ``channel:ops-mail``).
"""

from __future__ import annotations

import getpass
import json
import os
import re
from typing import Any

from ..db import Database
from ..statuses import AuditVia
from .listing import newest_first

_SECRET_KEY = re.compile(
    r"passw|passphrase|^pass$|pwd|secret|token|api[_-]?key|^key$|_key$|private|credential|authori[sz]ation|"
    r"cookie|signature|bearer|^sas$|sas[_-]?token|connection[_-]?string|^code$|dsn|^database_url$",
    re.IGNORECASE,
)
_MAX_STRING = 500
_MAX_ITEMS = 50
_MAX_DEPTH = 4


def scrub(details: Any, depth: int = 0) -> Any:
    """``details`` without the keys that look like secrets, strings cut at 500 characters, lists at 50
    items, nesting at 4 levels (JSON-ready)."""
    if depth > _MAX_DEPTH:
        return "…"
    if isinstance(details, dict):
        return {
            str(k)[:100]: scrub(v, depth + 1)
            for k, v in list(details.items())[:_MAX_ITEMS]
            if not _SECRET_KEY.search(str(k))
        }
    if isinstance(details, list | tuple | set):
        return [scrub(v, depth + 1) for v in list(details)[:_MAX_ITEMS]]
    if isinstance(details, str):
        return details.replace("\x00", "")[:_MAX_STRING]
    if details is None or isinstance(details, bool | int | float):
        return details
    return str(details)[:_MAX_STRING]


def cli_actor(explicit: str | None = None) -> str:
    """Who runs a CLI command: ``--actor``, else $TRAPALERT_ACTOR, else the OS user."""
    if explicit:
        return explicit
    if os.environ.get("TRAPALERT_ACTOR"):
        return os.environ["TRAPALERT_ACTOR"]
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in a container
        return os.environ.get("USER") or "unknown"


_INSERT = """INSERT INTO audit_log (actor, actor_role, via, action, park_id, target, details)
             VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) RETURNING id, at"""


class AuditRepository:
    def __init__(self, db: Database):
        self.db = db

    @staticmethod
    def record_in(
        cur,
        *,
        actor: str,
        actor_role: str | None,
        via: AuditVia,
        action: str,
        park_id: int | None = None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Write one audit row with ``cur`` (inside the caller's transaction); its id."""
        cur.execute(
            _INSERT,
            (
                (actor or "unknown")[:200],
                actor_role[:50] if actor_role else None,
                via,
                action[:100],
                park_id,
                target[:200] if target else None,
                json.dumps(scrub(details or {}), default=str),
            ),
        )
        return int(cur.fetchone()["id"])

    def record(self, **fields: Any) -> int:
        """Write one audit row (the keywords of :meth:`record_in`) in its own transaction; its id."""
        with self.db.transaction() as cur:
            return self.record_in(cur, **fields)

    def record_for_park(self, park_slug: str | None, **kwargs: Any) -> int:
        """:meth:`record` with the park given by its slug (None or unknown: no park)."""
        with self.db.transaction() as cur:
            park_id = None
            if park_slug:
                cur.execute("SELECT id FROM parks WHERE slug = %s", (park_slug,))
                row = cur.fetchone()
                park_id = row["id"] if row else None
            return self.record_in(cur, park_id=park_id, **kwargs)

    def list(
        self, park_id: int | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first: id, at, actor, actor_role, via, action, park_id, park (slug), target, details.
        Page with ``before_id`` (the last id of the previous page)."""
        return newest_first(
            self.db,
            "SELECT a.id, a.at, a.actor, a.actor_role, a.via, a.action, a.park_id, p.slug AS park, a.target, "
            "a.details FROM audit_log a LEFT JOIN parks p ON p.id = a.park_id",
            [("a.park_id = %s", park_id), ("a.id < %s", before_id)],
            key="a.id",
            limit=limit,
        )


def audit_cli(
    db: Database, action: str, *, park: str | int | None, target: str | None, details: dict | None = None
) -> int:
    """One audit row for a change made by a `trapalert` command (actor: :func:`cli_actor`, via "cli").
    ``park``: its slug or id."""
    repo = AuditRepository(db)
    kwargs: dict[str, Any] = dict(
        actor=cli_actor(), actor_role="operator", via="cli", action=action, target=target, details=details
    )
    if isinstance(park, int):
        return repo.record(park_id=park, **kwargs)
    return repo.record_for_park(park, **kwargs)
