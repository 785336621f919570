"""The ingest use case tests rerun unchanged on an SQLite store: services need nothing memory-specific."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lfr.adapters.storage import Store, open_store
from tests.unit.test_ingest_service import (  # noqa: F401  (collected here again, on the SQL store)
    test_a_resent_observation_gets_its_stored_alert_and_nobody_is_told_twice,
    test_a_source_repeated_within_one_batch_raises_one_alert,
    test_audit_chain_records_window_lifecycle_and_alert,
    test_bad_observations_are_rejected_one_by_one,
    test_matches_only_inside_an_authorised_window,
    test_non_match_is_wiped_and_only_counted,
    test_other_sources_and_observations_without_one_each_raise_their_own_alert,
    world,
)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url)
    yield opened
    opened.close()


def test_the_world_really_is_on_sqlite(world: dict[str, object]) -> None:  # noqa: F811
    from lfr.adapters.storage.sql import SqlStore

    store = world["store"]
    assert isinstance(store, SqlStore)
    with store() as uow:
        assert uow.windows.get(world["window"].id).id == world["window"].id  # type: ignore[attr-defined]
