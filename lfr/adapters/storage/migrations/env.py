"""Alembic environment for lfr. Run through lfr.adapters.storage.sql.migrate (or `lfr db upgrade`),
which hands over an open connection; there is no alembic.ini and no offline mode."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from lfr.adapters.storage.sql.schema import metadata

# Any fixed number: every process migrating the same PostgreSQL database takes this lock first, so
# replicas starting together run the migrations once, one after the other.
_MIGRATION_LOCK_KEY = 0x6C66725F6D6967  # "lfr_mig"


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
        context.run_migrations()


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("lfr migrations run through lfr.adapters.storage.sql.migrate with a connection")
run_migrations(connection)
