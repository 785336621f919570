"""Trusted time: the store's clock, not each replica's own.

Replicas over PostgreSQL read the database's `clock_timestamp()` on every gate refresh and keep the
difference to their own clock as a measured offset (with half the round trip as its uncertainty), so
arming decisions, `raised_at` and audit times all follow one clock whichever replica makes them. A replica
whose own clock is further from the store's than `max_skew` is not trusted at all: it disarms until the
two agree again (a clock that is that far off may also jump between two readings).

The embedded store (SQLite, memory) has no clock of its own: it lives on this host in this process, so the
host clock is the store's clock and the offset is zero by definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from lfr.domain.clock import Clock

StoreTime = Callable[[], datetime]  # reads the store's clock; raises LfrError when it cannot


@dataclass(frozen=True, slots=True)
class ClockReading:
    offset: timedelta  # the store's clock minus this replica's
    uncertainty: timedelta  # half the round trip of the reading

    def disagrees_by(self) -> timedelta:
        """The largest the difference could be, given the uncertainty of the reading."""
        return abs(self.offset) + self.uncertainty


class StoreClock:
    """A Clock that tells the store's time: this replica's clock plus the offset last measured."""

    def __init__(self, local: Clock, store_time: StoreTime | None, max_skew: timedelta) -> None:
        self._local = local
        self._store_time = store_time
        self.max_skew = max_skew
        self._offset = timedelta(0)
        self._reading: ClockReading | None = (
            None if store_time is not None else ClockReading(timedelta(0), timedelta(0))
        )

    @property
    def has_own_clock(self) -> bool:
        """Whether the store keeps its own time (PostgreSQL) rather than sharing this host's."""
        return self._store_time is not None

    def now(self) -> datetime:
        return self._local.now() + self._offset

    def measure(self) -> ClockReading:
        """Reads the store's clock once and adopts the offset; raises whatever the store raises."""
        if self._store_time is None:
            assert self._reading is not None
            return self._reading
        before = self._local.now()
        store = self._store_time()
        after = self._local.now()
        half_trip = (after - before) / 2
        reading = ClockReading(store - (before + half_trip), abs(half_trip))
        self._offset, self._reading = reading.offset, reading
        return reading

    def agrees(self) -> bool:
        """Whether the last reading puts this replica's clock within `max_skew` of the store's."""
        return self._reading is not None and self._reading.disagrees_by() <= self.max_skew

    @property
    def last_reading(self) -> ClockReading | None:
        return self._reading
