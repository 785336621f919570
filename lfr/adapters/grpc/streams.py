"""Which cameras hold an ingest stream open now, and when each was last heard from.

Kept in memory by the matcher process (a replica knows only its own streams) and keyed by camera id, an
account name: nothing about any face. Supervisors see it on the tablet; Prometheus as
lfr_camera_streams_open{camera}. Imports no grpc, so the composition root can build it for any process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from lfr.domain.clock import Clock
from lfr.services.deployment_overview import StreamState

OnStreamCount = Callable[[str, int], None]  # camera id, streams open now


class CameraStreams:
    """Updated from the event loop, read from the tablet's worker threads, hence the lock."""

    def __init__(self, clock: Clock, on_count: OnStreamCount | None = None) -> None:
        self._clock = clock
        self._on_count = on_count
        self._open: dict[str, int] = {}
        self._last_seen: dict[str, StreamState] = {}
        self._lock = threading.Lock()

    def opened(self, camera_id: str) -> None:
        self._change(camera_id, +1)

    def try_open(self, camera_id: str, limit: int) -> bool:
        """Counts a new stream unless the camera already holds `limit` open; False (nothing counted) then."""
        with self._lock:
            if self._open.get(camera_id, 0) >= limit:
                return False
            self._open[camera_id] = self._open.get(camera_id, 0) + 1
        self._change(camera_id, 0)
        return True

    def open_count(self, camera_id: str) -> int:
        with self._lock:
            return self._open.get(camera_id, 0)

    def closed(self, camera_id: str) -> None:
        self._change(camera_id, -1)

    def seen(self, camera_id: str) -> None:
        now = self._clock.now()
        with self._lock:
            self._last_seen[camera_id] = StreamState(self._open.get(camera_id, 0) > 0, now)

    def snapshot(self) -> dict[str, StreamState]:
        with self._lock:
            return dict(self._last_seen)

    def _change(self, camera_id: str, delta: int) -> None:
        now = self._clock.now()
        with self._lock:
            count = max(0, self._open.get(camera_id, 0) + delta)
            self._open[camera_id] = count
            self._last_seen[camera_id] = StreamState(count > 0, now)
        if self._on_count is not None:
            self._on_count(camera_id, count)
