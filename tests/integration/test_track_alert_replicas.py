"""One alert per (window, camera, node session, track, subject), however many matcher replicas see the track.

A node's stream can reconnect to another replica mid-track, or a node can send to two: each replica then
gets faces of the same track. Each replica looks for the track's alert before raising one, but two can
look at the same moment, both find none and both insert. The store's unique index on the track identity
(migration 0013) lets only one insert win; the other replica turns its raise into an update of the
winner's alert, exactly as a later face seen by one replica does. Two containers over one PostgreSQL
database or one SQLite file stand for two replicas.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from lfr.adapters.storage import Store
from lfr.bootstrap import Container
from lfr.domain.alert import Alert, TrackIdentity
from lfr.domain.audit import AuditAction, verify_chain
from lfr.domain.observation import Observation, ObservationResult, Outcome
from lfr.services.alert_feed import AlertFeed, FeedEventKind
from tests.integration.test_alert_feed import OLIVIA, Reader, follow, nothing_more, take
from tests.support import tiny_jpeg
from tests.tablet_support import MODEL, TabletWorld, replica_pair, unit

TRACK = "t-4f2a"


@dataclass
class Replicas:
    world: TabletWorld  # replica A, with the armed window
    a: Container
    b: Container
    listens: bool  # PostgreSQL: each replica hears the other's commits at once

    def face(self, seq: int, score: float, session: str = "node-a") -> Observation:
        """Face `seq` of the track, scoring `score` against person 0 (one of the watchlist's subjects)."""
        person = self.world.people[0]
        other = self.world.rng.normal(size=person.shape[0])
        other -= other.dot(person) * person  # orthogonal to the person, so the score is exact
        vector = score * person + np.sqrt(1 - score**2) * unit(other)
        captured = datetime.now(UTC) - timedelta(seconds=5) + timedelta(milliseconds=seq)
        return Observation(
            "cam-1",
            captured,
            TRACK,
            MODEL,
            vector.astype(np.float32),
            bytearray(tiny_jpeg(f"face {seq}".encode())),
            source_ref=f"{session}:{seq}",
        )

    def caught_up(self, *feeds: AlertFeed) -> None:
        """Over SQLite a feed finds another process's commits on its periodic re-check: run it now."""
        if not self.listens:
            for feed in feeds:
                feed.resync()


@contextmanager
def two_replicas(url: str) -> Iterator[Replicas]:
    with replica_pair(url) as (world, b, listeners):
        yield Replicas(world, world.container, b, listeners[0] is not None)


def on(container: Container, face: Observation) -> ObservationResult:
    [result] = container.ingest.process([face])
    return result


def stored(store: Store) -> tuple[list[Alert], list[str]]:
    """(every alert, the action of every alert audit record in order), checking the chain on the way."""
    with store() as uow:
        alerts = uow.alerts.find()
        records = list(uow.audit.records())
        assert verify_chain(records, uow.audit.head()).ok
    return alerts, [r.action for r in records if r.subject_kind == "alert"]


class LooksBeforeTheOtherWrites:
    """Replica B's store, forcing the race: B's first look for the track's alert is taken before A writes
    (raises it, or counts a sighting), and B goes on only once A's write is committed. Only PostgreSQL
    lets a reader and a writer overlap like this; SQLite's BEGIN IMMEDIATE makes B's look wait for A's
    commit instead."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.looked = threading.Event()
        self.other_committed = threading.Event()

    @contextmanager
    def __call__(self) -> Iterator[Any]:
        with self._store() as uow:
            real = uow.alerts.find_for_track

            def looking(identity: TrackIdentity) -> Alert | None:
                found = real(identity)
                if not self.looked.is_set():
                    self.looked.set()
                    assert self.other_committed.wait(10)
                return found

            uow.alerts.find_for_track = looking
            yield uow


class MissesTheTracksAlert:
    """Replica B's store, as B sees it when it looked before A's insert committed: its first look for the
    track's alert finds none (what LooksBeforeTheOtherWrites does for real over PostgreSQL), so the
    store's unique index is all that stands between B and a second alert, on every store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.missed = False

    @contextmanager
    def __call__(self) -> Iterator[Any]:
        with self._store() as uow:
            real = uow.alerts.find_for_track

            def looking(identity: TrackIdentity) -> Alert | None:
                if not self.missed:
                    self.missed = True
                    return None
                return real(identity)

            uow.alerts.find_for_track = looking
            yield uow


@pytest.mark.postgres
async def test_a_replica_that_looked_before_the_other_inserted_updates_the_other_replicas_alert(
    postgres_store_url: str, monkeypatch: pytest.MonkeyPatch
):
    with two_replicas(postgres_store_url) as r:
        on_a, on_b = follow(r.a.feed, OLIVIA), follow(r.b.feed, OLIVIA)
        await nothing_more(on_b, 0.2)
        racing = LooksBeforeTheOtherWrites(r.b.store)
        monkeypatch.setattr(r.b.ingest, "_uow", racing)
        later = asyncio.create_task(asyncio.to_thread(on, r.b, r.face(2, 0.95)))
        assert await asyncio.to_thread(racing.looked.wait, 10)
        first = await asyncio.to_thread(on, r.a, r.face(1, 0.90))
        racing.other_committed.set()
        second = await later
        assert first.outcome is second.outcome is Outcome.ALERT
        assert second.alert_id == first.alert_id
        await assert_one_alert_updated_by_a_better_face(r, first.alert_id, on_a, on_b)


@pytest.mark.postgres
async def test_a_sighting_counted_while_another_replica_counts_one_is_counted_on_top_of_it(
    postgres_store_url: str, monkeypatch: pytest.MonkeyPatch
):
    with two_replicas(postgres_store_url) as r:
        first = await asyncio.to_thread(on, r.a, r.face(1, 0.90))
        racing = LooksBeforeTheOtherWrites(r.b.store)
        monkeypatch.setattr(r.b.ingest, "_uow", racing)
        third = asyncio.create_task(asyncio.to_thread(on, r.b, r.face(3, 0.91)))
        assert await asyncio.to_thread(racing.looked.wait, 10)  # B read the alert at one sighting
        second = await asyncio.to_thread(on, r.a, r.face(2, 0.92))
        racing.other_committed.set()
        assert {first.alert_id, second.alert_id, (await third).alert_id} == {first.alert_id}
        [alert], actions = stored(r.world.store)
        assert alert.sightings == 3  # B's stale update failed its version check, looked again, counted
        assert alert.score == pytest.approx(0.92, abs=1e-5)  # and kept A's better face
        assert actions == [AuditAction.ALERT_RAISED] + [AuditAction.ALERT_SEEN_AGAIN] * 2


async def test_a_raise_that_meets_the_tracks_alert_in_the_store_becomes_its_update(
    store_url: str, monkeypatch: pytest.MonkeyPatch
):
    with two_replicas(store_url) as r:
        on_a, on_b = follow(r.a.feed, OLIVIA), follow(r.b.feed, OLIVIA)
        await nothing_more(on_b, 0.2)
        first = await asyncio.to_thread(on, r.a, r.face(1, 0.90))
        missing = MissesTheTracksAlert(r.b.store)
        monkeypatch.setattr(r.b.ingest, "_uow", missing)
        second = await asyncio.to_thread(on, r.b, r.face(2, 0.95))
        assert missing.missed
        assert first.outcome is second.outcome is Outcome.ALERT
        assert second.alert_id == first.alert_id
        await assert_one_alert_updated_by_a_better_face(r, first.alert_id, on_a, on_b)


async def assert_one_alert_updated_by_a_better_face(
    r: Replicas, alert_id: str | None, on_a: Reader, on_b: Reader
) -> None:
    [alert], actions = stored(r.world.store)
    assert alert.id == alert_id
    assert alert.sightings == 2
    assert alert.score == pytest.approx(0.95, abs=1e-5)  # the better face, seen by the replica that lost
    assert alert.source_ref == "node-a:1"  # the alert is still the first face's observation
    assert alert.last_seen_at is not None
    assert alert.first_seen_at is not None
    assert alert.last_seen_at > alert.first_seen_at
    with r.world.store() as uow:
        assert uow.alerts.get(alert.id).crop_jpeg == tiny_jpeg(b"face 2")
    assert actions == [AuditAction.ALERT_RAISED, AuditAction.ALERT_SEEN_AGAIN]
    # Every follower, on either replica, is told of the alert once and of the better face as an update.
    r.caught_up(r.a.feed, r.b.feed)
    for reader in (on_a, on_b):
        events = await take(reader, 1)
        if events[0].kind is FeedEventKind.RAISED:  # a follower may meet the alert only once updated
            assert events[0].alert is not None
            assert events[0].alert.id == alert.id
            events = await take(reader, 1)
        [updated] = events
        assert updated.kind is FeedEventKind.UPDATED
        assert updated.alert is not None
        assert (updated.alert.id, updated.alert.sightings) == (alert.id, 2)
        await nothing_more(reader)
        await reader.close()


async def test_faces_of_one_track_sent_to_two_replicas_at_once_raise_one_alert_counting_every_face(
    store_url: str,
):
    with two_replicas(store_url) as r:
        on_a = follow(r.a.feed, OLIVIA)
        await nothing_more(on_a, 0.2)
        faces = [r.face(seq, 0.85 + seq / 100) for seq in range(1, 9)]
        with ThreadPoolExecutor(max_workers=len(faces)) as pool:
            results = list(pool.map(on, [r.a, r.b] * (len(faces) // 2), faces))
        assert {result.outcome for result in results} == {Outcome.ALERT}
        assert len({result.alert_id for result in results}) == 1
        [alert], actions = stored(r.world.store)
        assert alert.id == results[0].alert_id
        assert alert.sightings == len(faces)  # no face lost, none counted twice
        assert alert.score == pytest.approx(0.93, abs=1e-5)
        with r.world.store() as uow:
            assert uow.alerts.get(alert.id).crop_jpeg == tiny_jpeg(b"face 8")
        assert actions == [AuditAction.ALERT_RAISED] + [AuditAction.ALERT_SEEN_AGAIN] * (len(faces) - 1)
        r.caught_up(r.a.feed)
        events = []
        while not events or events[-1].alert.sightings < len(faces):  # type: ignore[union-attr]
            events += await take(on_a, 1)
        assert {e.alert.id for e in events} == {alert.id}  # type: ignore[union-attr]
        assert [e.kind for e in events[1:]] == [FeedEventKind.UPDATED] * (len(events) - 1)
        await nothing_more(on_a)
        await on_a.close()


async def test_another_node_session_or_track_of_the_same_person_raises_its_own_alert(store_url: str):
    with two_replicas(store_url) as r:
        first = await asyncio.to_thread(on, r.a, r.face(1, 0.9))
        restarted = await asyncio.to_thread(on, r.b, r.face(1, 0.9, session="node-a-restarted"))
        assert first.outcome is restarted.outcome is Outcome.ALERT
        assert restarted.alert_id != first.alert_id
        alerts, actions = stored(r.world.store)
        assert [a.id for a in alerts] == [first.alert_id, restarted.alert_id]
        assert actions == [AuditAction.ALERT_RAISED] * 2
