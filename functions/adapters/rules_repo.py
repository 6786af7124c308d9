"""Alert rules in PostgreSQL (table alert_rules): one row per park and per camera override, each holding
only the flat keys set at that level (see functions/domain/rules.py)."""

from __future__ import annotations

from typing import Any

from ..db import Database
from ..domain.rules import Rules, RulesError, apply_assignments, effective_rules


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

    def effective(self, park_id: int, camera_id: int | None, cur=None) -> Rules:
        return effective_rules(*self.layers(park_id, camera_id, cur))

    def set(
        self,
        park_id: int,
        camera_id: int | None,
        assignments: dict[str, Any | None],
        updated_by: str | None = None,
    ) -> dict[str, Any]:
        """Apply ``assignments`` at one level (validated against the levels below); return the new layer."""
        with self.db.transaction() as cur:
            # serialize edits of one park (two operators at once)
            cur.execute("SELECT id FROM parks WHERE id = %s FOR UPDATE", (park_id,))
            park_layer, camera_layer = self.layers(park_id, camera_id, cur)
            if camera_id is None:
                # every camera override of the park must stay valid on top of the new park layer
                new = apply_assignments(park_layer, assignments)
                cur.execute(
                    "SELECT c.name, r.rules FROM alert_rules r JOIN cameras c ON c.id = r.camera_id "
                    "WHERE r.park_id = %s",
                    (park_id,),
                )
                for row in cur.fetchall():
                    try:
                        effective_rules(new, dict(row["rules"]))
                    except RulesError as exc:
                        raise RulesError(f"{exc} (with the override of camera {row['name']})") from None
            else:
                new = apply_assignments(camera_layer, assignments, below=park_layer)
            cur.execute(
                """INSERT INTO alert_rules (park_id, camera_id, rules, updated_by)
                   VALUES (%s, %s, %s::jsonb, %s)
                   ON CONFLICT (park_id, COALESCE(camera_id, 0))
                   DO UPDATE SET rules = EXCLUDED.rules, updated_at = now(),
                                 updated_by = EXCLUDED.updated_by""",
                (park_id, camera_id, _json(new), updated_by),
            )
            return new


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)
