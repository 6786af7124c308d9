"""Filtered, bounded lists (the audit log, feedback): the one way their reads narrow, order and cap rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..db import Database

MAX_ROWS = 1000


def bounded(limit: int) -> int:
    """A page size between 1 and MAX_ROWS."""
    return max(1, min(int(limit), MAX_ROWS))


def newest_first(
    db: Database, select: str, filters: Iterable[tuple[str, Any]], *, key: str, limit: int
) -> list[dict[str, Any]]:
    """``select`` narrowed by each filter whose value is not None (``("f.park_id = %s", 7)``), highest
    ``key`` first, at most ``limit`` rows (1 to MAX_ROWS)."""
    used = [(sql, value) for sql, value in filters if value is not None]
    if used:
        select += " WHERE " + " AND ".join(sql for sql, _ in used)
    params = (*(value for _, value in used), bounded(limit))
    return db.fetchall(f"{select} ORDER BY {key} DESC LIMIT %s", params)
