"""Database failures reach the services as lfr's own errors, never as SQLAlchemy or driver exceptions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lfr.adapters.storage import open_store
from lfr.adapters.storage.sql import SqlStore
from lfr.domain.errors import Conflict, InvalidInput, StoreUnavailable
from tests.integration.builders import T0, event, window


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
