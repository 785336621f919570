"""The matcher's standing duties, run on a timer or when told that something changed: keep the arming
gate and the watchlist indexes in step with the stored windows, flush counters, purge what is due."""

from __future__ import annotations

import logging
from collections.abc import Callable

from lfr.domain.clock import Clock
from lfr.domain.errors import LfrError
from lfr.domain.window import WindowState
from lfr.services.arming import ArmingMonitor
from lfr.services.indexes import IndexCache
from lfr.services.ingest import IngestService
from lfr.services.retention import RetentionService

logger = logging.getLogger(__name__)


class MatcherUpkeep:
    def __init__(
        self,
        monitor: ArmingMonitor,
        indexes: IndexCache,
        clock: Clock,
        retention: RetentionService,
        ingest: IngestService,
        after_build: Callable[[], None] | None = None,
        after_deletion: Callable[[], object] = lambda: None,
    ) -> None:
        self._monitor = monitor
        self._indexes = indexes
        self._clock = clock
        self._retention = retention
        self._ingest = ingest
        self._after_build = after_build  # e.g. hand the build's freed memory back to the OS
        self._after_deletion = after_deletion  # the store's scrub: no copy of what was deleted lingers

    def refresh_gate(self) -> frozenset[str]:
        """Re-reads the windows, drops indexes no live window needs, and builds the armed windows' indexes
        now rather than on their first observation. Returns the ids of the armed windows."""
        gate = self._monitor.refresh()
        live = gate.windows()
        self._indexes.retain_only(live)
        now = self._clock.now()
        # A closed or expired window's track evidence goes now, not when the next face arrives.
        self._ingest.track_evidence.retain_windows(w.id for w in live if w.is_armed(now))
        built = False
        for window in live:
            # Every live window, armed or not yet: its index is then ready when it arms, not built then.
            if window.is_armed(now) or (window.state is WindowState.AUTHORISED and now < window.starts_at):
                try:
                    built |= not self._indexes.is_ready(window) and self._indexes.prepare(window) is not None
                except LfrError as exc:
                    logger.error("window %s cannot be matched: %s", window.id, type(exc).__name__)
        if built and self._after_build is not None:
            self._after_build()
        return frozenset(w.id for w in live if w.is_armed(now))

    def forget_watchlist(self, watchlist_id: str) -> None:
        """A destroyed watchlist must stop matching at once, not at the next refresh."""
        keep = [w for w in self._monitor.gate().windows() if w.watchlist_id != watchlist_id]
        self._indexes.retain_only(keep)
        self._after_deletion()  # its images and embeddings must not linger in the WAL either

    def flush_counters(self) -> None:
        self._ingest.flush_counters()

    def purge(self) -> None:
        report = self._retention.purge()
        for watchlist_id in report.watchlists_destroyed:
            self.forget_watchlist(watchlist_id)
        if report.alerts_purged:
            self._after_deletion()  # no copy of a purged crop may linger in the WAL
