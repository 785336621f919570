"""The alert feed (services/alert_feed.py): catch-up then live, decisions from any channel, visibility,
no gap and no duplicate, accounts that end, slow followers, and a window closed with alerts in flight."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lfr.adapters.jpeg import JpegCropValidator
from lfr.domain.alert import Adjudication
from lfr.domain.clock import ManualClock
from lfr.domain.errors import Unauthenticated
from lfr.domain.observation import Observation, Outcome
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.services.alert_feed import AlertFeed, FeedEvent, FeedEventKind, SubscriberTooSlow
from lfr.services.ingest import IngestService
from tests.support import NullMetrics, tiny_jpeg
from tests.tablet_support import MODEL, SUPERVISOR, TabletWorld, build_world

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
OLIVIA = Principal("olivia", PrincipalKind.USER, frozenset({Role.OFFICER}))
OSCAR = Principal("oscar", PrincipalKind.USER, frozenset({Role.OFFICER}))


@pytest.fixture
def world() -> TabletWorld:
    w = build_world(ManualClock(START), officers=frozenset({"olivia"}))
    w.add_user("olivia", Role.OFFICER)
    w.add_user("oscar", Role.OFFICER)
    return w


class Reader:
    """Reads a feed in a task of its own, so waiting for "nothing more" never cancels the feed itself."""

    def __init__(self, events: AsyncIterator[FeedEvent]) -> None:
        self.events = events
        self.queue: asyncio.Queue[FeedEvent | BaseException] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.events:
                await self.queue.put(event)
        except Exception as exc:
            await self.queue.put(exc)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def follow(feed: AlertFeed, actor: Principal, **kwargs: object) -> Reader:
    return Reader(feed.follow(actor, **kwargs))  # type: ignore[arg-type]


async def take(reader: Reader, n: int, timeout: float = 5.0) -> list[FeedEvent]:
    got: list[FeedEvent] = []
    async with asyncio.timeout(timeout):
        while len(got) < n:
            item = await reader.queue.get()
            if isinstance(item, BaseException):
                raise item
            got.append(item)
    return got


async def nothing_more(reader: Reader, wait: float = 0.4) -> None:
    await asyncio.sleep(wait)
    assert reader.queue.empty(), reader.queue.get_nowait()


async def observe(world: TabletWorld, person: int | None = 0) -> str | None:
    return (await asyncio.to_thread(world.observe, person)).alert_id


async def test_catches_up_then_follows_raised_and_decided_events_each_once(world):
    first, second = await observe(world), await observe(world, 1)
    events = follow(world.feed, OLIVIA)
    caught_up = await take(events, 2)
    assert [(e.kind, e.alert.id) for e in caught_up] == [
        (FeedEventKind.RAISED, first),
        (FeedEventKind.RAISED, second),
    ]
    assert caught_up[0].cursor is None
    assert caught_up[1].cursor == 2  # a cursor once the replay is complete
    third = await observe(world)
    # A decision made through the service (any channel: gRPC, another tablet) reaches the follower.
    await asyncio.to_thread(world.services.alerts.adjudicate, first, Adjudication.FALSE_ALERT, OLIVIA)
    live = await take(events, 2)
    assert [(e.kind, e.alert.id) for e in live] == [
        (FeedEventKind.RAISED, third),
        (FeedEventKind.DECIDED, first),
    ]
    assert live[1].alert.outcome is Adjudication.FALSE_ALERT
    assert [e.cursor for e in live] == [3, 4]
    await nothing_more(events)
    await events.close()


async def test_resuming_after_a_cursor_receives_every_change_since_and_nothing_before(world):
    first = await observe(world)
    events = follow(world.feed, OLIVIA)
    [seen] = await take(events, 1)
    await events.close()
    # While away: a new alert, and a decision on the alert it had already seen.
    missed = await observe(world, 1)
    await asyncio.to_thread(world.services.alerts.adjudicate, first, Adjudication.CONFIRMED, OLIVIA)
    resumed = follow(world.feed, OLIVIA, after_revision=seen.cursor)
    got = await take(resumed, 2)
    assert [(e.kind, e.alert.id) for e in got] == [
        (FeedEventKind.RAISED, missed),
        (FeedEventKind.DECIDED, first),
    ]
    await nothing_more(resumed)
    await resumed.close()


async def test_only_alerts_of_windows_the_actor_may_see(world):
    officer_elsewhere = follow(world.feed, OSCAR)
    supervisor = follow(world.feed, SUPERVISOR)
    other_window = follow(world.feed, SUPERVISOR, window_id="win-unknown")
    alert_id = await observe(world)
    [event] = await take(supervisor, 1)
    assert event.alert.id == alert_id
    await nothing_more(officer_elsewhere)
    await nothing_more(other_window, 0.1)
    for events in (officer_elsewhere, supervisor, other_window):
        await events.close()


async def test_alerts_raised_concurrently_arrive_without_gap_or_duplicate(world):
    events = follow(world.feed, SUPERVISOR)
    raised: list[str] = []
    lock = threading.Lock()

    def raise_some() -> None:
        for i in range(15):
            alert_id = world.observe(i % 2).alert_id
            with lock:
                raised.append(alert_id)

    threads = [threading.Thread(target=raise_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    got = await take(events, 60, timeout=20)
    for thread in threads:
        thread.join()
    assert sorted(e.alert.id for e in got) == sorted(raised)
    assert [e.alert.sequence for e in got] == sorted(e.alert.sequence for e in got)
    await nothing_more(events)
    await events.close()


async def test_a_disabled_account_loses_its_feed_within_a_second(world):
    events = follow(world.feed, OLIVIA)
    await observe(world)
    await take(events, 1)
    with world.store() as uow:
        uow.principals.update(dataclasses.replace(uow.principals.get("olivia"), active=False))
        uow.commit()
    started = time.monotonic()
    with pytest.raises(Unauthenticated, match="disabled"):
        await take(events, 1, timeout=3)
    assert time.monotonic() - started < 1.5


async def test_a_signed_out_or_expired_session_loses_its_feed(world):
    signed_out = follow(world.feed, OLIVIA, session_generation=0)
    expiring = follow(world.feed, OLIVIA, deadline=START + timedelta(minutes=5))
    await observe(world)
    await take(signed_out, 1)
    await take(expiring, 1)
    await asyncio.to_thread(world.services.principals.end_sessions, "olivia")
    with pytest.raises(Unauthenticated, match="signed out"):
        await take(signed_out, 1, timeout=3)
    world.clock.advance(timedelta(minutes=6))
    with pytest.raises(Unauthenticated, match="expired"):
        await take(expiring, 1, timeout=3)


async def test_a_follower_that_stops_reading_is_bounded_ended_and_catches_up_on_return(world):
    feed = AlertFeed(world.store, world.clock, queue_limit=5)
    world.ingest._publisher = feed  # this test's feed hears of new alerts
    try:
        events = feed.follow(OLIVIA)
        first = asyncio.ensure_future(anext(events))  # caught up (nothing yet), then waiting live
        await asyncio.sleep(0.2)
        await observe(world)
        seen = await asyncio.wait_for(first, 5)
        raised = [await observe(world) for _ in range(8)]  # the follower reads none of them
        await asyncio.sleep(0.3)
        [follower] = feed._followers
        assert follower.ended is not None
        assert len(follower.queue) == 0  # memory freed, not growing
        with pytest.raises(SubscriberTooSlow):
            await anext(events)
        back = follow(feed, OLIVIA, after_revision=seen.cursor)
        assert [e.alert.id for e in await take(back, 8)] == raised
        await back.close()
    finally:
        feed.close()


async def test_an_announced_revision_not_yet_readable_is_looked_for_again(world):
    """A NOTIFY can overtake the commit it announces, as seen from this replica's connection."""
    feed = AlertFeed(world.store, world.clock)
    try:
        events = follow(feed, OLIVIA)
        await nothing_more(events, 0.1)  # registered and caught up
        with world.store() as uow:
            next_revision = uow.alerts.last_revision() + 1
        feed.notify(next_revision)  # announced; the alert is not there yet
        await asyncio.sleep(0.2)
        alert_id = await observe(world)  # committed later, and this feed is not told again
        [event] = await take(events, 1, timeout=3)
        assert (event.alert.id, event.cursor) == (alert_id, next_revision)
        await events.close()
    finally:
        feed.close()


async def test_closing_a_window_is_an_event_for_those_who_may_see_it(world):
    olivia, oscar = follow(world.feed, OLIVIA), follow(world.feed, OSCAR)
    await nothing_more(olivia, 0.1)
    await asyncio.to_thread(world.services.deployments.close, world.window.id, SUPERVISOR, "operation over")
    [event] = await take(olivia, 1)
    assert (event.kind, event.window_id) == (FeedEventKind.CLOSED, world.window.id)
    await nothing_more(oscar)
    await olivia.close()
    await oscar.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_store_url"))


def test_no_alert_is_raised_once_the_close_of_its_window_is_committed(any_store_url):
    """A batch read the gate while the window was armed; the window is closed before its match is stored."""
    world = build_world(ManualClock(START), store_url=any_store_url)
    try:
        armed_gate = world.container.monitor.gate()
        world.services.deployments.close(world.window.id, SUPERVISOR, "stop now")
        in_flight = IngestService(
            world.store,
            world.clock,
            lambda: armed_gate,
            world.container.indexes,
            world.feed,
            JpegCropValidator(),
            NullMetrics(),
        )
        observation = Observation(
            "cam-1", START, "t1", MODEL, np.array(world.people[0]), bytearray(tiny_jpeg(b"probe"))
        )
        [result] = in_flight.process([observation])
        assert result.outcome is Outcome.NOT_ARMED
        with world.store() as uow:
            assert uow.alerts.find() == []
    finally:
        world.container.close()
