"""Slows password guessing at the tablet without letting a guesser lock a real officer out.

Failures are counted per (client address, name): after `max_failures_per_name` of them the pair is refused
for `backoff`, doubling with each further failure up to `backoff_max`. A guesser elsewhere therefore only
ever locks out themselves; the officer at their own tablet still signs in. A second, higher limit per
address (stations' tablets may share one address behind NAT) stops one client trying many names.
A refused attempt never reaches the password check, so a locked pair reveals nothing about the password.
The state lives in memory per process; replicas each count their own attempts. The client address is the
TCP peer, or X-Forwarded-For only from proxies listed in `tablet.forwarded_allow_ips` (empty by default).

Each lock is audited once, when it engages, as a policy warning naming the name tried and the address,
never the password. Auditing every refused attempt would let an attacker fill the audit chain at will.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import Throttled
from lfr.domain.ports import UnitOfWorkFactory
from lfr.services.backoff import Backoff, BackoffPolicy


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    max_failures_per_name: int = 5  # per name from one address
    max_failures_per_address: int = 20
    window: timedelta = timedelta(minutes=5)  # failures older than this (after a lock ends) are forgotten
    backoff: timedelta = timedelta(seconds=30)
    backoff_max: timedelta = timedelta(minutes=15)


class SignInThrottle:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: ThrottlePolicy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = policy
        self._pairs = Backoff(
            clock,
            BackoffPolicy(policy.max_failures_per_name, policy.window, policy.backoff, policy.backoff_max),
        )
        self._addresses = Backoff(
            clock,
            BackoffPolicy(policy.max_failures_per_address, policy.window, policy.window, policy.backoff_max),
        )

    def check(self, name: str, address: str) -> None:
        """Raises Throttled if this name from this address, or this address at all, may not try yet."""
        wait = max(self._pairs.wait((address, name.casefold())), self._addresses.wait(address))
        if wait > timedelta(0):
            raise Throttled(
                "too many failed sign-ins; try again later", retry_after_seconds=wait.total_seconds()
            )

    def failed(self, name: str, address: str) -> None:
        now = self._clock.now()
        pair = self._pairs.strike((address, name.casefold()))
        if pair.count == self._policy.max_failures_per_name:
            self._audit("address_and_name", name, address, pair.count, now)
        by_address = self._addresses.strike(address)
        if by_address.count == self._policy.max_failures_per_address:
            self._audit("address", name, address, by_address.count, now)

    def succeeded(self, name: str, address: str) -> None:
        """A correct password clears that pair's failures (not the address's: one known password must not
        buy another round of guesses at other names)."""
        self._pairs.clear((address, name.casefold()))

    def _audit(self, kind: str, name: str, address: str, failures: int, now: datetime) -> None:
        with self._uow() as uow:
            uow.audit.append(
                AuditEvent(
                    AuditAction.POLICY_WARNING,
                    "system",
                    "sign_in",
                    address if kind == "address" else name,
                    now,
                    {
                        "warning": "sign_in_throttled",
                        "by": kind,
                        "name_tried": name,
                        "address": address,
                        "failures": failures,
                        "window_seconds": self._policy.window.total_seconds(),
                    },
                )
            )
            uow.commit()
