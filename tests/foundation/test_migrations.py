"""Migrations: versioned, transactional, recorded, idempotent; a changed applied migration is refused."""

from __future__ import annotations

import psycopg2
import pytest

from functions.db import Database
from functions.db.migrate import MigrationError, available_migrations, migrate, status

PUBLIC_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"


@pytest.fixture
def fresh_db(postgres):
    name = "migration_test"
    conn = psycopg2.connect(postgres.admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    db = Database(postgres.admin_url.rsplit("/", 1)[0] + f"/{name}")
    yield db
    db.close()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def test_migrate_applies_everything_once(fresh_db):
    versions = [m.version for m in available_migrations()]
    assert versions[0] == "0001" and versions == sorted(versions)
    assert migrate(fresh_db) == versions
    assert migrate(fresh_db) == []
    assert all(row["applied_at"] is not None for row in status(fresh_db))
    tables = {r["tablename"] for r in fresh_db.fetchall(PUBLIC_TABLES)}
    assert {"parks", "cameras", "inbound_emails", "images", "detections", "alerts", "channels", "deliveries",
            "poison_records", "message_failures", "schema_migrations", "outbox"} <= tables


def test_failed_migration_rolls_back_and_is_not_recorded(fresh_db, tmp_path):
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE b (id int); SELECT * FROM no_such_table;")
    with pytest.raises(MigrationError, match="0002_broken"):
        migrate(fresh_db, tmp_path)
    tables = {r["tablename"] for r in fresh_db.fetchall(PUBLIC_TABLES)}
    assert "a" in tables and "b" not in tables  # 0002 rolled back as a whole
    assert [r["version"] for r in fresh_db.fetchall("SELECT version FROM schema_migrations")] == ["0001"]


def test_changed_applied_migration_is_refused(fresh_db, tmp_path):
    (tmp_path / "0001_x.sql").write_text("CREATE TABLE x (id int);")
    migrate(fresh_db, tmp_path)
    (tmp_path / "0001_x.sql").write_text("CREATE TABLE x (id bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(fresh_db, tmp_path)


def test_database_unavailable_is_a_named_transient_error():
    from functions.db import DatabaseUnavailable

    db = Database("postgresql://postgres@127.0.0.1:9/none", connect_timeout_s=1)
    with pytest.raises(DatabaseUnavailable, match="unreachable"):
        db.fetchone("SELECT 1")
