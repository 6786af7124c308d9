"""Alert rules in PostgreSQL (table alert_rules): one row per park and per camera override, each holding
only the flat keys set at that level (see functions/domain/rules.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..db import Database
from ..domain.rules import RulesError


class RulesRepository:
    def __init__(self, db: Database):
        self.db = db

    def scope(self, park_slug: str, camera_name: str | None = None) -> tuple[int, int | None]:
        park = self.db.fetchone("SELECT id FROM parks WHERE slug = %s", (park_slug,))
        if park is None:
            raise RulesError(f"unknown park {park_slug!r}")
        if camera_name is None:
            return park["id"], None
        cam = self.db.fetchone(
            "SELECT id FROM cameras WHERE park_id = %s AND name = %s", (park["id"], camera_name)
        )
        if cam is None:
            raise RulesError(f"unknown camera {camera_name!r} in park {park_slug!r}")
        return park["id"], cam["id"]

    def layers(self, park_id: int, camera_id: int | None, cur=None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(park layer, camera layer) as stored."""
        if cur is None:
            with self.db.transaction() as own:
                return self.layers_in(own, park_id, camera_id)
        return self.layers_in(cur, park_id, camera_id)

    @staticmethod
    def layers_in(cur, park_id: int, camera_id: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """``layers`` inside the caller's transaction."""
        cur.execute(
            "SELECT camera_id, rules FROM alert_rules WHERE park_id = %s "
            "AND (camera_id IS NULL OR camera_id = %s)",
            (park_id, camera_id),
        )
        rows = cur.fetchall()
        park_layer = next((dict(r["rules"]) for r in rows if r["camera_id"] is None), {})
        camera_layer = (
            next((dict(r["rules"]) for r in rows if r["camera_id"] is not None), {}) if camera_id else {}
        )
        return park_layer, camera_layer

    @contextmanager
    def editing(self, park_id: int) -> Iterator[RulesEdit]:
        """One transaction that edits a park's rules, serialized per park (two operators at once): read the
        layers, let the domain compute the new one (functions/domain/rules.py ``new_layer``), save it."""
        with self.db.transaction() as cur:
            cur.execute("SELECT id FROM parks WHERE id = %s FOR UPDATE", (park_id,))
            yield RulesEdit(cur, park_id)


class RulesEdit:
    def __init__(self, cur, park_id: int):
        self.cur = cur
        self.park_id = park_id

    def layers(self, camera_id: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        return RulesRepository.layers_in(self.cur, self.park_id, camera_id)

    def overrides(self) -> list[tuple[str, dict[str, Any]]]:
        """(camera name, camera layer) of every camera override of the park."""
        self.cur.execute(
            "SELECT c.name, r.rules FROM alert_rules r JOIN cameras c ON c.id = r.camera_id "
            "WHERE r.park_id = %s",
            (self.park_id,),
        )
        return [(row["name"], dict(row["rules"])) for row in self.cur.fetchall()]

    def save(self, camera_id: int | None, layer: dict[str, Any], updated_by: str | None) -> None:
        self.cur.execute(
            """INSERT INTO alert_rules (park_id, camera_id, rules, updated_by)
               VALUES (%s, %s, %s::jsonb, %s)
               ON CONFLICT (park_id, COALESCE(camera_id, 0))
               DO UPDATE SET rules = EXCLUDED.rules, updated_at = now(), updated_by = EXCLUDED.updated_by""",
            (self.park_id, camera_id, _json(layer), updated_by),
        )


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)
