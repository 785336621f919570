"""Every backend behind the UnitOfWork port behaves like the in-memory reference, on real databases."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, timedelta, timezone

import numpy as np
import pytest

from lfr.adapters.storage import Store, open_store
from lfr.domain.alert import Adjudication, Alert, TrackIdentity
from lfr.domain.audit import verify_chain
from lfr.domain.errors import Conflict, NotFound, StaleUpdate
from lfr.domain.principal import Credentials, Role
from lfr.domain.window import WindowState
from tests.integration.builders import (
    T0,
    alert,
    evaluation,
    event,
    principal,
    subject,
    watchlist,
    window,
)
from tests.support import tiny_jpeg


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("postgres_store_url")
    opened = open_store(url)
    yield opened
    opened.close()


def assert_utc_aware(*stamps: object) -> None:
    for stamp in stamps:
        assert stamp is not None
        assert stamp.utcoffset() == timedelta(0)  # type: ignore[attr-defined]


# --- units of work ---------------------------------------------------------------------------------


def test_nothing_is_kept_without_commit(store: Store) -> None:
    with store() as uow:
        uow.windows.add(window("w-uncommitted"))
    with store() as uow, pytest.raises(NotFound):
        uow.windows.get("w-uncommitted")


def test_an_exception_inside_the_unit_of_work_discards_its_changes(store: Store) -> None:
    def fail_midway() -> None:
        with store() as uow:
            uow.windows.add(window("w-1"))
            uow.audit.append(event(1))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    with store() as uow:
        assert uow.windows.find() == []
        assert uow.audit.head() is None


def test_rollback_discards_only_what_was_not_committed(store: Store) -> None:
    with store() as uow:
        uow.windows.add(window("w-kept"))
        uow.commit()
        uow.windows.add(window("w-dropped"))
        uow.rollback()
        uow.windows.add(window("w-late", created_at=T0 + timedelta(seconds=1)))
        uow.commit()
    with store() as uow:
        assert [w.id for w in uow.windows.find()] == ["w-kept", "w-late"]


# --- windows -----------------------------------------------------------------------------------------


def test_window_round_trips_exactly(store: Store) -> None:
    stored = window("w-1", authorised_by="sup2", authorised_at=T0 + timedelta(microseconds=3))
    with store() as uow:
        uow.windows.add(stored)
        uow.commit()
    with store() as uow:
        loaded = uow.windows.get("w-1")
    assert loaded == stored
    assert_utc_aware(loaded.starts_at, loaded.ends_at, loaded.created_at, loaded.authorised_at)
    assert loaded.closed_at is None
    assert loaded.starts_at.microsecond == 123463


def test_window_given_in_another_zone_comes_back_as_the_same_instant(store: Store) -> None:
    cet = timezone(timedelta(hours=1))
    with store() as uow:
        uow.windows.add(window("w-1", created_at=T0.astimezone(cet)))
        uow.commit()
    with store() as uow:
        assert uow.windows.get("w-1").created_at == T0


def test_window_ids_are_unique(store: Store) -> None:
    with store() as uow:
        uow.windows.add(window("w-1"))
        with pytest.raises(Conflict):
            uow.windows.add(window("w-1"))


def test_a_duplicate_id_is_a_conflict_that_leaves_the_unit_of_work_usable(store: Store) -> None:
    with store() as uow:
        uow.watchlists.add(watchlist("wl-1"))
        uow.watchlists.add_subject(subject("s-1"), np.ones((1, 4), np.float32))
        uow.alerts.add(alert("a-1"))
        uow.evaluations.add(evaluation("e-1", "model-a", T0))
        uow.commit()
        with pytest.raises(Conflict):
            uow.watchlists.add(watchlist("wl-1"))
        with pytest.raises(Conflict):
            uow.watchlists.add_subject(subject("s-1"), np.ones((1, 4), np.float32))
        with pytest.raises(Conflict):
            uow.alerts.add(alert("a-1"))
        with pytest.raises(Conflict):
            uow.evaluations.add(evaluation("e-1", "model-b", T0))
        uow.windows.add(window("w-after"))
        uow.commit()
    with store() as uow:
        assert uow.windows.get("w-after").id == "w-after"
        assert [a.id for a in uow.alerts.find()] == ["a-1"]
        assert uow.watchlists.embeddings("wl-1")[0] == ["s-1"]


def test_window_update_is_optimistic(store: Store) -> None:
    with store() as uow:
        uow.windows.add(window("w-1"))
        uow.commit()
    with store() as uow:
        authorised = uow.windows.get("w-1").authorise("sup2", T0)
        uow.windows.update(authorised)
        uow.commit()
    with store() as uow:
        assert uow.windows.get("w-1") == authorised
        assert authorised.version == 2
        with pytest.raises(StaleUpdate):
            uow.windows.update(dataclasses.replace(authorised, close_reason="x"))  # still version 2
        with pytest.raises(StaleUpdate):
            uow.windows.update(dataclasses.replace(authorised, version=4))
        with pytest.raises(NotFound):
            uow.windows.update(window("w-missing", version=2))
        with pytest.raises(NotFound):
            uow.windows.get("w-missing")


def test_windows_are_found_by_state_in_creation_order(store: Store) -> None:
    with store() as uow:
        uow.windows.add(window("w-c", created_at=T0 + timedelta(seconds=2)))
        uow.windows.add(window("w-b", created_at=T0))
        uow.windows.add(window("w-a", created_at=T0))
        uow.windows.add(window("w-d", created_at=T0 + timedelta(seconds=1), state=WindowState.CLOSED))
        uow.commit()
    with store() as uow:
        assert [w.id for w in uow.windows.find()] == ["w-a", "w-b", "w-d", "w-c"]
        assert [w.id for w in uow.windows.find([WindowState.PENDING])] == ["w-a", "w-b", "w-c"]
        closed_or_authorised = uow.windows.find([WindowState.CLOSED, WindowState.AUTHORISED])
        assert [w.id for w in closed_or_authorised] == ["w-d"]
        assert uow.windows.find([]) == []


# --- watchlists --------------------------------------------------------------------------------------


def enrol(store: Store, rng: np.random.Generator) -> dict[str, np.ndarray]:
    vectors = {
        "s-b": rng.normal(size=(2, 4)).astype(np.float32),
        "s-a": rng.normal(size=(3, 4)).astype(np.float32),
        "s-c": rng.normal(size=(1, 4)).astype(np.float32),
    }
    with store() as uow:
        uow.watchlists.add(watchlist("wl-1"))
        uow.watchlists.add(watchlist("wl-2", created_at=T0 - timedelta(days=1)))
        for subject_id, block in vectors.items():
            image = tiny_jpeg(subject_id.encode()) if subject_id != "s-c" else None
            uow.watchlists.add_subject(subject(subject_id, image=image), block)
        uow.watchlists.add_subject(subject("s-other", "wl-2"), rng.normal(size=(1, 4)).astype(np.float32))
        uow.commit()
    return vectors


def test_watchlist_round_trips_and_lists_in_creation_order(store: Store) -> None:
    with store() as uow:
        uow.watchlists.add(watchlist("wl-1"))
        uow.watchlists.add(watchlist("wl-0", created_at=T0 + timedelta(seconds=1)))
        uow.commit()
    with store() as uow:
        sealed = uow.watchlists.get("wl-1").seal("ef" * 32, T0 + timedelta(microseconds=1))
        uow.watchlists.update(sealed)
        uow.commit()
    with store() as uow:
        assert uow.watchlists.get("wl-1") == sealed
        assert_utc_aware(sealed.sealed_at)
        assert [w.id for w in uow.watchlists.all()] == ["wl-1", "wl-0"]
        with pytest.raises(NotFound):
            uow.watchlists.get("wl-missing")
        with pytest.raises(NotFound):
            uow.watchlists.update(watchlist("wl-missing"))


def test_subjects_and_embeddings_round_trip_in_a_stable_order(store: Store) -> None:
    vectors = enrol(store, np.random.default_rng(3))
    with store() as uow:
        subjects = uow.watchlists.subjects("wl-1")
        rows, matrix = uow.watchlists.embeddings("wl-1")
        one = uow.watchlists.get_subject("wl-1", "s-b")
    assert [s.id for s in subjects] == ["s-a", "s-b", "s-c"]
    assert one == subject("s-b", image=tiny_jpeg(b"s-b"))
    assert subjects[2].reference_image_jpeg is None
    assert rows == ["s-a"] * 3 + ["s-b"] * 2 + ["s-c"]
    assert matrix.dtype == np.float32
    expected = np.concatenate([vectors["s-a"], vectors["s-b"], vectors["s-c"]])
    assert matrix.tobytes() == expected.tobytes()  # bit for bit, not merely close


def test_subject_lookups_respect_the_watchlist(store: Store) -> None:
    enrol(store, np.random.default_rng(4))
    with store() as uow:
        with pytest.raises(NotFound):
            uow.watchlists.get_subject("wl-2", "s-a")
        with pytest.raises(NotFound):
            uow.watchlists.remove_subject("wl-2", "s-a")
        with pytest.raises(NotFound):
            uow.watchlists.add_subject(subject("s-x", "wl-missing"), np.ones((1, 4), np.float32))
        with pytest.raises(NotFound):
            uow.watchlists.embeddings("wl-missing")
        assert uow.watchlists.subjects("wl-missing") == []


def test_removing_a_subject_removes_its_embeddings(store: Store) -> None:
    enrol(store, np.random.default_rng(5))
    with store() as uow:
        uow.watchlists.remove_subject("wl-1", "s-a")
        uow.commit()
    with store() as uow:
        rows, matrix = uow.watchlists.embeddings("wl-1")
        assert rows == ["s-b", "s-b", "s-c"]
        assert matrix.shape == (3, 4)
        with pytest.raises(NotFound):
            uow.watchlists.get_subject("wl-1", "s-a")


def test_erase_content_keeps_only_the_watchlist_row(store: Store) -> None:
    enrol(store, np.random.default_rng(6))
    with store() as uow:
        assert uow.watchlists.erase_content("wl-1") == 3
        uow.commit()
    with store() as uow:
        assert uow.watchlists.get("wl-1").id == "wl-1"
        assert uow.watchlists.subjects("wl-1") == []
        rows, matrix = uow.watchlists.embeddings("wl-1")
        assert rows == []
        assert matrix.shape == (0, 4)
        assert matrix.dtype == np.float32
        assert [s.id for s in uow.watchlists.subjects("wl-2")] == ["s-other"]
        assert uow.watchlists.erase_content("wl-1") == 0


def test_each_template_keeps_its_provenance_and_source_image_until_erased(store: Store) -> None:
    from lfr.domain.errors import InvalidInput
    from lfr.domain.watchlist import TemplateImage

    with store() as uow:
        uow.watchlists.add(watchlist("wl-1"))
        uow.commit()
    images = (TemplateImage("custody 2019 (a.jpg)", tiny_jpeg()), TemplateImage("passport (b.jpg)", None))
    with store() as uow:
        uow.watchlists.add_subject(subject("s-t"), np.eye(4, dtype=np.float32)[:2], images)
        uow.watchlists.add_subject(subject("s-plain"), np.eye(4, dtype=np.float32)[2:3])
        with pytest.raises(InvalidInput, match="2 template images for 1 embeddings"):
            uow.watchlists.add_subject(subject("s-bad"), np.eye(4, dtype=np.float32)[:1], images)
        uow.commit()
    with store() as uow:
        assert uow.watchlists.templates("wl-1") == {"s-t": list(images)}
        assert uow.watchlists.erase_content("wl-1") == 2
        uow.commit()
    with store() as uow:
        assert uow.watchlists.templates("wl-1") == {}


def test_one_subjects_template_images_are_read_alone_in_row_order(store: Store) -> None:
    from lfr.domain.watchlist import TemplateImage

    with store() as uow:
        uow.watchlists.add(watchlist("wl-1"))
        uow.commit()
    images = [TemplateImage(f"custody {n}", tiny_jpeg(bytes([n]))) for n in range(3)]
    with store() as uow:
        uow.watchlists.add_subject(subject("s-3"), np.eye(4, dtype=np.float32)[:3], images)
        uow.watchlists.add_subject(subject("s-other"), np.eye(4, dtype=np.float32)[3:], images[:1])
        uow.watchlists.add_subject(subject("s-plain"), np.eye(4, dtype=np.float32)[:1])
        uow.commit()
    with store() as uow:
        assert uow.watchlists.subject_templates("wl-1", "s-3") == images
        assert uow.watchlists.subject_templates("wl-1", "s-plain") == []
        with pytest.raises(NotFound):
            uow.watchlists.subject_templates("wl-2", "s-3")


# --- alerts ------------------------------------------------------------------------------------------


def test_alerts_get_increasing_sequences_and_round_trip(store: Store) -> None:
    with store() as uow:
        first = uow.alerts.add(alert("a-1"))
        second = uow.alerts.add(alert("a-2"))
        uow.commit()
    assert 0 < first.sequence < second.sequence
    with store() as uow:
        loaded = uow.alerts.get("a-1")
    assert loaded == first
    assert loaded.crop_jpeg == tiny_jpeg(b"a-1")
    assert loaded.candidates == alert("a-1").candidates
    assert_utc_aware(loaded.raised_at, loaded.captured_at)
    with store() as uow, pytest.raises(NotFound):
        uow.alerts.get("a-missing")


def test_alert_update_is_optimistic_and_keeps_the_sequence(store: Store) -> None:
    with store() as uow:
        raised = uow.alerts.add(alert("a-1"))
        uow.commit()
    decided = raised.adjudicate(Adjudication.FALSE_ALERT, "officer-a", T0 + timedelta(minutes=1), "not him")
    with store() as uow:
        stored = uow.alerts.update(decided)
        uow.commit()
    assert stored == dataclasses.replace(decided, revision=raised.revision + 1)
    with store() as uow:
        assert uow.alerts.get("a-1") == stored
        with pytest.raises(StaleUpdate):
            uow.alerts.update(raised.adjudicate(Adjudication.CONFIRMED, "officer-b", T0))
        with pytest.raises(NotFound):
            uow.alerts.update(dataclasses.replace(alert("a-missing"), version=2))


def test_alerts_are_found_by_window_after_a_sequence_with_a_limit(store: Store) -> None:
    with store() as uow:
        added = [uow.alerts.add(alert(f"a-{i}", window_id=f"win-{i % 3}")) for i in range(7)]
        uow.commit()
    seqs = [a.sequence for a in added]
    with store() as uow:
        assert [a.sequence for a in uow.alerts.find()] == seqs
        assert [a.id for a in uow.alerts.find(["win-1"])] == ["a-1", "a-4"]
        assert [a.id for a in uow.alerts.find(["win-0", "win-2"], after_sequence=seqs[2])] == [
            "a-3",
            "a-5",
            "a-6",
        ]
        assert [a.id for a in uow.alerts.find(limit=2)] == ["a-0", "a-1"]
        assert [a.id for a in uow.alerts.find(after_sequence=seqs[5], limit=5)] == ["a-6"]
        assert uow.alerts.find([]) == []


def test_a_subjects_alerts_in_a_window_are_found_oldest_first_up_to_a_sequence(store: Store) -> None:
    def named(alert_id: str, subject_id: str, window_id: str = "win-1") -> Alert:
        return dataclasses.replace(alert(alert_id, window_id=window_id), subject_id=subject_id)

    with store() as uow:
        added = [
            uow.alerts.add(a)
            for a in (
                named("a-0", "s-1"),
                named("a-1", "s-2"),
                named("a-2", "s-1", "win-2"),
                named("a-3", "s-1"),
                named("a-4", "s-1"),
                named("a-5", "s-1"),
            )
        ]
        uow.commit()
    seq = {a.id: a.sequence for a in added}
    with store() as uow:
        found = uow.alerts.find_for_subject("win-1", "s-1", seq["a-4"])
        assert [a.id for a in found] == ["a-0", "a-3", "a-4"]
        assert all(a.crop_jpeg == b"" for a in found)
        assert [a.id for a in uow.alerts.find_for_subject("win-1", "s-1", seq["a-5"], limit=2)] == [
            "a-4",
            "a-5",
        ]
        assert uow.alerts.find_for_subject("win-1", "s-9", seq["a-5"]) == []


def test_one_alert_per_camera_and_source_and_a_duplicate_leaves_the_unit_of_work_usable(
    store: Store,
) -> None:
    with store() as uow:
        uow.alerts.add(alert("a-1", source_ref="node-a:1"))
        uow.commit()
    with store() as uow:
        with pytest.raises(Conflict):
            uow.alerts.add(alert("a-again", source_ref="node-a:1"))
        uow.alerts.add(alert("a-other-camera", camera_id="cam-2", source_ref="node-a:1"))
        uow.alerts.add(alert("a-next-seq", source_ref="node-a:2"))
        uow.alerts.add(alert("a-no-source-1"))  # nodes that name no session are not constrained
        uow.alerts.add(alert("a-no-source-2"))
        uow.commit()
    with store() as uow:
        assert [a.id for a in uow.alerts.find()] == [
            "a-1",
            "a-other-camera",
            "a-next-seq",
            "a-no-source-1",
            "a-no-source-2",
        ]


def test_a_duplicate_source_in_the_same_unit_of_work_is_a_conflict_too(store: Store) -> None:
    with store() as uow:
        uow.alerts.add(alert("a-1", source_ref="node-a:1"))
        with pytest.raises(Conflict):
            uow.alerts.add(alert("a-2", source_ref="node-a:1"))
        uow.commit()
    with store() as uow:
        assert [a.id for a in uow.alerts.find()] == ["a-1"]


def test_one_alert_per_track_identity_and_a_second_raise_finds_the_first(store: Store) -> None:
    """Window, camera, node session (of source_ref), track and subject: a replica whose raise meets the
    track's alert here is told so (Conflict) and updates that alert instead."""
    with store() as uow:
        first = uow.alerts.add(alert("a-1", source_ref="node-a:1", track_id="t-1"))
        uow.commit()
    identity = TrackIdentity("win-1", "cam-1", "node-a", "t-1", "s-1")
    with store() as uow:
        with pytest.raises(Conflict):
            uow.alerts.add(alert("a-again", source_ref="node-a:2", track_id="t-1"))
        found = uow.alerts.find_for_track(identity)
        assert found == dataclasses.replace(first, crop_jpeg=b"")  # the first, as listed: no crop
        assert found is not None
        seen = uow.alerts.update(found.seen_again(0.97, found.candidates, tiny_jpeg(b"better"), T0))
        others = [
            alert("a-other-session", source_ref="node-b:2", track_id="t-1"),
            alert("a-other-track", source_ref="node-a:3", track_id="t-2"),
            alert("a-other-camera", camera_id="cam-2", source_ref="node-a:2", track_id="t-1"),
            alert("a-other-window", window_id="win-2", source_ref="node-a:4", track_id="t-1"),
            dataclasses.replace(
                alert("a-other-subject", source_ref="node-a:5", track_id="t-1"), subject_id="s-2"
            ),
            alert("a-no-track-1", source_ref="node-a:6", track_id=""),  # never gathered, never constrained
            alert("a-no-track-2", source_ref="node-a:7", track_id=""),
            alert("a-no-session", track_id="t-1"),  # a node naming no session: its tracks gather as ""
        ]
        for other in others:
            uow.alerts.add(other)
        with pytest.raises(Conflict):
            uow.alerts.add(alert("a-no-session-again", track_id="t-1"))
        uow.commit()
    with store() as uow:
        assert [a.id for a in uow.alerts.find()] == ["a-1"] + [a.id for a in others]
        assert uow.alerts.find_for_track(identity) == dataclasses.replace(seen, crop_jpeg=b"")
        assert uow.alerts.get("a-1").sightings == 2
        no_session = uow.alerts.find_for_track(TrackIdentity("win-1", "cam-1", "", "t-1", "s-1"))
        assert no_session is not None
        assert no_session.id == "a-no-session"
        assert uow.alerts.find_for_track(TrackIdentity("win-1", "cam-1", "node-a", "", "s-1")) is None
        assert uow.alerts.find_for_track(TrackIdentity("win-1", "cam-1", "node-c", "t-1", "s-1")) is None


def test_a_second_alert_for_a_track_in_the_same_unit_of_work_is_a_conflict_too(store: Store) -> None:
    with store() as uow:
        uow.alerts.add(alert("a-1", source_ref="node-a:1", track_id="t-1"))
        with pytest.raises(Conflict):
            uow.alerts.add(alert("a-2", source_ref="node-a:2", track_id="t-1"))
        uow.commit()
    with store() as uow:
        assert [a.id for a in uow.alerts.find()] == ["a-1"]


def test_alerts_are_found_by_camera_and_source(store: Store) -> None:
    with store() as uow:
        first = uow.alerts.add(alert("a-1", source_ref="node-a:1"))
        uow.alerts.add(alert("a-2", camera_id="cam-2", source_ref="node-a:1"))
        uow.alerts.add(alert("a-3"))
        uow.commit()
    with store() as uow:
        found = uow.alerts.find_by_source("cam-1", "node-a:1")
        assert found == first
        assert found is not None
        assert found.source_ref == "node-a:1"
        assert uow.alerts.get("a-3").source_ref is None
        assert uow.alerts.find_by_source("cam-2", "node-a:1") == uow.alerts.get("a-2")
        assert uow.alerts.find_by_source("cam-1", "node-a:2") is None
        assert uow.alerts.find_by_source("cam-3", "node-a:1") is None


def test_purge_removes_alerts_raised_before_the_cutoff_and_sequences_are_not_reused(store: Store) -> None:
    with store() as uow:
        for i in range(4):
            uow.alerts.add(alert(f"a-{i}", raised_at=T0 + timedelta(microseconds=i)))
        uow.commit()
    with store() as uow:
        assert uow.alerts.purge_raised_before(T0 + timedelta(microseconds=2)) == 2
        uow.commit()
    with store() as uow:
        assert [a.id for a in uow.alerts.find()] == ["a-2", "a-3"]
        last = uow.alerts.find()[-1].sequence
        assert uow.alerts.purge_raised_before(T0 + timedelta(days=1)) == 2
        uow.commit()
    with store() as uow:
        assert uow.alerts.add(alert("a-new")).sequence > last


# --- audit -------------------------------------------------------------------------------------------


def test_audit_records_round_trip_and_rehash_identically(store: Store) -> None:
    offset = timezone(timedelta(hours=5, minutes=30))
    with store() as uow:
        appended = [uow.audit.append(event(n)) for n in range(1, 4)]
        odd = dataclasses.replace(event(4), at=(T0 + timedelta(microseconds=1)).astimezone(offset))
        appended.append(uow.audit.append(odd))
        uow.commit()
    with store() as uow:
        records = list(uow.audit.records())
        head = uow.audit.head()
        tail = [r.seq for r in uow.audit.records(3)]
    assert records == appended
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert records[3].at.isoformat(timespec="microseconds") == odd.at.isoformat(timespec="microseconds")
    assert records[0].details["note"] == "ünïcode ✓"
    assert head is not None
    assert (head.seq, head.hash) == (4, appended[-1].hash)
    assert tail == [3, 4]
    assert verify_chain(records, head).ok


def test_audit_head_is_none_for_an_empty_log(store: Store) -> None:
    with store() as uow:
        assert uow.audit.head() is None
        assert list(uow.audit.records()) == []


# --- counters ----------------------------------------------------------------------------------------


def test_counters_add_up_and_filter_by_window(store: Store) -> None:
    with store() as uow:
        uow.counters.increment({("w-1", "cam-1", "no_match"): 3, ("", "cam-2", "not_armed"): 1})
        uow.counters.increment({("w-1", "cam-1", "no_match"): 2, ("w-2", "cam-1", "alert"): 1})
        uow.counters.increment({})
        uow.commit()
    with store() as uow:
        assert uow.counters.totals() == {
            ("w-1", "cam-1", "no_match"): 5,
            ("", "cam-2", "not_armed"): 1,
            ("w-2", "cam-1", "alert"): 1,
        }
        assert uow.counters.totals("w-1") == {("w-1", "cam-1", "no_match"): 5}
        assert uow.counters.totals("") == {("", "cam-2", "not_armed"): 1}


# --- principals and evaluations ----------------------------------------------------------------------


def test_principals_round_trip_and_names_are_unique(store: Store) -> None:
    with store() as uow:
        uow.principals.add(principal("zed", Role.AUDITOR, Role.ADMIN))
        uow.principals.add(principal("amy"))
        with pytest.raises(Conflict):
            uow.principals.add(principal("amy", Role.ADMIN))
        uow.commit()
    with store() as uow:
        assert uow.principals.get("zed") == principal("zed", Role.AUDITOR, Role.ADMIN)
        assert [p.name for p in uow.principals.all()] == ["amy", "zed"]
        uow.principals.update(dataclasses.replace(principal("amy"), active=False))
        uow.commit()
    with store() as uow:
        assert uow.principals.get("amy").active is False
        with pytest.raises(NotFound):
            uow.principals.get("nobody")
        with pytest.raises(NotFound):
            uow.principals.update(principal("nobody"))


def test_a_new_token_replaces_the_old_one(store: Store) -> None:
    with store() as uow:
        uow.principals.add(principal("amy"))
        uow.principals.add(principal("bob"))
        uow.principals.set_token_hash("amy", "h1")
        uow.principals.set_token_hash("bob", "h2")
        uow.commit()
    with store() as uow:
        assert uow.principals.find_by_token_hash("h1") == principal("amy")
        uow.principals.set_token_hash("amy", "h3")
        uow.commit()
    with store() as uow:
        assert uow.principals.find_by_token_hash("h1") is None
        assert uow.principals.find_by_token_hash("h3") == principal("amy")
        assert uow.principals.find_by_token_hash("h2") == principal("bob")
        with pytest.raises(NotFound):
            uow.principals.set_token_hash("nobody", "h4")


def test_tokens_can_be_expired_and_accounts_removed(store: Store) -> None:
    with store() as uow:
        uow.principals.add(principal("amy"))
        uow.principals.add(principal("bob"))
        uow.principals.set_token_hash("amy", "h1")
        uow.principals.set_token_hash("bob", "h2")
        uow.principals.set_password_hash("bob", "$argon2id$v=19$abc")
        uow.commit()
    with store() as uow:
        assert uow.principals.credentials() == {
            "amy": Credentials(principal("amy"), "h1"),
            "bob": Credentials(principal("bob"), "h2"),
        }
        uow.principals.set_token_hash("amy", None)
        uow.principals.remove("bob")
        uow.commit()
    with store() as uow:
        assert uow.principals.credentials() == {"amy": Credentials(principal("amy"), None)}
        assert uow.principals.find_by_token_hash("h1") is None
        assert uow.principals.find_by_token_hash("h2") is None
        assert uow.principals.password_hash("bob") is None
        with pytest.raises(NotFound):
            uow.principals.remove("bob")
        uow.principals.add(principal("bob"))  # the name may be used again, for a new account
        uow.commit()


def test_a_token_keeps_its_expiry_until_replaced(store: Store) -> None:
    expires = T0.astimezone(timezone(timedelta(hours=2))) + timedelta(days=30)  # any zone in, UTC out
    with store() as uow:
        uow.principals.add(principal("amy"))
        uow.principals.set_token_hash("amy", "h1", expires)
        uow.commit()
    with store() as uow:
        found = uow.principals.find_token("h1")
        assert found == Credentials(principal("amy"), "h1", expires)
        assert found is not None
        assert found.token_expires_at is not None
        assert_utc_aware(found.token_expires_at)
        assert found.token_works("h1", expires - timedelta(microseconds=1))
        assert not found.token_works("h1", expires)
        assert uow.principals.credentials()["amy"].token_expires_at == expires
        assert uow.principals.find_token("nope") is None
        uow.principals.set_token_hash("amy", "h2")  # a new token without expiry
        uow.commit()
    with store() as uow:
        assert uow.principals.find_token("h2") == Credentials(principal("amy"), "h2", None)


def test_password_hashes_are_kept_per_account(store: Store) -> None:
    with store() as uow:
        uow.principals.add(principal("amy"))
        assert uow.principals.password_hash("amy") is None
        uow.principals.set_password_hash("amy", "$argon2id$v=19$abc")
        uow.commit()
    with store() as uow:
        assert uow.principals.password_hash("amy") == "$argon2id$v=19$abc"
        assert uow.principals.password_hash("nobody") is None
        uow.principals.update(dataclasses.replace(principal("amy"), roles=frozenset({Role.ADMIN})))
        uow.commit()
    with store() as uow:
        assert uow.principals.password_hash("amy") == "$argon2id$v=19$abc"  # an update keeps secrets
        with pytest.raises(NotFound):
            uow.principals.set_password_hash("nobody", "x")


def test_evaluations_are_listed_newest_first_per_model(store: Store) -> None:
    with store() as uow:
        uow.evaluations.add(evaluation("e-1", "model-a", T0))
        uow.evaluations.add(evaluation("e-2", "model-a", T0 + timedelta(days=1)))
        uow.evaluations.add(evaluation("e-3", "model-b", T0 + timedelta(days=2)))
        uow.commit()
    with store() as uow:
        found = uow.evaluations.for_model("model-a")
        assert [e.id for e in found] == ["e-2", "e-1"]
        assert found[1] == evaluation("e-1", "model-a", T0)
        assert found[1].recorded_at.tzinfo is not None
        assert uow.evaluations.for_model("model-z") == []


def test_an_evaluation_keeps_its_report_and_index_type_byte_for_byte(store: Store) -> None:
    report = '{"model_id":"model-a","note":"Zoë, 名前","x":0.30000000000000004}' + " " * 300_000
    kept = dataclasses.replace(
        evaluation("e-1", "model-a", T0), index_type="IVF1024,Flat", report_json=report
    )
    with store() as uow:
        uow.evaluations.add(kept)
        uow.commit()
    with store() as uow:
        (found,) = uow.evaluations.for_model("model-a")
    assert found == kept
    assert found.report_json == report


def test_all_datetimes_come_back_in_utc(store: Store) -> None:
    with store() as uow:
        uow.windows.add(window("w-1"))
        uow.commit()
    with store() as uow:
        loaded = uow.windows.get("w-1")
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.astimezone(UTC) == T0


def test_ending_sessions_bumps_the_generation_and_account_edits_keep_it(store: Store) -> None:
    with store() as uow:
        uow.principals.add(principal("amy"))
        uow.principals.add(principal("bob"))
        uow.commit()
    with store() as uow:
        assert uow.principals.end_sessions("amy") == 1
        assert uow.principals.end_sessions("amy") == 2
        uow.commit()
    with store() as uow:
        stale = uow.principals.get("amy")
        assert (stale.session_generation, uow.principals.get("bob").session_generation) == (2, 0)
        uow.principals.end_sessions("amy")
        # An edit made from a copy read before the sign-out must not bring the old sessions back.
        uow.principals.update(dataclasses.replace(stale, roles=frozenset({Role.ADMIN})))
        uow.commit()
    with store() as uow:
        assert uow.principals.get("amy").session_generation == 3
        assert uow.principals.get("amy").roles == frozenset({Role.ADMIN})
        with pytest.raises(NotFound):
            uow.principals.end_sessions("nobody")


def test_every_add_and_update_takes_the_next_revision_and_changes_are_read_in_revision_order(
    store: Store,
) -> None:
    with store() as uow:
        assert uow.alerts.last_revision() == 0
        first = uow.alerts.add(alert("a-1"))
        second = uow.alerts.add(alert("a-2", window_id="win-2"))
        uow.commit()
    with store() as uow:
        decided = uow.alerts.update(first.adjudicate(Adjudication.FALSE_ALERT, "officer-a", T0))
        uow.commit()
    assert (first.revision, second.revision, decided.revision) == (1, 2, 3)
    with store() as uow:
        assert uow.alerts.last_revision() == 3
        assert [(a.id, a.revision) for a in uow.alerts.changed_since(0)] == [("a-2", 2), ("a-1", 3)]
        assert [a.id for a in uow.alerts.changed_since(2)] == ["a-1"]
        assert [a.id for a in uow.alerts.changed_since(0, ["win-2"])] == ["a-2"]
        # Without the crop: a feed never carries (or decrypts) one.
        assert uow.alerts.changed_since(0, limit=1) == [
            dataclasses.replace(uow.alerts.get("a-2"), crop_jpeg=b"")
        ]
        assert uow.alerts.changed_since(3) == []
    with store() as uow:
        uow.alerts.add(alert("a-3"))
        # not committed: the revision it took is given back, as the sequence would be not
    with store() as uow:
        assert uow.alerts.last_revision() == 3
