"""Purges what the retention policy no longer allows to be kept, recording counts only."""

from __future__ import annotations

from dataclasses import dataclass

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.ports import UnitOfWorkFactory
from lfr.domain.retention import RetentionPolicy
from lfr.services.watchlists import destroy_watchlist


@dataclass(frozen=True, slots=True)
class PurgeReport:
    alerts_purged: int
    watchlists_destroyed: list[str]


class RetentionService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: RetentionPolicy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = policy

    def purge(self) -> PurgeReport:
        now = self._clock.now()
        cutoff = self._policy.alert_cutoff(now)
        with self._uow() as uow:
            purged = uow.alerts.purge_raised_before(cutoff)
            if purged:
                uow.audit.append(
                    AuditEvent(
                        AuditAction.ALERT_PURGED,
                        "system",
                        "retention",
                        "alerts",
                        now,
                        {"count": purged, "raised_before": cutoff.isoformat()},
                    )
                )
            due = self._policy.watchlists_to_destroy(uow.watchlists.all(), uow.windows.find(), now)
            for watchlist in due:
                destroy_watchlist(uow, watchlist.id, "system", "retention: deployment finished", now)
            uow.commit()
        return PurgeReport(purged, [w.id for w in due])
