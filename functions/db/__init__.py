"""PostgreSQL access: a small thread-safe connection pool and transactions with parameterized queries.

Two ways to authenticate (functions/settings.py ``DATABASE_AUTH``):

- ``password``: the URL carries everything (local stack, tests, a developer's server).
- ``entra``: the URL names the app's own role and no password; each new connection sends a Microsoft Entra
  access token of the app's managed identity as its password (scope :data:`ENTRA_SCOPE`). Tokens are cached
  until shortly before they expire, fetched again after an authentication failure, and never logged.

A failover (Azure HA: 1-2 minutes; a restart: seconds) closes every connection. The pool drops connections
whose server went away before handing them out, and a new connection that is refused is tried again with a
small backoff for up to ``failover_wait_s`` before :class:`DatabaseUnavailable` is raised; longer outages are
the queue retry middleware's (functions/middleware/retry.py).
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extras
import psycopg2.pool

log = logging.getLogger("trapalert.db")

# Errors that mean "the database is not reachable right now": callers answer 5xx / let the message retry.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (psycopg2.OperationalError, psycopg2.InterfaceError)

# Scope of Azure Database for PostgreSQL access tokens (Entra ID).
ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"

# Connection errors that no wait cures (wrong role, wrong password or token, no such database, refused by
# pg_hba): one fresh token is tried, then the error is raised at once.
_AUTH_ERRORS = ("authentication failed", "no pg_hba.conf entry", "pg_hba.conf rejects", "does not exist",
                "permission denied")


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the operation may succeed later."""


class TokenCredential(Protocol):
    """What azure-identity credentials offer (``DefaultAzureCredential``, ``ManagedIdentityCredential``)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:  # -> azure.core.credentials.AccessToken
        ...


class EntraTokenProvider:
    """Access tokens for PostgreSQL from an azure-identity credential, cached until ``refresh_margin_s``
    before they expire. Thread-safe. The token is handed to libpq only; no repr, log or error shows it."""

    def __init__(self, credential: TokenCredential, scope: str = ENTRA_SCOPE, refresh_margin_s: float = 300.0,
                 clock: Callable[[], float] = time.time):
        self._credential = credential
        self._scope = scope
        self._margin = refresh_margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0
        self.fetches = 0  # how many tokens were fetched (tests, diagnostics)

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_on - self._margin:
                access = self._credential.get_token(self._scope)
                self._token, self._expires_on = access.token, float(access.expires_on)
                self.fetches += 1
                log.info("database: fetched an Entra access token (expires in %.0f s)",
                         self._expires_on - self._clock())
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the server refused it): the next connection fetches a new one."""
        with self._lock:
            self._token = None
            self._expires_on = 0.0

    def scrub(self, text: str) -> str:
        """``text`` without the current token (defence in depth for error messages)."""
        token = self._token
        return text.replace(token, "***") if token else text

    def __repr__(self) -> str:
        return f"EntraTokenProvider(scope={self._scope!r}, cached={self._token is not None})"


def default_credential(client_id: str | None = None) -> TokenCredential:
    """The Function app's identity: ``DefaultAzureCredential`` (managed identity in Azure, a developer's
    ``az login`` locally); ``client_id`` selects a user-assigned identity."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for repr and messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable database url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class _Pool(psycopg2.pool.ThreadedConnectionPool):
    """psycopg2's pool, asking ``password`` for each new connection (a fresh Entra token) instead of keeping
    one password in its connection arguments."""

    def __init__(self, maxconn: int, dsn: str, password: Callable[[], str] | None, **kwargs: Any):
        self._password = password
        super().__init__(0, maxconn, dsn, **kwargs)

    def _connect(self, key=None):
        kwargs = dict(self._kwargs)
        if self._password is not None:
            kwargs["password"] = self._password()
        conn = psycopg2.connect(*self._args, **kwargs)
        if key is not None:
            self._used[key] = conn
            self._rused[id(conn)] = key
        else:
            self._pool.append(conn)
        return conn


class Database:
    """A pool of connections to one PostgreSQL database (psycopg2, RealDictCursor rows).

    ``password``: called for each new connection (an :class:`EntraTokenProvider`); None when the URL (or
    libpq's environment) carries the credentials. ``failover_wait_s``: how long getting a connection keeps
    trying while the server refuses or drops connections (a failover, a restart); 0 fails at once. The
    Function app's pool takes DATABASE_FAILOVER_WAIT_S (functions/bootstrap.py)."""

    def __init__(self, url: str, max_connections: int = 8, connect_timeout_s: int = 5,
                 pool_wait_s: float = 30.0, *, password: Callable[[], str] | None = None,
                 failover_wait_s: float = 0.0, failover_backoff_max_s: float = 2.0):
        self.url = url
        self._password = password
        self._max = max_connections
        self._connect_timeout_s = connect_timeout_s
        # More threads than connections (the host runs up to batchSize + newBatchThreshold invocations per
        # queue): a thread waits for a free connection instead of failing its message at once.
        self._slots = threading.BoundedSemaphore(max_connections)
        self._pool_wait_s = pool_wait_s
        self._failover_wait_s = failover_wait_s
        self._backoff_max_s = failover_backoff_max_s
        self._pool: _Pool | None = None
        self._lock = threading.Lock()
        self._last_used: dict[int, float] = {}
        self._broken_at = 0.0  # when a connection last broke: older idle ones are pinged before use

    @property
    def auth(self) -> str:
        return "entra" if self._password is not None else "password"

    def __repr__(self) -> str:
        return f"Database(url={redact_url(self.url)!r}, auth={self.auth!r}, max_connections={self._max})"

    def _get_pool(self) -> _Pool:
        with self._lock:
            if self._pool is None:
                try:
                    pool = _Pool(self._max, self.url, self._password, connect_timeout=self._connect_timeout_s,
                                 application_name="trapalert",
                                 # a server that vanished without closing (a failover) is noticed in ~1 min
                                 keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
                except TRANSIENT_DB_ERRORS as exc:
                    raise DatabaseUnavailable(f"database unreachable: {self._first_line(exc)}") from exc
                # psycopg2 opens `minconn` connections at once and closes any connection returned while
                # `minconn` are idle: open none up front (cold start), but keep every returned one.
                pool.minconn = self._max
                self._pool = pool
            return self._pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self._pool_wait_s):
            raise DatabaseUnavailable(f"no free database connection after {self._pool_wait_s:.0f} s "
                                      f"({self._max} in use)")
        try:
            with self._connection() as conn:
                yield conn
        finally:
            self._slots.release()

    def _checkout(self, pool: _Pool) -> Any:
        """A live connection from the pool, opening a new one if needed; waits out a failover (bounded)."""
        started = time.monotonic()
        deadline = started + self._failover_wait_s
        delay = 0.1
        token_renewed = False
        attempt = discarded = 0
        while True:
            attempt += 1
            try:
                conn = pool.getconn()
                if conn.closed or not self._alive(conn):
                    pool.putconn(conn, close=True)
                    discarded += 1
                    if discarded <= self._max:
                        continue  # a dead pooled connection: take the next, or open a new one
                    raise psycopg2.OperationalError("new connections are dropped at once")
                if attempt > 1:
                    log.info("database: connected after %.1f s", time.monotonic() - started)
                return conn
            except psycopg2.pool.PoolError as exc:
                error: BaseException = exc
            except TRANSIENT_DB_ERRORS as exc:
                error = exc
                if _is_auth_error(exc):
                    if isinstance(self._password, EntraTokenProvider) and not token_renewed:
                        self._password.invalidate()  # revoked or rotated early: one fresh token
                        token_renewed = True
                        continue
                    raise DatabaseUnavailable(f"database refused the login: {self._first_line(exc)}") from exc
            except Exception as exc:  # the token endpoint (azure-identity) failed
                if self._password is None:
                    raise
                error = exc
            now = time.monotonic()
            if now >= deadline:
                raise DatabaseUnavailable(
                    f"database unreachable for {now - started:.1f} s ({attempt} attempts): "
                    f"{self._first_line(error)}") from error
            pause = min(delay, deadline - now)
            log.warning("database: no connection (%s); trying again in %.1f s",
                        self._first_line(error), pause)
            time.sleep(pause)
            delay = min(delay * 2, self._backoff_max_s)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        pool = self._get_pool()
        conn = self._checkout(pool)
        broken = False
        try:
            yield conn
            self._last_used[id(conn)] = time.monotonic()
        except TRANSIENT_DB_ERRORS:
            broken = True
            raise
        finally:
            if conn.closed:
                broken = True
            if broken:
                self._broken_at = time.monotonic()  # the others may be gone too: check them before use
                self._last_used.pop(id(conn), None)
            try:
                pool.putconn(conn, close=broken)
            except psycopg2.pool.PoolError:
                pass  # the pool was closed meanwhile (close()): the connection is closed with it

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        """A cursor in one transaction: committed on success, rolled back on error."""
        try:
            with self.connection() as conn:
                try:
                    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                        yield cur
                    conn.commit()
                except BaseException:
                    if not conn.closed:
                        with contextlib.suppress(*TRANSIENT_DB_ERRORS):
                            conn.rollback()
                    raise
        except TRANSIENT_DB_ERRORS as exc:
            raise DatabaseUnavailable(f"database error: {self._first_line(exc)}") from exc

    def fetchall(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute(sql, params)
            return [dict(r) for r in cur.fetchall()]

    def fetchone(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        with self.transaction() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return dict(row) if row is not None else None

    def execute(self, sql: str, params: Any = None) -> int:
        with self.transaction() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def _alive(self, conn) -> bool:
        """Whether a pooled connection still has its server. A server that shut down or failed over has sent
        its goodbye (or closed the socket): an idle connection with something to read is gone. One idle for a
        while, or older than the last broken one, is pinged."""
        try:
            readable, _, _ = select.select([conn], [], [], 0)
        except (OSError, ValueError, *TRANSIENT_DB_ERRORS):
            return False
        if readable:
            return False
        last = self._last_used.get(id(conn))
        if last is None or (time.monotonic() - last < self.PING_AFTER_IDLE_S and last > self._broken_at):
            return True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.rollback()
            return True
        except TRANSIENT_DB_ERRORS:
            return False

    PING_AFTER_IDLE_S = 5.0

    def _first_line(self, exc: BaseException) -> str:
        text = _first_line(exc)
        scrub = getattr(self._password, "scrub", None)
        return scrub(text) if scrub else text

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None
            self._last_used.clear()


def _is_auth_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _AUTH_ERRORS)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ensure_database(admin_url: str, name: str, *, wait_s: float = 5.0) -> bool:
    """Create database ``name`` through ``admin_url`` unless it exists (the local stack, before migrations);
    waits up to ``wait_s`` for the server to accept connections. True when it was created now."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn = psycopg2.connect(admin_url, connect_timeout=3)
            break
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(_first_line(exc)) from exc
            time.sleep(0.1)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is not None:
                return False
            cur.execute(f'CREATE DATABASE "{name}"')
            return True
    finally:
        conn.close()
