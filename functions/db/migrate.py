"""Versioned SQL migrations: functions/db/migrations/NNNN_name.sql, applied in order, each in its own
transaction, recorded in schema_migrations with a checksum. Safe to run twice and from two processes at
once (an advisory lock serializes migrators)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from . import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_ID = 0x7A1E7  # advisory lock key of the migrator


class MigrationError(RuntimeError):
    """A migration failed or an applied migration was changed afterwards."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    out = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        if not version.isdigit():
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        out.append(Migration(version, name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return out


def migrate(db: Database, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[str] = []
    with db.transaction() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        cur.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())""")
    for migration in available_migrations(directory):
        with db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            cur.execute("SELECT checksum FROM schema_migrations WHERE version = %s", (migration.version,))
            row = cur.fetchone()
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} was changed after it was applied; "
                        "add a new migration instead")
                continue
            try:
                cur.execute(migration.sql)
            except Exception as exc:
                raise MigrationError(f"migration {migration.version}_{migration.name} failed: {exc}") from exc
            cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum))
            applied_now.append(migration.version)
    return applied_now


def status(db: Database, directory: Path = MIGRATIONS_DIR) -> list[dict]:
    """Each known migration with whether and when it was applied."""
    rows = {}
    with db.transaction() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') AS t")
        if cur.fetchone()["t"] is not None:
            cur.execute("SELECT version, applied_at FROM schema_migrations")
            rows = {r["version"]: r["applied_at"] for r in cur.fetchall()}
    return [{"version": m.version, "name": m.name, "applied_at": rows.get(m.version)}
            for m in available_migrations(directory)]
