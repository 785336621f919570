"""Engines configured for what lfr needs from each backend: durable alerts, serialised audit appends."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry

from lfr.adapters.storage.sql.deadline import Deadlines, attach
from lfr.domain.errors import InvalidInput

SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 10
# Statement parameters carry an alert's crop and a camera's track: keep them out of every SQLAlchemy error
# message and log line, whatever logging level someone sets.
HIDE_PARAMETERS = True


def parse_store_url(url: str) -> URL:
    """The SQLAlchemy URL for a store URL; bare postgresql:// means psycopg 3, the driver lfr ships."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"store URL {url!r} is not a database URL") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise InvalidInput("an SQLite store needs a file path (sqlite:///PATH); use memory:// for tests")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(f"unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL")
    return parsed


@dataclass(frozen=True, slots=True)
class StoreTimeouts:
    """How long a store call may take before it fails (StoreUnavailable) instead of hanging ingest."""

    connect_s: float = POSTGRES_CONNECT_TIMEOUT_S  # PostgreSQL: connecting, startup and authentication
    # PostgreSQL: server-side statement_timeout, and a client deadline 1 s later; None: no limit (the
    # CLI's long exports, migrations). The matcher sets it from store.statement_timeout_s.
    statement_s: float | None = None
    tcp_user_timeout_s: float = 10.0  # PostgreSQL: unacknowledged data on the socket for this long
    keepalive_idle_s: float = 5.0  # PostgreSQL: TCP keepalive probes after this much silence ...
    keepalive_interval_s: float = 2.0  # ... every this often ...
    keepalive_count: int = 3  # ... and the connection is dead after this many unanswered
    sqlite_busy_s: float = SQLITE_BUSY_TIMEOUT_MS / 1000  # SQLite: wait this long for the write lock


def create_store_engine(url: str | URL, timeouts: StoreTimeouts | None = None) -> Engine:
    parsed = parse_store_url(url) if isinstance(url, str) else url
    timeouts = timeouts or StoreTimeouts()
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, timeouts.sqlite_busy_s)
    return _postgres_engine(parsed, timeouts)


def _postgres_engine(url: URL, timeouts: StoreTimeouts) -> Engine:
    connect_args: dict[str, Any] = {
        "connect_timeout": max(1, round(timeouts.connect_s)),
        "keepalives": 1,
        "keepalives_idle": max(1, round(timeouts.keepalive_idle_s)),
        "keepalives_interval": max(1, round(timeouts.keepalive_interval_s)),
        "keepalives_count": timeouts.keepalive_count,
        "tcp_user_timeout": max(1, int(timeouts.tcp_user_timeout_s * 1000)),
    }
    if timeouts.statement_s is None:
        return create_engine(
            url, pool_pre_ping=True, hide_parameters=HIDE_PARAMETERS, connect_args=connect_args
        )
    statement_ms = max(1, int(timeouts.statement_s * 1000))
    connect_args["options"] = (
        f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms} "
        f"-c idle_in_transaction_session_timeout={max(statement_ms, 60_000)}"
    )
    engine = create_engine(url, hide_parameters=HIDE_PARAMETERS, connect_args=connect_args)
    deadlines = Deadlines(timeouts.statement_s + 1.0)
    attach(engine, deadlines)

    def before(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, many: bool) -> None:
        conn.info["lfr_deadline"] = deadlines.arm(conn.connection.dbapi_connection)

    def after(conn: Any, *args: Any) -> None:
        token = conn.info.pop("lfr_deadline", None)
        if token is not None:
            deadlines.disarm(token)

    def on_error(context: Any) -> None:
        if context.connection is not None:
            after(context.connection)

    def ping(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        # pool_pre_ping's own SELECT 1 runs without a deadline and would hang on a stalled network;
        # this is the same check under the deadline (DisconnectionError: the pool tries a new connection).
        try:
            with deadlines.guard(dbapi_connection):
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute("SELECT 1")
                finally:
                    cursor.close()
                dbapi_connection.rollback()
        except Exception as exc:
            raise DisconnectionError(f"pooled connection failed its check ({type(exc).__name__})") from exc

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", on_error)
    event.listen(engine, "checkout", ping)
    return engine


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    assert url.database is not None
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        hide_parameters=HIDE_PARAMETERS,
        # The pool hands a connection to one thread at a time, so sqlite3's own thread check only gets
        # in the way.
        connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
    )
    busy_ms = int(busy_timeout_s * 1000)
    event.listen(engine, "connect", lambda conn, record: _configure_sqlite_connection(conn, busy_ms))
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _configure_sqlite_connection(
    dbapi_connection: Any, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> None:
    # Autocommit at the driver level: the "begin" hook below emits BEGIN itself, because pysqlite's own
    # implicit transactions start late (before the first write only) and would let two writers read the
    # same audit chain head.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed alert survives power loss, and alerts are acknowledged only after commit.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted content (a purged crop, a destroyed watchlist's images) is overwritten with zeros rather
        # than left in free pages; SqlStore.scrub then truncates the WAL that still holds older copies.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    finally:
        cursor.close()


def _begin_immediate(connection: Any) -> None:
    # IMMEDIATE takes the write lock at BEGIN (waiting up to busy_timeout). A deferred transaction that
    # read first and writes later fails with SQLITE_BUSY instead of waiting whenever another writer
    # committed in between, which is the normal read-check-write shape of a unit of work here.
    # On the driver's connection: through SQLAlchemy's statement machinery this one line cost more CPU
    # than the statements of the transaction it opens (bench/matcher.py, one per alert). SQLAlchemy does
    # not wrap what a "begin" hook raises, so a driver error is wrapped here, as it would have been there
    # (a lock held past the busy timeout must reach the services as StoreUnavailable).
    try:
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise sa_exc.DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc
