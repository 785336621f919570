"""SqlStore: the UnitOfWork port over SQLite (embedded) or PostgreSQL (several matcher replicas)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from lfr.adapters.storage.sql.alerts import SqlAlerts
from lfr.adapters.storage.sql.audit import SqlAudit
from lfr.adapters.storage.sql.counters import SqlCounters
from lfr.adapters.storage.sql.deadline import guarded
from lfr.adapters.storage.sql.engine import StoreTimeouts, create_store_engine
from lfr.adapters.storage.sql.migrate import upgrade
from lfr.adapters.storage.sql.principals import SqlEvaluations, SqlPrincipals
from lfr.adapters.storage.sql.tx import Tx, translated_errors
from lfr.adapters.storage.sql.watchlists import SqlWatchlists
from lfr.adapters.storage.sql.windows import SqlWindows
from lfr.domain.errors import StoreUnavailable
from lfr.domain.ports import (
    AlertRepository,
    AuditLog,
    CounterRepository,
    EvaluationRepository,
    ImageSealer,
    PrincipalRepository,
    WatchlistRepository,
    WindowRepository,
)

logger = logging.getLogger(__name__)


class SqlStore:
    def __init__(self, engine: Engine, sealer: ImageSealer | None = None) -> None:
        self.engine = engine
        self.sealer = sealer  # encrypts face images at rest; None: stored as they come

    @classmethod
    def open(
        cls,
        url: str,
        migrate: bool = True,
        timeouts: StoreTimeouts | None = None,
        sealer: ImageSealer | None = None,
    ) -> SqlStore:
        """Connects, and unless told otherwise brings the schema up to date first."""
        if migrate:
            # Without a statement timeout: a migration may rightly take longer than a matcher's query.
            unlimited = dataclasses.replace(timeouts or StoreTimeouts(), statement_s=None)
            migrating = create_store_engine(url, unlimited)
            try:
                upgrade(migrating)
            finally:
                migrating.dispose()
        return cls(create_store_engine(url, timeouts), sealer)

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self.sealer)

    def seal_plaintext_images(self) -> int:
        """Seals alert crops and reference images written in clear (before a key was configured), in
        one transaction, then scrubs the WAL of the clear copies. Returns how many were sealed."""
        if self.sealer is None:
            return 0
        from sqlalchemy import func, select, update

        from lfr.adapters.storage.sql.schema import alerts, subjects
        from lfr.adapters.storage.sql.sealing import SEALED_MAGIC

        count = 0
        with translated_errors("sealing images stored in clear"), self.engine.begin() as connection:
            for table, column, kind in (
                (alerts, alerts.c.crop_jpeg, "alert"),
                (subjects, subjects.c.reference_image_jpeg, "subject"),
            ):
                # Only rows not already sealed travel: this runs at every start.
                not_sealed = func.substr(column, 1, len(SEALED_MAGIC)) != SEALED_MAGIC
                query = select(table.c.id, column).where(column.is_not(None), not_sealed)
                for row_id, image in connection.execute(query).all():
                    image = bytes(image)
                    if not image or image.startswith(SEALED_MAGIC):
                        continue
                    sealed = self.sealer.seal(image, f"{kind}:{row_id}")
                    connection.execute(
                        update(table).where(table.c.id == row_id).values({column.name: sealed})
                    )
                    count += 1
        if count:
            logger.warning("sealed %d face images that were stored in clear", count)
            self.scrub()
        return count

    def scrub(self) -> bool:
        """After deletions: copies the WAL into the database (where secure_delete zeroed the deleted rows)
        and truncates it to nothing, so no older copy of a deleted row stays in the WAL. True when done;
        False when a reader kept it from finishing (the next purge tries again). PostgreSQL: nothing to do
        here (its dead tuples are VACUUM's business; see docs/security/audit-and-data-at-rest.md)."""
        if self.engine.dialect.name != "sqlite":
            return True
        with translated_errors("truncating the write-ahead log"), self.engine.connect() as connection:
            # Outside a transaction: the "begin" hook's BEGIN IMMEDIATE would make the checkpoint fail.
            raw = connection.connection.dbapi_connection
            assert raw is not None
            busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            logger.warning("the WAL could not be truncated after a purge (a reader was active); will retry")
        return not busy

    def close(self) -> None:
        self.engine.dispose()

    def clock_timestamp(self) -> datetime:
        """The database server's clock now (PostgreSQL `clock_timestamp()`, not the transaction's start)."""
        with translated_errors("reading the store's clock"), self.engine.connect() as connection:
            value = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise StoreUnavailable("the store's clock did not answer with a timezone-aware time")
        return value.astimezone(UTC)


class SqlUnitOfWork:
    windows: WindowRepository
    watchlists: WatchlistRepository
    alerts: AlertRepository
    audit: AuditLog
    counters: CounterRepository
    principals: PrincipalRepository
    evaluations: EvaluationRepository

    def __init__(self, engine: Engine, sealer: ImageSealer | None = None) -> None:
        self._engine = engine
        self._sealer = sealer
        self._connection: Connection | None = None
        self._tx: Tx | None = None

    def __enter__(self) -> Self:
        with translated_errors("connecting to the store"):
            self._connection = self._engine.connect()
        tx = self._tx = Tx(self._connection)
        self.windows = SqlWindows(tx)
        self.watchlists = SqlWatchlists(tx, self._sealer)
        self.alerts = SqlAlerts(tx, self._sealer)
        self.audit = SqlAudit(tx)
        self.counters = SqlCounters(tx)
        self.principals = SqlPrincipals(tx)
        self.evaluations = SqlEvaluations(tx)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            with guarded(self._engine, connection.connection.dbapi_connection):
                connection.rollback()
        except SQLAlchemyError:
            # The connection is broken; the pool discards it and the database rolls the work back.
            # Raising here would hide whatever error ended the unit of work.
            logger.warning("rollback failed on leaving a unit of work", exc_info=True)
            connection.invalidate()
        finally:
            connection.close()

    def commit(self) -> None:
        connection, tx = self._live()
        tx.check_committable()
        with translated_errors("committing"), guarded(self._engine, connection.connection.dbapi_connection):
            connection.commit()

    def rollback(self) -> None:
        connection, tx = self._live()
        with translated_errors("rolling back"), guarded(self._engine, connection.connection.dbapi_connection):
            connection.rollback()
        tx.reset()

    def _live(self) -> tuple[Connection, Tx]:
        if self._connection is None or self._tx is None:
            raise StoreUnavailable("the unit of work is not open: use it in a with block")
        return self._connection, self._tx
