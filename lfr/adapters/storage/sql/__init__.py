"""The SQL store: SQLite embedded by default, PostgreSQL for several matcher replicas."""

from lfr.adapters.storage.sql.unit_of_work import SqlStore, SqlUnitOfWork

__all__ = ["SqlStore", "SqlUnitOfWork"]
