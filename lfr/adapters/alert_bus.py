"""In-process fan-out of durable alerts to live subscribers (gRPC streams, tablet feeds).

Publishing never blocks the matcher: each subscriber has a bounded queue, and a subscriber that falls
behind is marked as lagging and must catch up from the store by sequence, which it does anyway on
(re)connect. Scale-out replicas use the same catch-up path against the shared database.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from lfr.domain.alert import Alert


@dataclass(eq=False)
class Subscription:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Alert] = field(default_factory=lambda: asyncio.Queue(maxsize=1024))
    lagging: bool = False

    def _offer(self, alert: Alert) -> None:
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.lagging = True


class AlertBroadcaster:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()

    def publish(self, alert: Alert) -> None:
        """Thread-safe; called from the matcher's worker thread once the alert is committed."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            try:
                subscription.loop.call_soon_threadsafe(subscription._offer, alert)
            except RuntimeError:  # its event loop has closed; it will be unsubscribed by its owner
                continue

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscription = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscriptions.discard(subscription)
