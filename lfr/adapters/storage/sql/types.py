"""Column types that make both backends give back exactly what the domain stored."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator, TypeEngine


def key_type(length: int = 128) -> TypeEngine[str]:
    """Ids and names compared and ordered bytewise on both backends, as Python sorts them.

    PostgreSQL would otherwise order by the database's locale collation, so the same query could list
    rows in a different order from the in-memory store.
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, microseconds kept.

    SQLite has no timestamp type: SQLAlchemy stores naive ISO text, which sorts correctly when every
    value is UTC. PostgreSQL stores timestamptz and hands back the session's zone, normalised here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored: give it a timezone")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
