"""What the matcher answered recently, so an observation re-sent after a broken stream is not matched twice.

A camera node re-sends the batches that were in flight when its stream broke (losing an alert is worse
than sending twice). Matching such an observation again would raise a second alert for one face, so the
ingest servicer remembers each answer under (camera, node session, seq) for a while and answers a re-send
from here. The node session is a random id the node picks at start: sequence numbers restart with a new
process, so without it a restarted node's seq 1 would be mistaken for the old one's.

This memory is the fast path, and it is per process. A re-send that reaches another replica, or this
one after a restart, is matched again, but the store keeps one alert per (camera, node session, seq)
(`Alert.source_ref`), so IngestService answers it with the stored alert and tells nobody twice.

Only results are kept (outcome, alert id, reject code, reason); never an embedding or a crop. Entries are
futures: a re-send that arrives while the original is still being matched waits for the same answer.
The memory is bounded in size and age, so a node that never reconnects costs nothing for long.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from lfr.domain.observation import ObservationResult

ResendKey = tuple[str, str, int]  # (camera id, node session, seq)


@dataclass(frozen=True, slots=True)
class _Entry:
    remembered_at: float
    result: asyncio.Future[ObservationResult]


class RecentResults:
    """Use from the event loop only (the servicer's); not thread-safe."""

    def __init__(
        self, max_entries: int, max_age_seconds: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._entries: OrderedDict[ResendKey, _Entry] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: ResendKey) -> asyncio.Future[ObservationResult] | None:
        self._expire()
        entry = self._entries.get(key)
        return entry.result if entry is not None else None

    def remember(self, key: ResendKey, result: asyncio.Future[ObservationResult]) -> None:
        self._entries.pop(key, None)  # re-inserted at the young end
        self._entries[key] = _Entry(self._monotonic(), result)
        self._expire()

    def forget(self, key: ResendKey) -> None:
        self._entries.pop(key, None)

    def _expire(self) -> None:
        oldest_kept = self._monotonic() - self._max_age
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if len(self._entries) <= self._max_entries and entry.remembered_at > oldest_kept:
                break
            del self._entries[key]
