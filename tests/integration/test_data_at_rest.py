"""Data at rest on a real SQLite store: purged crops and destroyed watchlist images leave no byte behind in
the database or its WAL, and what is kept is ciphertext only."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from lfr.adapters.storage.sql import SqlStore
from lfr.domain.clock import ManualClock
from lfr.domain.retention import RetentionPolicy
from lfr.services.retention import RetentionService
from tests.integration.builders import T0, alert
from tests.support import tiny_jpeg

MARKER = b"LFR-PURGED-ALERT-CROP-"


def files_of(database: Path) -> dict[str, bytes]:
    """The database and every SQLite side file (WAL, shared memory, journal) as they are on disk."""
    return {p.name: p.read_bytes() for p in database.parent.iterdir() if p.name.startswith(database.name)}


def stored_crops(store: SqlStore) -> list[bytes]:
    """The crop column exactly as the database holds it (plaintext or not)."""
    with store.engine.connect() as sql:
        return [bytes(r[0]) for r in sql.execute(text("SELECT crop_jpeg FROM alerts"))]


def test_purged_crops_leave_nothing_in_the_database_or_its_wal(tmp_path: Path) -> None:
    database = tmp_path / "store" / "lfr.db"
    store = SqlStore.open(f"sqlite:///{database}")
    try:
        with store() as uow:
            for n in range(20):
                crop = tiny_jpeg(MARKER + b"%04d" % n + bytes(range(256)) * 4)
                uow.alerts.add(dataclasses.replace(alert(f"a-{n}"), crop_jpeg=crop))
            uow.commit()
        held = stored_crops(store)
        assert len(held) == 20
        # Needles: 24 bytes from the middle of each stored crop, whatever form the store keeps it in.
        needles = [c[len(c) // 2 : len(c) // 2 + 24] for c in held]
        before = files_of(database)
        assert any(n in data for n in needles for data in before.values()), "the scan must find them first"

        clock = ManualClock(T0 + timedelta(days=40))
        report = RetentionService(store, clock, RetentionPolicy(alert_retention=timedelta(days=31))).purge()
        assert report.alerts_purged == 20
        assert store.scrub()
        after = files_of(database)
        found = [name for name, data in after.items() for n in needles if n in data]
        assert found == [], f"purged crop bytes remain in {sorted(set(found))}"
        assert after.get("lfr.db-wal", b"") == b""  # the WAL was truncated, not just checkpointed
    finally:
        store.close()
