"""Keeps the matcher's view of which windows are armed, and audits each arm and disarm exactly once.

Every replica refreshes from the store; if it cannot, or its last good read is too old, it disarms.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import datetime, timedelta

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import StaleUpdate
from lfr.domain.ports import IngestMetrics, UnitOfWorkFactory
from lfr.domain.window import ArmingGate, DeploymentWindow, WindowState

logger = logging.getLogger(__name__)


class ArmingMonitor:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        metrics: IngestMetrics | None = None,
        max_staleness: timedelta = timedelta(seconds=5),
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._metrics = metrics
        self._max_staleness = max_staleness
        self._gate = ArmingGate.disarmed()
        self._refreshed_at: datetime | None = None
        self._last_read: list[DeploymentWindow] = []  # live windows of the last good read (for metrics)
        self._lock = threading.Lock()

    def gate(self) -> ArmingGate:
        refreshed = self._refreshed_at
        if refreshed is None or self._clock.now() - refreshed > self._max_staleness:
            return ArmingGate.disarmed()
        return self._gate

    def refresh(self) -> ArmingGate:
        """Re-reads live windows and records arm/disarm transitions. Never raises: failure disarms."""
        with self._lock:
            try:
                windows = self._load_and_record_transitions()
            except Exception:
                logger.exception("cannot read deployment windows; matcher disarmed until the store recovers")
                self._gate, self._refreshed_at = ArmingGate.disarmed(), None
                self._report(armed=False, read_at=None)
                return self._gate
            self._gate, self._refreshed_at = ArmingGate(windows), self._clock.now()
            self._last_read = windows
            self._report(armed=True, read_at=self._refreshed_at)
            return self._gate

    def _report(self, armed: bool, read_at: datetime | None) -> None:
        """Tells the metrics the live windows' armed state (all 0 when `armed` is False: this refresh
        disarmed the matcher) and how many the last good read's schedules say are open now."""
        if self._metrics is None:
            return
        now = self._clock.now()
        by_schedule = {w.id: w.is_armed(now) for w in self._last_read}
        state = by_schedule if armed else dict.fromkeys(by_schedule, False)
        self._metrics.windows(state, sum(by_schedule.values()), read_at)

    def _load_and_record_transitions(self) -> list[DeploymentWindow]:
        now = self._clock.now()
        with self._uow() as uow:
            windows = uow.windows.find([WindowState.AUTHORISED, WindowState.CLOSED])
        live = []
        for window in windows:
            armed = window.is_armed(now)
            if armed != window.armed_recorded:
                window = self._record_transition(window, armed, now) or window
            if window.state is WindowState.AUTHORISED and not window.has_expired(now):
                live.append(window)
        return live

    def _record_transition(
        self, window: DeploymentWindow, armed: bool, now: datetime
    ) -> DeploymentWindow | None:
        changed = dataclasses.replace(window, armed_recorded=armed, version=window.version + 1)
        action = AuditAction.WINDOW_ARMED if armed else AuditAction.WINDOW_DISARMED
        try:
            with self._uow() as uow:
                uow.windows.update(changed)
                details: dict[str, str | int] = {"state": str(window.state)}
                outcomes = faces_by_outcome(uow.counters.totals(window.id))
                if not armed:
                    details |= {f"faces_{outcome}": n for outcome, n in sorted(outcomes.items())}
                uow.audit.append(AuditEvent(action, "system", "window", window.id, now, details))
                if not armed:
                    uow.audit.append(
                        AuditEvent(
                            AuditAction.OBSERVATIONS_ERASED,
                            "system",
                            "window",
                            window.id,
                            now,
                            {
                                "non_matches_erased": outcomes.get("no_match", 0),
                                "rejected_discarded": outcomes.get("rejected", 0),
                            },
                        )
                    )
                uow.commit()
        except StaleUpdate:
            return None  # another replica recorded this transition first
        return changed


def faces_by_outcome(totals: dict[tuple[str, str, str], int]) -> dict[str, int]:
    summed: dict[str, int] = {}
    for (_, _, outcome), n in totals.items():
        summed[outcome] = summed.get(outcome, 0) + n
    return summed
