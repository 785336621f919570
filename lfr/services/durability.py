"""No silent loss of a hit: while an alert cannot be made durable, the matcher matches nothing.

When storing an alert fails (disk full, read-only files, a database that hangs or is gone), the hit is
answered `store_error` (its camera node keeps it and re-sends it) and matching is suspended for every
window: each observation is then refused with `store_unavailable` instead of being matched, health reports
NOT_SERVING and Prometheus shows lfr_matcher_suspended 1. A duty retries; the first time the store accepts
the audit records of the outage (suspended at, why, hits refused; resumed at), matching resumes. So the
outage is audited as soon as the store allows, and no alert is ever raised that cannot be kept.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Protocol

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import LfrError
from lfr.domain.ports import UnitOfWorkFactory

logger = logging.getLogger(__name__)


class DurabilityMetrics(Protocol):
    def alert_not_durable(self) -> None: ...
    def matcher_suspended(self, suspended: bool) -> None: ...


class AlertDurability:
    """Thread-safe: the matcher thread reports failures, a duty in another thread resumes."""

    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, metrics: DurabilityMetrics | None = None
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.Lock()
        self._since: datetime | None = None
        self._reason = ""
        self._hits_refused = 0
        if metrics is not None:
            metrics.matcher_suspended(False)

    @property
    def suspended(self) -> bool:
        return self._since is not None

    def failed(self, reason: str) -> None:
        """An alert could not be made durable: suspend matching (if not already) and count the hit."""
        with self._lock:
            if self._since is None:
                self._since, self._reason, self._hits_refused = self._clock.now(), reason, 0
                logger.error(
                    "an alert could not be stored (%s): matching suspended until the store writes", reason
                )
                if self._metrics is not None:
                    self._metrics.matcher_suspended(True)
            self._hits_refused += 1
        if self._metrics is not None:
            self._metrics.alert_not_durable()

    def try_resume(self) -> bool:
        """True if matching may go on: not suspended, or the store took the outage's audit records now."""
        with self._lock:
            since, reason, refused = self._since, self._reason, self._hits_refused
        if since is None:
            return True
        now = self._clock.now()
        try:
            with self._uow() as uow:
                uow.audit.append(
                    AuditEvent(
                        AuditAction.MATCHER_SUSPENDED,
                        "system",
                        "matcher",
                        "ingest",
                        since,
                        {"reason": reason[:200]},
                    )
                )
                uow.audit.append(
                    AuditEvent(
                        AuditAction.MATCHER_RESUMED,
                        "system",
                        "matcher",
                        "ingest",
                        now,
                        {
                            "suspended_at": since.isoformat(),
                            "seconds_suspended": round((now - since).total_seconds(), 3),
                            "hits_refused_store_error": refused,
                        },
                    )
                )
                uow.commit()
        except LfrError as exc:
            logger.warning("store still cannot write (%s); matching stays suspended", type(exc).__name__)
            return False
        with self._lock:
            # Hits refused after the records were written are counted again at the next suspension.
            self._since, self._reason, self._hits_refused = None, "", 0
        logger.warning("store writes again after %.1f s: matching resumed", (now - since).total_seconds())
        if self._metrics is not None:
            self._metrics.matcher_suspended(False)
        return True
