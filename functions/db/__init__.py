"""PostgreSQL access: a small thread-safe connection pool and transactions with parameterized queries."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.extras
import psycopg2.pool

# Errors that mean "the database is not reachable right now": callers answer 5xx / let the message retry.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (psycopg2.OperationalError, psycopg2.InterfaceError)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the operation may succeed later."""


class Database:
    """A pool of connections to one PostgreSQL database (psycopg2, RealDictCursor rows)."""

    def __init__(self, url: str, max_connections: int = 8, connect_timeout_s: int = 5,
                 pool_wait_s: float = 30.0):
        self.url = url
        self._max = max_connections
        self._connect_timeout_s = connect_timeout_s
        # More threads than connections (the host runs up to batchSize + newBatchThreshold invocations per
        # queue): a thread waits for a free connection instead of failing its message at once.
        self._slots = threading.BoundedSemaphore(max_connections)
        self._pool_wait_s = pool_wait_s
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()
        self._last_used: dict[int, float] = {}

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                try:
                    pool = psycopg2.pool.ThreadedConnectionPool(
                        0, self._max, self.url, connect_timeout=self._connect_timeout_s,
                        application_name="trapalert")
                except TRANSIENT_DB_ERRORS as exc:
                    raise DatabaseUnavailable(f"database unreachable: {_first_line(exc)}") from exc
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

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        pool = self._get_pool()
        conn = None
        for attempt in range(3):
            try:
                conn = pool.getconn()
                if conn.closed or not self._alive(conn):
                    pool.putconn(conn, close=True)
                    conn = None
                    continue
                break
            except psycopg2.pool.PoolError:
                time.sleep(0.05 * (attempt + 1))
            except TRANSIENT_DB_ERRORS as exc:
                raise DatabaseUnavailable(f"database unreachable: {_first_line(exc)}") from exc
        if conn is None:
            try:
                conn = pool.getconn()
            except (psycopg2.pool.PoolError, *TRANSIENT_DB_ERRORS) as exc:
                raise DatabaseUnavailable(f"no database connection: {_first_line(exc)}") from exc
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
            pool.putconn(conn, close=broken)

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
                        conn.rollback()
                    raise
        except TRANSIENT_DB_ERRORS as exc:
            raise DatabaseUnavailable(f"database error: {_first_line(exc)}") from exc

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
        """A connection idle for a while may have lost its server (a restart, a failover): ping it."""
        last = self._last_used.get(id(conn))
        if last is None or time.monotonic() - last < self.PING_AFTER_IDLE_S:
            return True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.rollback()
            return True
        except TRANSIENT_DB_ERRORS:
            return False

    PING_AFTER_IDLE_S = 5.0

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None


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
