"""Data at rest on a real SQLite store: purged crops and destroyed watchlist images leave no byte behind in
the database or its WAL, and what is kept is ciphertext only."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from lfr.adapters.envelope import EnvelopeSealer, FileKeyWrapper, write_kek
from lfr.adapters.storage.sql import SqlStore
from lfr.domain.alert import TrackIdentity
from lfr.domain.clock import ManualClock
from lfr.domain.errors import StoreUnavailable
from lfr.domain.retention import RetentionPolicy
from lfr.domain.watchlist import TemplateImage
from lfr.services.retention import RetentionService
from tests.integration.builders import T0, alert, subject, watchlist
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


def sealer_for(tmp_path: Path, name: str = "kek.hex", retired: tuple[str, ...] = ()) -> EnvelopeSealer:
    if not (tmp_path / name).exists():
        write_kek(tmp_path / name)
    return EnvelopeSealer(FileKeyWrapper.from_files(tmp_path / name, [tmp_path / r for r in retired]))


def test_crops_and_reference_images_are_only_ciphertext_on_disk(tmp_path: Path) -> None:
    database = tmp_path / "store" / "lfr.db"
    store = SqlStore.open(f"sqlite:///{database}", sealer=sealer_for(tmp_path))
    crop, reference = tiny_jpeg(MARKER + b"crop"), tiny_jpeg(MARKER + b"reference")
    try:
        with store() as uow:
            uow.alerts.add(dataclasses.replace(alert("a-1"), crop_jpeg=crop))
            uow.watchlists.add(watchlist())
            uow.watchlists.add_subject(subject("s-1", image=reference), np.eye(2, 4, dtype=np.float32))
            uow.commit()
        on_disk = files_of(database)
        assert not [name for name, data in on_disk.items() if MARKER in data]
        assert any(c.startswith(b"LFRE1") for c in stored_crops(store))
        with store() as uow:
            assert uow.alerts.get("a-1").crop_jpeg == crop
            assert uow.alerts.find()[0].crop_jpeg == b""  # listings carry no crop: nothing decrypted
            assert uow.watchlists.get_subject("wl-1", "s-1").reference_image_jpeg == reference
    finally:
        store.close()


def test_a_better_face_of_a_track_replaces_its_sealed_crop_and_a_plain_sighting_keeps_it(
    tmp_path: Path,
) -> None:
    database = tmp_path / "lfr.db"
    store = SqlStore.open(f"sqlite:///{database}", sealer=sealer_for(tmp_path))
    first, best = tiny_jpeg(MARKER + b"first"), tiny_jpeg(MARKER + b"best")
    try:
        with store() as uow:
            uow.alerts.add(dataclasses.replace(alert("a-1", track_id="t-9"), crop_jpeg=first))
            uow.commit()
        with store() as uow:  # as ingest does: the track's alert is listed (no crop), then seen again
            listed = uow.alerts.find_for_track(TrackIdentity("win-1", "cam-1", "", "t-9", "s-1"))
            assert listed is not None
            assert listed.crop_jpeg == b""
            uow.alerts.update(listed.seen_again(listed.score - 0.01, listed.candidates, b"", T0))
            uow.commit()
        with store() as uow:
            assert uow.alerts.get("a-1").crop_jpeg == first  # not better: the sealed crop stays
            listed = uow.alerts.find_for_track(TrackIdentity("win-1", "cam-1", "", "t-9", "s-1"))
            assert listed is not None
            uow.alerts.update(listed.seen_again(listed.score + 0.01, listed.candidates, best, T0))
            uow.commit()
        with store() as uow:
            assert uow.alerts.get("a-1").crop_jpeg == best
        assert not [name for name, data in files_of(database).items() if MARKER in data]
    finally:
        store.close()


def test_template_source_images_are_sealed_per_template(tmp_path: Path) -> None:
    database = tmp_path / "lfr.db"
    store = SqlStore.open(f"sqlite:///{database}", sealer=sealer_for(tmp_path))
    images = [TemplateImage("custody 2019", tiny_jpeg(MARKER + b"t0")), TemplateImage("passport", None)]
    try:
        with store() as uow:
            uow.watchlists.add(watchlist())
            uow.watchlists.add_subject(subject("s-1"), np.eye(2, 4, dtype=np.float32), images)
            uow.commit()
        assert not [name for name, data in files_of(database).items() if MARKER in data]
        with store() as uow:
            assert uow.watchlists.templates("wl-1") == {"s-1": images}
    finally:
        store.close()


def test_a_sealed_crop_moved_to_another_alert_does_not_open(tmp_path: Path) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'lfr.db'}", sealer=sealer_for(tmp_path))
    try:
        with store() as uow:
            for n in (1, 2):
                uow.alerts.add(dataclasses.replace(alert(f"a-{n}"), crop_jpeg=tiny_jpeg(b"%d" % n)))
            uow.commit()
        with store.engine.begin() as sql:
            sql.execute(
                text(
                    "UPDATE alerts SET crop_jpeg = (SELECT crop_jpeg FROM alerts WHERE id = 'a-1') "
                    "WHERE id = 'a-2'"
                )
            )
        with store() as uow, pytest.raises(StoreUnavailable, match="alert:a-2"):
            uow.alerts.get("a-2")
        keyless = SqlStore.open(f"sqlite:///{tmp_path / 'lfr.db'}")
        try:
            with keyless() as uow, pytest.raises(StoreUnavailable, match="no image key is configured"):
                uow.alerts.get("a-1")
        finally:
            keyless.close()
    finally:
        store.close()


def test_images_stored_in_clear_are_sealed_at_start_and_a_rotated_key_still_opens_old_ones(
    tmp_path: Path,
) -> None:
    database = tmp_path / "store" / "lfr.db"
    url = f"sqlite:///{database}"
    crop = tiny_jpeg(MARKER + b"legacy")
    legacy = SqlStore.open(url)  # as before encryption was configured
    with legacy() as uow:
        uow.alerts.add(dataclasses.replace(alert("a-old"), crop_jpeg=crop))
        uow.commit()
    legacy.close()
    assert any(MARKER in data for data in files_of(database).values())

    store = SqlStore.open(url, sealer=sealer_for(tmp_path))
    try:
        assert store.seal_plaintext_images() == 1
        assert store.seal_plaintext_images() == 0
        assert not [name for name, data in files_of(database).items() if MARKER in data]
    finally:
        store.close()

    write_kek(tmp_path / "kek-2.hex")
    rotated = SqlStore.open(url, sealer=sealer_for(tmp_path, "kek-2.hex", retired=("kek.hex",)))
    try:
        with rotated() as uow:
            assert uow.alerts.get("a-old").crop_jpeg == crop
            uow.alerts.add(dataclasses.replace(alert("a-new"), crop_jpeg=crop))
            uow.commit()
    finally:
        rotated.close()
    forgotten = SqlStore.open(url, sealer=sealer_for(tmp_path, "kek-2.hex"))
    try:
        with forgotten() as uow:
            assert uow.alerts.get("a-new").crop_jpeg == crop
            with pytest.raises(StoreUnavailable, match="not configured"):
                uow.alerts.get("a-old")
    finally:
        forgotten.close()


@pytest.mark.postgres
def test_postgres_holds_only_sealed_crops_and_images(postgres_store_url: str, tmp_path: Path) -> None:
    store = SqlStore.open(postgres_store_url, sealer=sealer_for(tmp_path))
    crop, reference = tiny_jpeg(MARKER + b"crop"), tiny_jpeg(MARKER + b"reference")
    try:
        with store() as uow:
            uow.alerts.add(dataclasses.replace(alert("a-1"), crop_jpeg=crop))
            uow.watchlists.add(watchlist())
            uow.watchlists.add_subject(subject("s-1", image=reference), np.eye(2, 4, dtype=np.float32))
            uow.commit()
        with store.engine.connect() as sql:
            held = [bytes(r[0]) for r in sql.execute(text("SELECT crop_jpeg FROM alerts"))]
            held += [
                bytes(r[0]) for r in sql.execute(text("SELECT reference_image_jpeg FROM watchlist_subjects"))
            ]
        assert len(held) == 2
        assert all(h.startswith(b"LFRE1") and MARKER not in h for h in held)
        with store() as uow:
            assert uow.alerts.get("a-1").crop_jpeg == crop
            assert uow.watchlists.get_subject("wl-1", "s-1").reference_image_jpeg == reference
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_rows_stored_in_clear_are_sealed_at_start(postgres_store_url: str, tmp_path: Path) -> None:
    crop = tiny_jpeg(MARKER + b"legacy")
    legacy = SqlStore.open(postgres_store_url)
    with legacy() as uow:
        uow.alerts.add(dataclasses.replace(alert("a-old"), crop_jpeg=crop))
        uow.commit()
    legacy.close()
    store = SqlStore.open(postgres_store_url, sealer=sealer_for(tmp_path))
    try:
        assert store.seal_plaintext_images() == 1
        assert store.seal_plaintext_images() == 0
        assert all(c.startswith(b"LFRE1") for c in stored_crops(store))
        with store() as uow:
            assert uow.alerts.get("a-old").crop_jpeg == crop
    finally:
        store.close()
