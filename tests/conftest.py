"""Session-wide services for the tests: one real Azurite and one real PostgreSQL per test run, on free
ports, with data in a temporary folder. Tests reset tables and queues, not the services."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["TRAPALERT_LOCAL_SETTINGS"] = "/nonexistent/local.settings.json"  # never the developer's

from functions import names  # noqa: E402
from functions.adapters.storage import Storage  # noqa: E402
from functions.db import Database  # noqa: E402
from functions.db.migrate import migrate  # noqa: E402
from functions.localhost.services import Azurite, EmbeddedPostgres, free_port  # noqa: E402

from tests.support.host import HostProcess, host_env, write_host_json  # noqa: E402


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres(services_dir):
    pg = EmbeddedPostgres(services_dir / "postgres", free_port()).start()
    yield pg
    pg.stop("immediate")


@pytest.fixture(scope="session")
def azurite(services_dir):
    az = Azurite(services_dir / "azurite", free_port(), free_port(), free_port()).start()
    yield az
    az.stop()


@pytest.fixture(scope="session")
def database_url(postgres) -> str:
    db = Database(postgres.url)
    migrate(db)
    db.close()
    return postgres.url


@pytest.fixture(scope="session")
def db(database_url):
    database = Database(database_url)
    yield database
    database.close()


@pytest.fixture(scope="session")
def storage(azurite) -> Storage:
    s = Storage(connection_string=azurite.connection_string)
    s.ensure_resources()
    return s


def _all_tables(db: Database) -> list[str]:
    return [r["tablename"] for r in db.fetchall(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")]


@pytest.fixture
def clean_db(db):
    """An empty database (schema kept) for this test."""
    tables = _all_tables(db)
    if tables:
        db.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
    return db


@pytest.fixture
def clean_queues(storage):
    """Empty work and poison queues for this test."""
    for q in names.ALL_QUEUES:
        storage.queue(q).clear_messages()
    return storage


@pytest.fixture
def app_settings(azurite, database_url, monkeypatch):
    """This process's settings pointed at the test services (for calling handlers and the CLI in-process)."""
    from functions.bootstrap import reset_services

    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SCORING_URL", os.environ.get("SCORING_URL", "http://127.0.0.1:9"))
    reset_services()
    yield
    reset_services()


@pytest.fixture
def host_factory(azurite, database_url, tmp_path):
    """Start local Functions hosts (real processes) on free ports; all are stopped after the test."""
    started: list[HostProcess] = []

    def start(script_root: Path | None = None, host_json: dict | None = None, **env_extra: str) -> HostProcess:
        from functions.localhost.services import PROJECT_ROOT

        hj = write_host_json(tmp_path / f"host-{len(started)}.json", **host_json) if host_json else None
        host = HostProcess(script_root=script_root or PROJECT_ROOT,
                           env=host_env(azurite.connection_string, database_url, **env_extra),
                           port=free_port(), log_path=tmp_path / f"host-{len(started)}.log", host_json=hj)
        started.append(host)
        return host.start()

    yield start
    for h in started:
        if h.proc is not None:
            h.stop(timeout_s=10)
