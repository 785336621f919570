"""How long anything about a deployment is kept. Non-matches are never kept at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lfr.domain.watchlist import Watchlist, WatchlistState
from lfr.domain.window import DeploymentWindow, WindowState

DEFAULT_ALERT_RETENTION = timedelta(days=31)
DEFAULT_WATCHLIST_DESTROY_DELAY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    alert_retention: timedelta = DEFAULT_ALERT_RETENTION
    watchlist_destroy_delay: timedelta = DEFAULT_WATCHLIST_DESTROY_DELAY

    def alert_cutoff(self, now: datetime) -> datetime:
        """Alerts raised before this instant are purged, crops included."""
        return now - self.alert_retention

    def window_finished_at(self, window: DeploymentWindow) -> datetime | None:
        if window.state is WindowState.CLOSED and window.closed_at is not None:
            return min(window.closed_at, window.ends_at)
        return None if window.state is WindowState.PENDING else window.ends_at

    def watchlists_to_destroy(
        self, watchlists: list[Watchlist], windows: list[DeploymentWindow], now: datetime
    ) -> list[Watchlist]:
        """Sealed watchlists whose every window finished more than the delay ago.

        A watchlist no window ever used is left alone: it may be awaiting its deployment.
        """
        due = []
        for watchlist in watchlists:
            if watchlist.state is WatchlistState.DESTROYED:
                continue
            users = [w for w in windows if w.watchlist_id == watchlist.id]
            if not users:
                continue
            finished = [self.window_finished_at(w) for w in users]
            if any(f is None or f > now for f in finished):
                continue
            last = max(f for f in finished if f is not None)
            if now - last >= self.watchlist_destroy_delay:
                due.append(watchlist)
        return due
