"""The database pool in Azure's terms, without Azure: an Entra access token as the password of the app's own
role (a fake credential with azure-identity's get_token signature, a real PostgreSQL role whose password is
that token), tokens cached and fetched again, never shown; and a failover waited out, boundedly."""

from __future__ import annotations

import logging
import secrets
import threading
import time

import psycopg2
import pytest
from azure.core.credentials import AccessToken

from functions.db import ENTRA_SCOPE, Database, DatabaseUnavailable, EntraTokenProvider, redact_url
from functions.settings import SettingsError, load_settings

ROLE = "trapalert_entra_test"


def fake_token() -> str:
    """Shaped like an Entra access token (a JWT, about 1.5 kB)."""
    return "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(1100)


class FakeCredential:
    """azure-identity's TokenCredential protocol: ``get_token(*scopes, ...) -> AccessToken``."""

    def __init__(self, tokens: list[str], lifetime_s: float = 3600, clock=time.time):
        self.tokens = list(tokens)
        self.lifetime_s = lifetime_s
        self.clock = clock
        self.calls: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs) -> AccessToken:
        self.calls.append(scopes)
        token = self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]
        return AccessToken(token, int(self.clock() + self.lifetime_s))


class FakeClock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- the token cache (no database)


def test_token_is_cached_until_shortly_before_it_expires():
    clock = FakeClock()
    cred = FakeCredential(["t1", "t2"], lifetime_s=3600, clock=clock)
    provider = EntraTokenProvider(cred, refresh_margin_s=300, clock=clock)
    assert provider() == "t1" and provider() == "t1"
    assert cred.calls == [(ENTRA_SCOPE,)]
    clock.now += 3600 - 301
    assert provider() == "t1"
    clock.now += 2  # within the margin: fetched again before the server would refuse it
    assert provider() == "t2"
    assert len(cred.calls) == 2 and provider.fetches == 2
    provider.invalidate()
    assert provider() == "t2" and len(cred.calls) == 3
    assert "t2" not in repr(provider)


def test_token_provider_is_thread_safe():
    cred = FakeCredential(["only"])
    provider = EntraTokenProvider(cred)
    threads = [threading.Thread(target=provider) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cred.calls) == 1


# ---------------------------------------------------------------- a real role whose password is the token


@pytest.fixture(scope="module")
def entra_role(postgres, database_url):
    """Role ROLE on the session's PostgreSQL, password-checked (scram) unlike the trusted others; yields a
    function that sets its password."""
    hba = postgres.pgdata / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\nhost all {ROLE} ::1/128 scram-sha-256\n"
                   + original)

    def admin(sql: str, params=None) -> None:
        conn = psycopg2.connect(postgres.admin_url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
        finally:
            conn.close()

    admin(f"DROP ROLE IF EXISTS {ROLE}")
    admin(f"CREATE ROLE {ROLE} LOGIN")
    admin("SELECT pg_reload_conf()")
    time.sleep(0.2)

    def set_password(token: str) -> None:
        admin(f"ALTER ROLE {ROLE} PASSWORD %s", (token,))

    yield set_password
    hba.write_text(original)
    admin("SELECT pg_reload_conf()")
    admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{ROLE}'")
    admin(f"DROP ROLE IF EXISTS {ROLE}")


@pytest.fixture
def role_url(postgres) -> str:
    # As in Azure: the URL names the role and no password.
    return f"postgresql://{ROLE}@127.0.0.1:{postgres.port}/{postgres.database}"


def test_pool_connects_with_the_token_as_password(entra_role, role_url, caplog):
    caplog.set_level(logging.DEBUG)
    token = fake_token()
    entra_role(token)
    cred = FakeCredential([token])
    db = Database(role_url, 4, password=EntraTokenProvider(cred), failover_wait_s=2)
    try:
        assert db.fetchone("SELECT current_user AS u")["u"] == ROLE
        with db.connection() as a, db.connection() as b:  # two new connections, one token
            assert a is not b
            assert token not in a.dsn and token not in b.dsn
        assert cred.calls == [(ENTRA_SCOPE,)]
        assert db.auth == "entra"
        for text in (db.url, repr(db), str(db.__dict__.get("_password"))):
            assert token not in text
    finally:
        db.close()
    assert token not in caplog.text


def test_the_role_really_checks_the_password(entra_role, role_url, caplog):
    caplog.set_level(logging.DEBUG)
    entra_role(fake_token())
    wrong = fake_token()
    cred = FakeCredential([wrong])
    db = Database(role_url, 2, password=EntraTokenProvider(cred), failover_wait_s=10)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable, match="refused the login") as info:
            db.fetchone("SELECT 1")
    finally:
        db.close()
    assert time.monotonic() - started < 5, "a refused login is not a failover: no waiting"
    assert len(cred.calls) == 2, "one fresh token is tried after a refusal"
    assert wrong not in str(info.value) and wrong not in repr(info.value.__cause__ or "")
    assert wrong not in caplog.text


def test_token_is_fetched_again_when_it_expires(entra_role, role_url, caplog):
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    first, second = fake_token(), fake_token()
    entra_role(first)
    cred = FakeCredential([first, second], lifetime_s=600, clock=clock)
    db = Database(role_url, 2, password=EntraTokenProvider(cred, refresh_margin_s=60, clock=clock))
    try:
        assert db.fetchone("SELECT current_user AS u")["u"] == ROLE
        entra_role(second)  # the identity's next token (the server accepts any valid one)
        with db.connection():  # the pooled connection: no new token needed
            pass
        assert len(cred.calls) == 1
        clock.now += 600 - 59  # within the refresh margin
        db.close()  # new connections from here on
        assert db.fetchone("SELECT current_user AS u")["u"] == ROLE
        assert len(cred.calls) == 2
    finally:
        db.close()
    assert first not in caplog.text and second not in caplog.text


def test_a_refused_cached_token_is_replaced(entra_role, role_url, caplog):
    caplog.set_level(logging.DEBUG)
    first, second = fake_token(), fake_token()
    entra_role(first)
    cred = FakeCredential([first, second])
    db = Database(role_url, 2, password=EntraTokenProvider(cred))
    try:
        db.fetchone("SELECT 1")
        entra_role(second)  # the cached token no longer works (revoked, rotated early)
        db.close()
        assert db.fetchone("SELECT current_user AS u")["u"] == ROLE
        assert len(cred.calls) == 2
    finally:
        db.close()
    assert first not in caplog.text and second not in caplog.text


def test_repr_and_messages_hide_passwords():
    db = Database("postgresql://admin:s3cret-pw@db.example:5432/trapalert?sslmode=require")
    assert "s3cret-pw" not in repr(db)
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("postgresql://u:p@h:5/db") == "postgresql://u:***@h:5/db"
    provider = EntraTokenProvider(FakeCredential(["tok-123"]))
    provider()
    assert provider.scrub("FATAL: bad tok-123 here") == "FATAL: bad *** here"


# ---------------------------------------------------------------- a failover (the server stopped, then back)


def test_pool_waits_out_a_short_outage(postgres, database_url, caplog):
    caplog.set_level(logging.INFO, logger="trapalert.db")
    db = Database(database_url, 2, failover_wait_s=20)
    try:
        assert db.fetchone("SELECT 1 AS one")["one"] == 1  # a pooled connection that the stop will kill
        postgres.stop("fast")
        back = threading.Timer(2.0, postgres.start)
        back.start()
        started = time.monotonic()
        try:
            assert db.fetchone("SELECT 1 AS one")["one"] == 1
        finally:
            back.join()
        waited = time.monotonic() - started
        assert 1.5 <= waited < 20, waited
        assert "trying again" in caplog.text
    finally:
        db.close()
        if not postgres.running():
            postgres.start()


def test_the_wait_is_bounded(postgres, database_url):
    db = Database(database_url, 2, failover_wait_s=1.5)
    try:
        db.fetchone("SELECT 1")
        postgres.stop("immediate")
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="unreachable for"):
            db.fetchone("SELECT 1")
        assert 1.0 <= time.monotonic() - started < 5
    finally:
        db.close()
        postgres.start()
    db = Database(database_url, 2, failover_wait_s=5)
    try:
        assert db.fetchone("SELECT 1 AS one")["one"] == 1
    finally:
        db.close()


# ---------------------------------------------------------------- settings and the composition root


@pytest.fixture
def db_env(monkeypatch, tmp_path):
    for name in ("DATABASE_URL", "DATABASE_AUTH", "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME",
                 "DATABASE_USER", "DATABASE_SSLMODE", "DATABASE_POOL_MAX", "DATABASE_FAILOVER_WAIT_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRAPALERT_LOCAL_SETTINGS", str(tmp_path / "none.json"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SCORING_URL", "http://127.0.0.1:8081")

    def set_env(**values: str) -> None:
        for k, v in values.items():
            monkeypatch.setenv(k, v)
    return set_env


def test_entra_settings_compose_a_url_without_password(db_env):
    db_env(DATABASE_AUTH="entra", DATABASE_HOST="psql-x.postgres.database.azure.com", DATABASE_PORT="6432",
           DATABASE_NAME="trapalert", DATABASE_USER="func-trapalert-prod-abc123")
    s = load_settings()
    assert s.database_url.get_secret_value() == (
        "postgresql://func-trapalert-prod-abc123@psql-x.postgres.database.azure.com:6432/trapalert"
        "?sslmode=require")
    assert s.database_failover_wait_s == 10 and s.database_pool_max == 8


def test_password_url_still_works_in_password_mode(db_env):
    db_env(DATABASE_URL="postgresql://u:pw@db/trapalert")
    s = load_settings()
    assert s.database_auth == "password"
    assert s.database_url.get_secret_value() == "postgresql://u:pw@db/trapalert"


@pytest.mark.parametrize(("url", "named"), [
    ("postgresql://u:pw@db.example/trapalert?sslmode=require", "carries a password"),
    ("postgresql://db.example/trapalert?sslmode=require", "names no role"),
    ("postgresql://u@db.example/trapalert", "unencrypted"),
    ("postgresql://u@db.example/trapalert?sslmode=disable", "unencrypted"),
])
def test_entra_mode_refuses_unsafe_urls(db_env, url, named):
    db_env(DATABASE_AUTH="entra", DATABASE_URL=url)
    with pytest.raises(SettingsError, match=named) as info:
        load_settings()
    assert "DATABASE_URL" in str(info.value) and "pw" not in str(info.value)


def test_entra_mode_allows_plain_text_on_loopback_only(db_env):
    db_env(DATABASE_AUTH="entra", DATABASE_URL="postgresql://app@127.0.0.1:5432/trapalert")
    assert load_settings().database_auth == "entra"


def test_services_build_an_entra_pool(db_env, monkeypatch):
    import functions.db
    from functions.bootstrap import Services

    token = fake_token()
    cred = FakeCredential([token])
    monkeypatch.setattr(functions.db, "default_credential", lambda client_id=None: cred)
    db_env(DATABASE_AUTH="entra", DATABASE_URL="postgresql://app@db.example:6432/trapalert?sslmode=require",
           DATABASE_POOL_MAX="5", DATABASE_FAILOVER_WAIT_S="12")
    db = Services(load_settings()).db
    assert db.auth == "entra" and db._max == 5 and db._failover_wait_s == 12
    assert db._password() == token and cred.calls == [(ENTRA_SCOPE,)]
    assert token not in repr(db) and token not in db.url

    db_env(DATABASE_AUTH="password", DATABASE_URL="postgresql://u:pw@db/trapalert")
    plain = Services(load_settings()).db
    assert plain.auth == "password" and "pw" not in repr(plain)


# ---------------------------------------------------------------- the pipeline's principal step, run here


def test_pipeline_principal_sql_grants_what_the_app_needs(postgres, database_url):
    """The two SQL scripts of deploy-steps.yml step 3b, run by psql against the local server (a stand-in for
    Azure's pgaadauth_create_principal_with_oid): the role is created once and can use every table."""
    import re
    import subprocess

    import yaml
    from pgserver._commands import POSTGRES_BIN_PATH

    from functions.localhost.services import PROJECT_ROOT

    steps = yaml.safe_load((PROJECT_ROOT / "infra/pipelines/deploy-steps.yml").read_text())["steps"]
    step = next(s for s in steps if "principal" in s.get("displayName", "").lower())
    script = step["inputs"]["inlineScript"]
    create_sql, grant_sql = re.findall(r"<<'SQL'\n(.*?)\nSQL\n", script, re.S)
    role, oid = "func-trapalert-test-abc123", "11111111-2222-3333-4444-555555555555"

    def admin(sql: str, url: str = postgres.admin_url) -> None:
        conn = psycopg2.connect(url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def psql(url: str, sql: str, **variables: str) -> None:
        args = [str(POSTGRES_BIN_PATH / "psql"), url, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        for k, v in variables.items():
            args += ["-v", f"{k}={v}"]
        subprocess.run(args, input=sql, text=True, check=True, capture_output=True)

    admin("""CREATE OR REPLACE FUNCTION
               pgaadauth_create_principal_with_oid(r text, o text, t text, a bool, m bool)
             RETURNS text LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('CREATE ROLE %I LOGIN', r);
             RETURN 'created ' || r; END $$""")
    try:
        for _ in range(2):  # idempotent: the second deployment changes nothing and fails nothing
            psql(postgres.admin_url, create_sql, role=role, oid=oid)
            psql(database_url, grant_sql, role=role)
        app = Database(f"postgresql://{role}@127.0.0.1:{postgres.port}/{postgres.database}", 2)
        try:
            tables = [r["tablename"] for r in app.fetchall(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            assert tables
            for t in tables:
                app.fetchall(f'SELECT * FROM "{t}" LIMIT 0')
            assert app.fetchone(
                "SELECT has_table_privilege(current_user, 'parks', 'INSERT, UPDATE, DELETE') AS ok")["ok"]
        finally:
            app.close()
    finally:
        admin(f'DROP OWNED BY "{role}"', database_url)
        admin(f'DROP ROLE IF EXISTS "{role}"')
        admin("DROP FUNCTION IF EXISTS pgaadauth_create_principal_with_oid(text, text, text, bool, bool)")
