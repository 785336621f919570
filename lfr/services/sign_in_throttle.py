"""Slows password guessing at the tablet: too many failed sign-ins for one name, or from one address,
within a sliding window and further attempts are refused (Throttled) until the oldest failure ages out.

The name limit protects an account against a slow guesser from many places; the address limit, set
higher because a station's tablets may share one address behind NAT, stops one client trying many names.
A refused attempt never reaches the password check, so a locked name reveals nothing about its password.
The state lives in memory per process; replicas each count their own attempts.

Each lock is audited once, when it engages, as a policy warning naming the name tried and the address,
never the password. Auditing every refused attempt would let an attacker fill the audit chain at will.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import Throttled
from lfr.domain.ports import UnitOfWorkFactory

MAX_TRACKED_KEYS = 10_000  # names and addresses remembered at once; the oldest go first


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    max_failures_per_name: int = 5
    max_failures_per_address: int = 20
    window: timedelta = timedelta(minutes=5)


class SignInThrottle:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: ThrottlePolicy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = policy
        self._failures: OrderedDict[tuple[str, str], deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, name: str, address: str) -> None:
        """Raises Throttled if this name or this address may not try again yet."""
        now = self._clock.now()
        with self._lock:
            waits = [self._wait(key, limit, now) for key, limit in self._keys(name, address)]
        wait = max(waits)
        if wait > timedelta(0):
            raise Throttled(
                "too many failed sign-ins; try again later", retry_after_seconds=wait.total_seconds()
            )

    def failed(self, name: str, address: str) -> None:
        now = self._clock.now()
        locked = []
        with self._lock:
            for key, limit in self._keys(name, address):
                times = self._failures.pop(key, None) or deque(maxlen=limit)
                self._failures[key] = times  # re-inserted as the most recent
                times.append(now)
                if len(times) == limit and self._wait(key, limit, now) > timedelta(0):
                    locked.append(key)
            while len(self._failures) > MAX_TRACKED_KEYS:
                self._failures.popitem(last=False)
        for kind, value in locked:
            self._audit(kind, value, name, address, now)

    def succeeded(self, name: str) -> None:
        """A correct password clears the name's failures (not the address's: one known password must not
        buy another round of guesses at other names)."""
        with self._lock:
            self._failures.pop(("name", name.casefold()), None)

    def _keys(self, name: str, address: str) -> list[tuple[tuple[str, str], int]]:
        return [
            (("name", name.casefold()), self._policy.max_failures_per_name),
            (("address", address), self._policy.max_failures_per_address),
        ]

    def _wait(self, key: tuple[str, str], limit: int, now: datetime) -> timedelta:
        times = self._failures.get(key)
        if times is None or len(times) < limit:
            return timedelta(0)
        return max(timedelta(0), times[0] + self._policy.window - now)

    def _audit(self, kind: str, value: str, name: str, address: str, now: datetime) -> None:
        limit = (
            self._policy.max_failures_per_name if kind == "name" else self._policy.max_failures_per_address
        )
        with self._uow() as uow:
            uow.audit.append(
                AuditEvent(
                    AuditAction.POLICY_WARNING,
                    "system",
                    "sign_in",
                    value,
                    now,
                    {
                        "warning": "sign_in_throttled",
                        "by": kind,
                        "name_tried": name,
                        "address": address,
                        "failures": limit,
                        "window_seconds": self._policy.window.total_seconds(),
                    },
                )
            )
            uow.commit()
