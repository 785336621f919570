"""One feed of alert events for every channel (gRPC Subscribe, the tablet's live feed, any later one).

A follower first catches up from the store (by alert sequence from where it says it is, or by change
revision when it resumes), then receives live events: an alert raised, decided or otherwise updated, and
a window closed. It only ever receives alerts of windows its actor may see, never the same change twice
and never with a gap, because every alert change carries a store-wide revision that becomes visible in
order (see AlertRepository.changed_since).

Live events come from one reader per process (the pump), not from each follower: when told that a
revision was committed, here (`publish`) or on another replica (PostgreSQL NOTIFY, see
adapters/storage/sql/notifications.py), it reads the changes once and hands each follower those it may
see. A follower therefore costs no store query while nothing happens. If a notification is lost, the
periodic re-check (`recheck_seconds`) or a listener's reconnection (`resync`) finds what it announced.

A follower that stops reading has a bounded queue; past `queue_limit` undelivered events it is ended as
too slow (memory freed at once) and catches up from its last revision when it comes back. Once a second
(while anyone follows) the pump also checks the followers' accounts: a disabled or removed account, a
signed-out session or an expired one ends its feeds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from lfr.domain.alert import Alert, AlertState
from lfr.domain.clock import Clock
from lfr.domain.errors import LfrError, Throttled, Unauthenticated
from lfr.domain.ports import UnitOfWork, UnitOfWorkFactory
from lfr.domain.principal import Principal
from lfr.domain.window import DeploymentWindow, WindowState
from lfr.services.deployments import can_see

logger = logging.getLogger(__name__)

PAGE = 200
T = TypeVar("T")


class FeedEventKind(StrEnum):
    RAISED = "raised"  # a new alert (or, while catching up, one the follower has not been sent)
    DECIDED = "decided"  # adjudicated, awaiting a second officer, verified or amended
    UPDATED = "updated"  # any other change (a rejected verification returns it to "raised")
    CLOSED = "closed"  # a window the follower may see was closed: it matches nothing any more
    IDLE = "idle"  # nothing happened for `idle_seconds`: a channel may send a keep-alive


@dataclass(frozen=True, slots=True)
class FeedEvent:
    kind: FeedEventKind
    window_id: str = ""
    alert: Alert | None = None
    # Resume after this revision to miss nothing since this event. None while replaying by sequence
    # (that replay is not in revision order) and for window and idle events.
    cursor: int | None = None


class SubscriberTooSlow(Throttled):
    """Ended because it left too many events unread; it may reconnect and catch up."""


class FeedClosed(LfrError):
    """Ended by the server (it is stopping); reconnect, here or to another replica, and catch up."""


def kind_of(alert: Alert) -> FeedEventKind:
    if alert.version == 1:
        return FeedEventKind.RAISED
    if alert.state is AlertState.RAISED:
        return FeedEventKind.UPDATED
    return FeedEventKind.DECIDED


@dataclass(eq=False)
class _Follower:
    loop: asyncio.AbstractEventLoop
    actor: Principal
    window_id: str | None
    session_generation: int | None
    deadline: datetime | None
    limit: int
    channel: str
    queue: collections.deque[FeedEvent] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ended: LfrError | None = None

    def may_see(self, window: DeploymentWindow | None) -> bool:
        if window is None or (self.window_id is not None and window.id != self.window_id):
            return False
        return can_see(window, self.actor)

    # The methods below run in the follower's event loop (called through call_soon_threadsafe).
    def offer(self, events: list[FeedEvent]) -> None:
        if self.ended is not None:
            return
        if len(self.queue) + len(events) > self.limit:
            self.queue.clear()
            self.ended = SubscriberTooSlow(
                f"more than {self.limit} alert events were left unread; reconnect to catch up", 0.0
            )
        else:
            self.queue.extend(events)
        self.wake.set()

    def end(self, why: LfrError) -> None:
        if self.ended is None:
            self.queue.clear()
            self.ended = why
        self.wake.set()


class AlertFeed:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        *,
        queue_limit: int = 1000,
        recheck_seconds: float = 30.0,
        account_check_seconds: float = 1.0,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._queue_limit = queue_limit
        self._recheck_seconds = recheck_seconds
        self._account_check_seconds = account_check_seconds
        self._cond = threading.Condition()
        self._followers: set[_Follower] = set()
        self._announced = 0  # the highest revision anyone said was committed
        self._read = 0  # the highest revision handed to followers
        self._windows_dirty = False
        self._resync = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._windows: dict[str, DeploymentWindow] = {}
        self.store_reads = 0  # the pump's store queries, for the benchmark and tests

    # -- told by publishers (any thread) ---------------------------------------------------------------

    def publish(self, alert: Alert) -> None:
        """AlertPublisher: the alert (new or changed) is committed."""
        self.notify(alert.revision)

    def notify(self, revision: int) -> None:
        with self._cond:
            if revision > self._announced:
                self._announced = revision
                self._cond.notify_all()

    def windows_changed(self) -> None:
        with self._cond:
            self._windows_dirty = True
            self._cond.notify_all()

    def resync(self) -> None:
        """Notifications may have been missed (a listener reconnected): re-read alerts and windows."""
        with self._cond:
            self._resync = True
            self._windows_dirty = True
            self._cond.notify_all()

    def end_all(self, why: LfrError, channel: str | None = None) -> None:
        """Ends every open follower, or those of one channel (e.g. before a server stops); they reconnect
        and catch up."""
        with self._cond:
            followers = [f for f in self._followers if channel is None or f.channel == channel]
        for follower in followers:
            _call(follower, follower.end, why)

    def followers(self) -> int:
        with self._cond:
            return len(self._followers)

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._pump, name="alert-feed", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    # -- followers -------------------------------------------------------------------------------------

    async def follow(
        self,
        actor: Principal,
        *,
        window_id: str | None = None,
        after_sequence: int = 0,
        after_revision: int | None = None,
        session_generation: int | None = None,
        deadline: datetime | None = None,
        idle_seconds: float | None = None,
        channel: str = "",
    ) -> AsyncGenerator[FeedEvent, None]:
        """Events for `actor` from after `after_revision` (a cursor from an earlier event) or, without one,
        every alert after `after_sequence` followed by what changes from then on. Raises Unauthenticated
        when the account or session ends, SubscriberTooSlow when the follower fell too far behind."""
        self.start()
        follower = _Follower(
            asyncio.get_running_loop(),
            actor,
            window_id,
            session_generation,
            deadline,
            self._queue_limit,
            channel,
        )
        with self._cond:
            self._followers.add(follower)
            self._cond.notify_all()
        try:
            # Registered first, read second: whatever commits from now on is in the queue, whatever
            # committed before is in the reads below; the overlap is skipped by revision.
            windows, head = await asyncio.to_thread(self._visible_windows, actor, window_id)
            sent: dict[str, int] = {}  # alerts beyond `head` replayed by sequence, with their version
            # Replayed in sequence order, so no cursor until the replay is complete. The last replayed
            # alert is held back until the changes since `head` are read: it then carries the cursor
            # reached, past the changes it already showed, so resuming from it repeats nothing.
            held: Alert | None = None
            if after_revision is None:
                async for alert in self._pages(windows, "sequence", after_sequence):
                    if alert.revision > head:
                        sent[alert.id] = alert.version
                    if held is not None:
                        yield FeedEvent(kind_of(held), held.window_id, held)
                    held = alert
                cursor = head
            else:
                cursor = after_revision
            async for alert in self._pages(windows, "revision", cursor):
                cursor = alert.revision
                if sent.get(alert.id, 0) < alert.version:
                    if held is not None:
                        yield FeedEvent(kind_of(held), held.window_id, held)
                        held = None
                    yield FeedEvent(kind_of(alert), alert.window_id, alert, cursor)
            if held is not None:
                yield FeedEvent(kind_of(held), held.window_id, held, cursor)
            sent.clear()
            while True:
                if not follower.queue and follower.ended is None:
                    try:
                        await asyncio.wait_for(follower.wake.wait(), idle_seconds)
                    except TimeoutError:
                        yield FeedEvent(FeedEventKind.IDLE)
                        continue
                follower.wake.clear()
                if follower.ended is not None:
                    raise follower.ended
                while follower.queue:
                    event = follower.queue.popleft()
                    if event.alert is not None:
                        assert event.cursor is not None
                        if event.cursor <= cursor and event.window_id in windows:
                            continue  # already sent while catching up
                        cursor = max(cursor, event.cursor)
                        event = FeedEvent(event.kind, event.window_id, event.alert, cursor)
                    yield event
        finally:
            with self._cond:
                self._followers.discard(follower)

    def _visible_windows(self, actor: Principal, window_id: str | None) -> tuple[set[str], int]:
        with self._uow() as uow:
            head = uow.alerts.last_revision()
            windows = {
                w.id
                for w in uow.windows.find()
                if can_see(w, actor) and (window_id is None or w.id == window_id)
            }
        return windows, head

    async def _pages(self, windows: set[str], by: str, after: int) -> AsyncIterator[Alert]:
        if not windows:
            return
        while True:
            page = await asyncio.to_thread(self._page, sorted(windows), by, after)
            for alert in page:
                after = alert.sequence if by == "sequence" else alert.revision
                yield alert
            if len(page) < PAGE:
                return

    def _page(self, windows: list[str], by: str, after: int) -> list[Alert]:
        with self._uow() as uow:
            if by == "sequence":
                return uow.alerts.find(windows, after_sequence=after, limit=PAGE)
            return uow.alerts.changed_since(after, windows, limit=PAGE)

    # -- the pump: one reader per process --------------------------------------------------------------

    def _pump(self) -> None:
        retry = _Backoff()
        while True:
            try:
                self._read = self._reading(lambda uow: uow.alerts.last_revision())
                self._windows = self._load_windows()
                break
            except LfrError as exc:
                logger.warning("alert feed cannot read the store (%s); retrying", type(exc).__name__)
                if self._sleep(retry.next()):
                    return
        next_recheck = time.monotonic() + self._recheck_seconds
        next_accounts = time.monotonic() + self._account_check_seconds
        missing_since: float | None = None
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    behind = self._announced > self._read and (retry.ready(now))
                    accounts_due = bool(self._followers) and now >= next_accounts
                    if behind or self._windows_dirty or self._resync or accounts_due or now >= next_recheck:
                        break
                    wake_at = min(next_recheck, next_accounts if self._followers else next_recheck)
                    if self._announced > self._read:
                        wake_at = min(wake_at, retry.at)
                    self._cond.wait(max(0.0, wake_at - now))
                windows_dirty, self._windows_dirty = self._windows_dirty, False
                resync, self._resync = self._resync, False
                announced = self._announced
            now = time.monotonic()
            try:
                if windows_dirty:
                    self._reload_windows()
                if announced > self._read or resync or now >= next_recheck:
                    next_recheck = now + self._recheck_seconds
                    self._read_changes()
                if self._read >= announced:
                    retry.reset()
                    missing_since = None
                else:
                    # Announced but not readable yet (a NOTIFY can overtake what this replica's
                    # connection sees); look again shortly, and give up on a number that never appears.
                    missing_since = missing_since or now
                    if now - missing_since > self._recheck_seconds:
                        logger.warning("alert revision %d was announced but never appeared", announced)
                        with self._cond:
                            self._announced = self._read
                        missing_since = None
                    retry.schedule(now)
                if now >= next_accounts:
                    next_accounts = now + self._account_check_seconds
                    self._check_accounts()
            except LfrError as exc:
                logger.warning("alert feed could not read the store (%s); retrying", type(exc).__name__)
                retry.schedule(now)
                with self._cond:
                    self._resync = True
                if self._sleep(retry.next()):
                    return

    def _sleep(self, seconds: float) -> bool:
        with self._cond:
            if not self._closed:
                self._cond.wait(seconds)
            return self._closed

    def _reading(self, read: Callable[[UnitOfWork], T]) -> T:
        self.store_reads += 1
        with self._uow() as uow:
            return read(uow)

    def _load_windows(self) -> dict[str, DeploymentWindow]:
        return self._reading(lambda uow: {w.id: w for w in uow.windows.find()})

    def _reload_windows(self) -> None:
        before, self._windows = self._windows, self._load_windows()
        closed = [
            w
            for w in self._windows.values()
            if w.state is WindowState.CLOSED and (w.id not in before or before[w.id].state is not w.state)
        ]
        if closed:
            self._fan_out([FeedEvent(FeedEventKind.CLOSED, w.id) for w in closed])

    def _read_changes(self) -> None:
        while True:
            page = self._reading(functools.partial(_changed_since, self._read))
            if not page:
                return
            if any(a.window_id not in self._windows for a in page):
                self._windows = self._load_windows()
            self._read = page[-1].revision
            self._fan_out([FeedEvent(kind_of(a), a.window_id, a, a.revision) for a in page])
            if len(page) < PAGE:
                return

    def _fan_out(self, events: list[FeedEvent]) -> None:
        with self._cond:
            followers = list(self._followers)
        for follower in followers:
            mine = [e for e in events if follower.may_see(self._windows.get(e.window_id))]
            if mine:
                _call(follower, follower.offer, mine)

    def _check_accounts(self) -> None:
        with self._cond:
            followers = list(self._followers)
        if not followers:
            return
        accounts = self._reading(lambda uow: {p.name: p for p in uow.principals.all()})
        now = self._clock.now()
        for follower in followers:
            account = accounts.get(follower.actor.name)
            why: LfrError | None = None
            if account is None or not account.active:
                why = Unauthenticated("this account was disabled")
            elif account.roles != follower.actor.roles:
                why = Unauthenticated("the roles of this account changed; sign in again")
            elif (
                follower.session_generation is not None
                and account.session_generation != follower.session_generation
            ):
                why = Unauthenticated("this session was signed out")
            elif follower.deadline is not None and now >= follower.deadline:
                why = Unauthenticated("your session expired")
            if why is not None:
                _call(follower, follower.end, why)


def _changed_since(after: int, uow: UnitOfWork) -> list[Alert]:
    return uow.alerts.changed_since(after, None, PAGE)


def _call(follower: _Follower, method: Callable[..., None], *args: object) -> None:
    with contextlib.suppress(RuntimeError):  # its event loop has closed; its owner unregisters it
        follower.loop.call_soon_threadsafe(method, *args)


class _Backoff:
    """When to look again for an announced revision that is not readable yet: 20 ms, doubling to 1 s."""

    FIRST, LAST = 0.02, 1.0

    def __init__(self) -> None:
        self.delay = 0.0
        self.at = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.at

    def schedule(self, now: float) -> None:
        self.delay = min(self.LAST, self.delay * 2) if self.delay else self.FIRST
        self.at = now + self.delay

    def next(self) -> float:
        return self.delay or self.FIRST

    def reset(self) -> None:
        self.delay = 0.0
        self.at = 0.0
