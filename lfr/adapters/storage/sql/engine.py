"""Engines configured for what lfr needs from each backend: durable alerts, serialised audit appends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

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


def create_store_engine(url: str | URL) -> Engine:
    parsed = parse_store_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(
        parsed,
        pool_pre_ping=True,
        hide_parameters=HIDE_PARAMETERS,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )


def _sqlite_engine(url: URL) -> Engine:
    assert url.database is not None
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        hide_parameters=HIDE_PARAMETERS,
        # The pool hands a connection to one thread at a time, so sqlite3's own thread check only gets
        # in the way.
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
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
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _begin_immediate(connection: Any) -> None:
    # IMMEDIATE takes the write lock at BEGIN (waiting up to busy_timeout). A deferred transaction that
    # read first and writes later fails with SQLITE_BUSY instead of waiting whenever another writer
    # committed in between, which is the normal read-check-write shape of a unit of work here.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
