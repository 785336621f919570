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
        """Watchlists whose last use ended more than the delay ago.

        Last use: the end of the last authorised window using it, or, for a watchlist no window was ever
        authorised for (a draft, a sealed list never deployed, one whose windows were refused), its
        creation, sealing or the creation of a window naming it. So nothing is kept indefinitely on the
        chance of a deployment: a list not deployed within the delay is destroyed and built again.
        """
        due = []
        for watchlist in watchlists:
            if watchlist.state is WatchlistState.DESTROYED:
                continue
            users = [w for w in windows if w.watchlist_id == watchlist.id]
            moments = [watchlist.created_at, *(w.created_at for w in users)]
            if watchlist.sealed_at is not None:
                moments.append(watchlist.sealed_at)
            for window in users:
                if window.authorised_at is None:
                    continue  # never deployed: only its creation counts, above
                finished = self.window_finished_at(window)
                if finished is None or finished > now:
                    break  # in use
                moments.append(finished)
            else:
                if now - max(moments) >= self.watchlist_destroy_delay:
                    due.append(watchlist)
        return due
