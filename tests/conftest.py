"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lfr.adapters.storage.sql import SqlStore
from tests.databases import empty_lfr_tables, postgres_unreachable_reason, temporary_postgres_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A store URL for a new SQLite file (the parent directory does not exist yet: open_store makes it)."""
    return f"sqlite:///{tmp_path / 'store' / 'lfr.db'}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test session's own, dropped at the end.

    Shared by the whole session: tests that need it empty use `postgres_store_url`.
    """
    reason = postgres_unreachable_reason()
    if reason is not None:
        pytest.skip(reason)
    with temporary_postgres_database() as url:
        SqlStore.open(url).close()
        yield url


@pytest.fixture
def postgres_store_url(postgres_url: str) -> str:
    """`postgres_url` with every lfr table emptied, for a test that needs a blank store."""
    empty_lfr_tables(postgres_url)
    return postgres_url


@pytest.fixture(autouse=True)
def _keep_core_dump_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """`lfr serve`, `lfr camera` and `lfr tablet serve` run in-process (CliRunner) would drop the test
    process's own hard core limit to 0 for good, and no later test could start a child with a core limit
    to show that the real processes drop theirs (tests/integration/test_core_dumps.py)."""
    monkeypatch.setattr("lfr.adapters.hardening.disable_core_dumps", lambda: None)
