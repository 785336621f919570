"""Whether a caller authenticated some time ago may still act: long-lived streams (camera ingest, alert
subscriptions, live feeds) ask this instead of the store, so that disabling an account, removing it,
changing its roles or expiring its token (by command or by its expiry time) ends them within one poll,
on every replica.

The matcher re-reads every account, its token's hash and expiry from the store every `poll` seconds (one
small query). Listeners hear which names changed (or whose token expired since the last poll), from the
refreshing thread; they must not block. If the store cannot be read, the last good view stays (an outage
must not cut every camera's stream; the matcher is disarmed then anyway) and the failure is logged by the
caller's duty loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from lfr.domain.clock import Clock
from lfr.domain.ports import UnitOfWorkFactory
from lfr.domain.principal import Credentials, Principal

logger = logging.getLogger(__name__)

Listener = Callable[[frozenset[str]], None]


class AccessMonitor:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        self._view: dict[str, Credentials] | None = None
        self._read_at: datetime | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._uow() as uow:
            view = uow.principals.credentials()
        now = self._clock.now()
        with self._lock:
            before, since = self._view, self._read_at
            self._view, self._read_at = view, now
            listeners = list(self._listeners)
        if before is None or since is None:
            return
        changed = {n for n in before.keys() | view.keys() if before.get(n) != view.get(n)}
        changed |= {
            n for n, c in view.items() if c.token_expires_at is not None and since < c.token_expires_at <= now
        }
        if changed:
            for listener in listeners:
                try:
                    listener(frozenset(changed))
                except Exception:
                    logger.exception("an access listener failed")

    def revoked(self, principal: Principal, token_hash: str | None = None) -> str | None:
        """Why `principal`, as it was when it authenticated (with that token, if given), may no longer act;
        None while it still may, or before the first refresh. The view may be up to one poll old."""
        view = self._view
        if view is None:
            return None
        entry = view.get(principal.name)
        if entry is None:
            return f"account {principal.name} was removed"
        if not entry.principal.active:
            return f"account {principal.name} was disabled"
        if token_hash is not None and not entry.token_works(token_hash, self._clock.now()):
            return f"the token of {principal.name} expired or was replaced"
        if entry.principal.roles != principal.roles:
            return f"the roles of {principal.name} changed; sign in again"
        return None

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Calls `listener(names)` after each refresh that changed those accounts; returns an unsubscriber."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe
