"""Alembic, configured in code: the migrations ship inside the package and need no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from lfr.adapters.storage.sql.tx import translated_errors

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Runs the migrations in one transaction (env.py serialises concurrent upgraders)."""
    with translated_errors("migrating the store"), engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def current_revisions(engine: Engine) -> tuple[str, ...]:
    with translated_errors("reading the schema version"), engine.connect() as connection:
        return tuple(MigrationContext.configure(connection).get_current_heads())


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
