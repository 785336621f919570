"""Real databases for tests: a throwaway SQLite file, or a uniquely named PostgreSQL database.

Other helpers run tests against the same PostgreSQL server at the same time, so each test session
creates its own database and drops it afterwards; it never touches the admin database's tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from lfr.adapters.storage.sql.schema import alert_revision_counter, audit_chain_head, metadata

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def admin_url() -> URL:
    url = make_url(os.environ.get("LFR_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL))
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


def postgres_unreachable_reason() -> str | None:
    engine = create_engine(admin_url(), connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except OperationalError as exc:
        return f"PostgreSQL at {admin_url().render_as_string(hide_password=True)} is unreachable: {exc.orig}"
    finally:
        engine.dispose()


@contextmanager
def temporary_postgres_database() -> Iterator[str]:
    """Yields the URL of a fresh, empty database, dropped (even with open connections) afterwards."""
    name = f"lfr_t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url().set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def empty_lfr_tables(url: str) -> None:
    """Resets a migrated database to what the migrations leave: no rows, chain head and alert revision
    counter at zero."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            tables = ", ".join(t.name for t in metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
            connection.execute(audit_chain_head.insert().values(id=1, seq=0, hash="0" * 64))
            connection.execute(alert_revision_counter.insert().values(id=1, value=0))
    finally:
        engine.dispose()
