"""Strikes with exponential back-off, per key: after `limit` failures within `window`, the key is refused
for `base`, doubling with each further failure up to `cap`; a key left alone for `window` after its last
refusal ends is forgotten. Used against bearer-token guessing (per address) and password guessing (per
address and name). In memory, per process: replicas each count their own."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from lfr.domain.clock import Clock

MAX_TRACKED_KEYS = 10_000  # keys remembered at once; the least recently failed go first


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    limit: int = 5
    window: timedelta = timedelta(minutes=5)
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Strike:
    count: int  # failures so far, this one included
    lock: timedelta  # how long the key is now refused; zero while under the limit


@dataclass(slots=True)
class _Strikes:
    count: int
    last: datetime
    locked_until: datetime


class Backoff:
    def __init__(self, clock: Clock, policy: BackoffPolicy) -> None:
        self._clock = clock
        self.policy = policy
        self._strikes: OrderedDict[object, _Strikes] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, key: object) -> timedelta:
        """How long `key` must still wait; zero if it may try now."""
        now = self._clock.now()
        with self._lock:
            strikes = self._live(key, now)
            return max(timedelta(0), strikes.locked_until - now) if strikes else timedelta(0)

    def strike(self, key: object) -> Strike:
        """Records a failure; returns the count and the lock it starts (zero while under the limit)."""
        now = self._clock.now()
        with self._lock:
            strikes = self._live(key, now) or _Strikes(0, now, now)
            strikes.count += 1
            strikes.last = now
            lock = timedelta(0)
            if strikes.count >= self.policy.limit:
                lock = min(
                    self.policy.cap, self.policy.base * 2 ** min(strikes.count - self.policy.limit, 30)
                )
                strikes.locked_until = now + lock
            self._strikes.pop(key, None)
            self._strikes[key] = strikes
            while len(self._strikes) > MAX_TRACKED_KEYS:
                self._strikes.popitem(last=False)
            return Strike(strikes.count, lock)

    def clear(self, key: object) -> None:
        with self._lock:
            self._strikes.pop(key, None)

    def _live(self, key: object, now: datetime) -> _Strikes | None:
        strikes = self._strikes.get(key)
        if strikes is not None and now - max(strikes.last, strikes.locked_until) > self.policy.window:
            del self._strikes[key]
            return None
        return strikes
