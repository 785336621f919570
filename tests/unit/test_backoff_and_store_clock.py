"""Back-off arithmetic and the store-clock offset, with a manual clock: no server, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lfr.domain.clock import ManualClock
from lfr.services.backoff import Backoff, BackoffPolicy
from lfr.services.timekeeping import StoreClock

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
POLICY = BackoffPolicy(
    limit=3, window=timedelta(minutes=5), base=timedelta(seconds=10), cap=timedelta(minutes=2)
)


def test_refusals_start_at_the_limit_double_and_stop_at_the_cap():
    clock = ManualClock(T0)
    backoff = Backoff(clock, POLICY)
    locks = [backoff.strike("a").lock.total_seconds() for _ in range(8)]
    assert locks == [0, 0, 10, 20, 40, 80, 120, 120]
    assert backoff.wait("a") == timedelta(minutes=2)
    assert backoff.wait("b") == timedelta(0)  # keys are independent


def test_a_key_left_alone_for_the_window_after_its_lock_is_forgotten():
    clock = ManualClock(T0)
    backoff = Backoff(clock, POLICY)
    for _ in range(3):
        backoff.strike("a")
    clock.advance(timedelta(seconds=11) + POLICY.window)
    assert backoff.wait("a") == timedelta(0)
    assert backoff.strike("a").count == 1  # counting starts again


def test_clear_forgets_a_key():
    backoff = Backoff(ManualClock(T0), POLICY)
    for _ in range(3):
        backoff.strike("a")
    backoff.clear("a")
    assert backoff.wait("a") == timedelta(0)


@given(st.integers(min_value=1, max_value=200))
def test_no_lock_is_ever_longer_than_the_cap(strikes):
    backoff = Backoff(ManualClock(T0), POLICY)
    assert all(backoff.strike("k").lock <= POLICY.cap for _ in range(strikes))


class SteppingClock:
    """A replica's clock that moves `step` on every reading (a reading takes time)."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self._now, self._step = start, step

    def now(self) -> datetime:
        now = self._now
        self._now += self._step
        return now


def test_the_offset_is_measured_at_the_middle_of_the_round_trip():
    local = SteppingClock(T0, timedelta(milliseconds=100))  # each reading 100 ms after the last
    store_time = T0 + timedelta(minutes=10, milliseconds=50)  # the store answered mid-way
    clock = StoreClock(local, lambda: store_time, max_skew=timedelta(seconds=2))
    assert not clock.agrees()  # nothing measured yet: not trusted
    reading = clock.measure()
    assert reading.offset == timedelta(minutes=10)
    assert reading.uncertainty == timedelta(milliseconds=50)
    assert not clock.agrees()
    assert clock.now() == T0 + timedelta(milliseconds=200) + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("offset_ms", "agrees"), [(1900, True), (1960, False), (-1900, True), (-2100, False)]
)
def test_agreement_counts_the_uncertainty(offset_ms, agrees):
    local = SteppingClock(T0, timedelta(milliseconds=100))
    clock = StoreClock(
        local, lambda: T0 + timedelta(milliseconds=50 + offset_ms), max_skew=timedelta(seconds=2)
    )
    clock.measure()
    assert clock.agrees() is agrees


def test_without_a_store_clock_the_host_clock_is_the_store_clock():
    local = ManualClock(T0)
    clock = StoreClock(local, None, max_skew=timedelta(seconds=2))
    assert clock.agrees()
    assert clock.measure().offset == timedelta(0)
    assert clock.now() == T0
