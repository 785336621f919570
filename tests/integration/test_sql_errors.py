"""Database failures reach the services as lfr's own errors, never as SQLAlchemy or driver exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from lfr.adapters.storage import open_store
from lfr.adapters.storage.sql import SqlStore
from lfr.domain.errors import Conflict, InvalidInput, StoreUnavailable
from tests.integration.builders import T0, alert, event, window
from tests.support import tiny_jpeg


@pytest.fixture
def store(sqlite_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(sqlite_url)
    yield opened
    opened.close()


def test_an_unreachable_postgres_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        open_store("postgresql://postgres@127.0.0.1:1/nothing")
    assert caught.value.__cause__ is not None  # the driver error is kept as the cause


def test_an_unusable_database_is_store_unavailable(store: SqlStore) -> None:
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE deployment_windows")
    with store() as uow, pytest.raises(StoreUnavailable, match="listing windows"):
        uow.windows.find()


def test_a_unit_of_work_with_a_failed_step_refuses_to_commit(store: SqlStore) -> None:
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE evaluations")
    with store() as uow:
        uow.audit.append(event(1))
        with pytest.raises(StoreUnavailable):
            uow.evaluations.for_model("m")
        with pytest.raises(StoreUnavailable, match="earlier step failed"):
            uow.commit()
    with store() as uow:
        assert uow.audit.head() is None


@pytest.mark.postgres
def test_a_conflict_on_postgres_does_not_silently_lose_the_rest(postgres_store_url: str) -> None:
    store = SqlStore.open(postgres_store_url)
    try:
        with store() as uow:
            uow.windows.add(window("w-1"))
            with pytest.raises(Conflict):
                uow.windows.add(window("w-1"))
            uow.audit.append(event(1))
            uow.commit()
        with store() as uow:
            assert uow.audit.head() is not None
    finally:
        store.close()


def test_a_naive_timestamp_is_refused_as_invalid_input(store: SqlStore) -> None:
    with store() as uow, pytest.raises(InvalidInput, match="naive"):
        uow.windows.add(window("w-1", created_at=T0.replace(tzinfo=None)))


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://x@localhost/db", "not a url at all"]
)
def test_unsupported_store_urls_are_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput):
        open_store(url)


def chain_text(error: BaseException) -> str:
    texts = []
    current: BaseException | None = error
    while current is not None:
        texts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


def failing_alert_insert(store: SqlStore) -> BaseException:
    face = replace(alert("a-1"), crop_jpeg=tiny_jpeg(b"FACE-BYTES-7f3a"), track_id="track-7f3a")
    with store() as uow:
        uow.windows.add(window("win-1"))
        uow.alerts.add(face)
        uow.commit()
    with store() as uow, pytest.raises(Conflict) as caught:
        uow.alerts.add(face)  # same id again: the INSERT fails with all of the alert as parameters
    return caught.value


def test_a_failed_statement_never_shows_its_parameters(store: SqlStore) -> None:
    text = chain_text(failing_alert_insert(store))
    assert "INSERT INTO alerts" in text  # the statement is named, so the failure is still diagnosable
    assert "FACE-BYTES-7f3a" not in text
    assert "track-7f3a" not in text
    assert "hidden" in text  # SQLAlchemy's "[SQL parameters hidden due to hide_parameters=True]"


@pytest.mark.postgres
def test_a_failed_statement_on_postgres_never_shows_its_parameters(postgres_store_url: str) -> None:
    store = SqlStore.open(postgres_store_url)
    try:
        text = chain_text(failing_alert_insert(store))
    finally:
        store.close()
    assert "FACE-BYTES-7f3a" not in text
    assert "track-7f3a" not in text


def test_a_database_locked_past_the_busy_timeout_is_store_unavailable(sqlite_url: str) -> None:
    """The write lock is taken as a unit of work opens (BEGIN IMMEDIATE): a lock held elsewhere for longer
    than the busy timeout must fail it as StoreUnavailable (so a hit is kept by its node and re-sent),
    not as a driver exception."""
    import sqlite3

    from lfr.config import StoreSettings

    settings = StoreSettings(url=sqlite_url, sqlite_busy_timeout_s=0.2)
    store = SqlStore.open(sqlite_url, timeouts=settings.timeouts())
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer, e.g. an operator's sqlite3 shell
        with store() as uow, pytest.raises(StoreUnavailable, match="database is locked"):
            uow.windows.find()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()
