"""One database transaction as the repositories see it; every driver error leaves here as a domain error."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Executable, Row, Select
from sqlalchemy import exc as sa_exc

from lfr.domain.errors import Conflict, InvalidInput, LfrError, StaleUpdate, StoreUnavailable

# PostgreSQL aborts one of two transactions that would otherwise block each other for ever; the loser may
# retry, exactly as after an optimistic version check fails.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}

# Values for a statement built once at import: the hot path's statements take their values here, since
# building a statement and its cache key costs more than running it (~150 us each, bench/matcher.py).
Params = Mapping[str, Any]


@contextmanager
def translated_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except LfrError:
        raise
    except sa_exc.IntegrityError as exc:
        raise Conflict(f"{doing}: conflicts with what is stored ({_reason(exc)})") from exc
    except sa_exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
            raise StaleUpdate(f"{doing}: lost a race with a concurrent transaction") from exc
        raise StoreUnavailable(f"{doing}: the database failed ({_reason(exc)})") from exc
    except sa_exc.StatementError as exc:
        if isinstance(exc.orig, ValueError):
            raise InvalidInput(f"{doing}: {exc.orig}") from exc
        raise StoreUnavailable(f"{doing}: {_reason(exc)}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StoreUnavailable(f"{doing}: {exc}") from exc


def _reason(exc: sa_exc.StatementError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__


class Tx:
    """Statements of one unit of work.

    After a failed statement PostgreSQL refuses the rest of the transaction, and COMMIT then quietly
    rolls back. So a statement that may fail on a constraint (a duplicate id) runs in a savepoint,
    leaving the unit of work usable as the in-memory store does; any other failure poisons the unit
    of work, and committing it raises instead of losing the work silently.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.failure: str | None = None

    def rows(
        self, statement: Executable, doing: str = "reading", params: Params | None = None
    ) -> Sequence[Row[Any]]:
        with self._guard(doing):
            return self.connection.execute(statement, params).all()

    def batches(
        self, statement: Executable, doing: str = "reading", size: int = 4096
    ) -> Iterator[Sequence[Row[Any]]]:
        """The result in batches of `size` rows, so a large read is never held twice in memory."""
        with self._guard(doing):
            result = self.connection.execute(statement)
            while batch := result.fetchmany(size):
                yield batch

    def plain_batches(
        self, statement: Select[Any], doing: str = "reading", size: int = 4096
    ) -> Iterator[Sequence[tuple[Any, ...]]]:
        """`batches` straight from the driver's cursor, as plain tuples: no Row objects and no type
        processing, four times faster for bulk reads of plain columns (a 100k watchlist at start). Only
        for columns whose driver values are already what the caller wants (text, integers, bytes)."""
        dbapi_error = self.connection.dialect.loaded_dbapi.Error
        with self._guard(doing):
            compiled = statement.compile(dialect=self.connection.dialect)
            params: Any = compiled.construct_params()
            if compiled.positional:
                params = tuple(params[name] for name in compiled.positiontup or ())
            cursor = self.connection.connection.cursor()  # the DBAPI connection of this same transaction
            try:
                cursor.execute(str(compiled), params)
                while batch := cursor.fetchmany(size):
                    yield batch
            except dbapi_error as exc:
                raise StoreUnavailable(f"{doing}: the database failed ({exc})") from exc
            finally:
                cursor.close()

    def first(
        self,
        statement: Executable,
        doing: str = "reading",
        may_conflict: bool = False,
        params: Params | None = None,
    ) -> Row[Any] | None:
        with self._guard(doing, may_conflict):
            return self.connection.execute(statement, params).first()

    def run(
        self,
        statement: Executable,
        doing: str = "writing",
        may_conflict: bool = False,
        params: Params | None = None,
    ) -> int:
        """Executes a write; returns the number of rows it matched."""
        with self._guard(doing, may_conflict):
            result = self.connection.execute(statement, params)
            return int(getattr(result, "rowcount", 0))

    @contextmanager
    def _guard(self, doing: str, may_conflict: bool = False) -> Iterator[None]:
        try:
            with translated_errors(doing):
                if may_conflict and self.dialect == "postgresql":
                    with self.connection.begin_nested():
                        yield
                else:
                    yield
        except LfrError as exc:
            if not (may_conflict and isinstance(exc, Conflict)):
                self.failure = f"{doing}: {exc}"
            raise

    def check_committable(self) -> None:
        if self.failure is not None:
            raise StoreUnavailable(f"not committed, because an earlier step failed ({self.failure})")

    def reset(self) -> None:
        self.failure = None
