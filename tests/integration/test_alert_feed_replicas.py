"""The alert feed across replicas over PostgreSQL: LISTEN/NOTIFY instead of polling, a dropped listening
connection, a window closed on one replica disarming the other, alerts in flight during a close."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest

from lfr.adapters.storage.sql.engine import parse_store_url
from lfr.adapters.storage.sql.notifications import PostgresListener, _libpq_dsn
from lfr.bootstrap import Container
from lfr.domain.alert import Adjudication
from lfr.domain.observation import Observation, Outcome
from lfr.services.alert_feed import FeedEventKind
from tests.integration.test_alert_feed import OLIVIA, follow, nothing_more, take
from tests.support import tiny_jpeg
from tests.tablet_support import MODEL, SUPERVISOR, TabletWorld, replica_pair

pytestmark = pytest.mark.postgres


@dataclass
class Replicas:
    world: TabletWorld  # replica A, with the armed window
    b: Container
    listener_a: PostgresListener
    listener_b: PostgresListener


@contextmanager
def two_replicas(url: str) -> Iterator[Replicas]:
    with replica_pair(url) as (world, b, (listener_a, listener_b)):
        assert isinstance(listener_a, PostgresListener)
        assert isinstance(listener_b, PostgresListener)
        yield Replicas(world, b, listener_a, listener_b)


def observation(world: TabletWorld, person: int = 0) -> Observation:
    """A new passage each time: its own track, so each raises its own alert (one per track and subject)."""
    vector = np.array(world.people[person])
    track = f"t-{secrets.token_hex(4)}"
    return Observation("cam-1", datetime.now(UTC), track, MODEL, vector, bytearray(tiny_jpeg(b"probe")))


async def raise_on(container: Container, world: TabletWorld, person: int = 0) -> str:
    [result] = await asyncio.to_thread(container.ingest.process, [observation(world, person)])
    assert result.outcome is Outcome.ALERT
    assert result.alert_id is not None
    return result.alert_id


async def test_alerts_raised_on_one_replica_and_decisions_made_on_the_other_reach_both(postgres_store_url):
    with two_replicas(postgres_store_url) as r:
        on_a, on_b = follow(r.world.feed, OLIVIA), follow(r.b.feed, OLIVIA)
        await nothing_more(on_b, 0.2)
        alert_id = await raise_on(r.world.container, r.world)
        for reader in (on_a, on_b):
            [event] = await take(reader, 1)
            assert (event.kind, event.alert.id) == (FeedEventKind.RAISED, alert_id)
        await asyncio.to_thread(r.b.alerts.adjudicate, alert_id, Adjudication.FALSE_ALERT, OLIVIA)
        for reader in (on_a, on_b):
            [event] = await take(reader, 1)
            assert (event.kind, event.alert.outcome) == (FeedEventKind.DECIDED, Adjudication.FALSE_ALERT)
        reads = r.b.feed.store_reads
        await nothing_more(on_b, 1.0)  # idle: the followers themselves query nothing
        assert r.b.feed.store_reads - reads <= 2  # the pump's once-a-second account check, no more
        await on_a.close()
        await on_b.close()


async def test_a_dropped_listening_connection_reconnects_and_catches_up_without_gap(postgres_store_url):
    with two_replicas(postgres_store_url) as r:
        on_b = follow(r.b.feed, OLIVIA)
        first = await raise_on(r.world.container, r.world)
        assert [e.alert.id for e in await take(on_b, 1)] == [first]
        with psycopg.connect(_libpq_dsn(parse_store_url(postgres_store_url)), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (r.listener_b.backend_pid,))
        # Raised while B hears nothing: B's listener is reconnecting.
        missed = [await raise_on(r.world.container, r.world, i % 2) for i in range(3)]
        assert [e.alert.id for e in await take(on_b, 3, timeout=10)] == missed
        assert r.listener_b.connections >= 2
        await nothing_more(on_b)
        await on_b.close()


async def test_a_notify_for_a_revision_this_replica_cannot_read_yet_is_delivered_once_readable(
    postgres_store_url,
):
    with two_replicas(postgres_store_url) as r:
        on_b = follow(r.b.feed, OLIVIA)
        await nothing_more(on_b, 0.2)
        dsn = _libpq_dsn(parse_store_url(postgres_store_url))
        with r.world.store() as uow:
            upcoming = uow.alerts.last_revision() + 1
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute("SELECT pg_notify('lfr_alert_changes', %s)", (str(upcoming),))
        await asyncio.sleep(0.3)  # B looked, found nothing, and looks again a little later
        alert_id = await raise_on(r.world.container, r.world)
        [event] = await take(on_b, 1)
        assert (event.alert.id, event.cursor) == (alert_id, upcoming)
        await nothing_more(on_b)
        await on_b.close()


async def test_a_window_closed_on_one_replica_disarms_the_other_within_a_second(postgres_store_url):
    with two_replicas(postgres_store_url) as r:
        window = r.world.window
        assert r.b.monitor.gate().armed_window("cam-1", datetime.now(UTC)) is not None
        await asyncio.to_thread(r.world.services.deployments.close, window.id, SUPERVISOR, "stop now")
        started = time.monotonic()
        while r.b.monitor.gate().armed_window("cam-1", datetime.now(UTC)) is not None:
            assert time.monotonic() - started < 1.0, "replica B still armed a second after the close"
            await asyncio.sleep(0.02)
        [result] = await asyncio.to_thread(r.b.ingest.process, [observation(r.world)])
        assert result.outcome is Outcome.NOT_ARMED


def test_alerts_in_flight_while_a_window_closes_are_all_raised_before_the_close(postgres_store_url):
    """Two replicas keep matching a listed face while a supervisor closes the window: every alert stored
    is ordered before the close in the audit trail; none follows it."""
    with two_replicas(postgres_store_url) as r:
        stop = threading.Event()
        outcomes: list[Outcome] = []

        def keep_matching(container: Container) -> None:
            while not stop.is_set():
                [result] = container.ingest.process([observation(r.world)])
                outcomes.append(result.outcome)

        workers = [threading.Thread(target=keep_matching, args=(c,)) for c in (r.world.container, r.b)]
        for worker in workers:
            worker.start()
        time.sleep(0.3)
        r.world.services.deployments.close(r.world.window.id, SUPERVISOR, "stop now")
        time.sleep(0.5)
        stop.set()
        for worker in workers:
            worker.join()
        with r.world.store() as uow:
            records = list(uow.audit.records())
        closed_at = next(r.seq for r in records if r.action == "window.closed")
        raised = [r.seq for r in records if r.action == "alert.raised"]
        assert raised
        assert Outcome.NOT_ARMED in outcomes
        assert max(raised) < closed_at
