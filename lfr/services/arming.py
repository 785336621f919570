"""Keeps the matcher's view of which windows are armed, and audits each arm and disarm exactly once.

Every replica refreshes from the store; if it cannot, or its last good read is too old, it disarms.
Arming is decided on the store's clock (see timekeeping.py): a replica whose own clock disagrees with the
store's beyond the configured limit disarms entirely, audited once when it stops and once when it resumes.
A disarm because the store could not be read is audited once the store can be written again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import StaleUpdate
from lfr.domain.ports import IngestMetrics, UnitOfWorkFactory
from lfr.domain.window import ArmingGate, DeploymentWindow, WindowState
from lfr.services.timekeeping import ClockReading, StoreClock

logger = logging.getLogger(__name__)


class ArmingMonitor:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        metrics: IngestMetrics | None = None,
        max_staleness: timedelta = timedelta(seconds=5),
        *,
        timekeeper: StoreClock | None = None,
        replica: str = "matcher",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._metrics = metrics
        self._max_staleness = max_staleness
        self._timekeeper = timekeeper
        self._replica = replica
        self._monotonic = monotonic
        self._gate = ArmingGate.disarmed()
        self._refreshed_at: datetime | None = None
        self._last_read: list[DeploymentWindow] = []  # live windows of the last good read (for metrics)
        self._lock = threading.Lock()
        # For the audit trail of this replica's own disarms (not any one window's):
        self._last_good: tuple[datetime, float] | None = None  # (store time, monotonic) of the last good read
        self._unreachable_since: datetime | None = None  # an outage not yet written down
        self._skewed_since: datetime | None = None  # disarmed because of clock skew, already written down

    def gate(self) -> ArmingGate:
        refreshed = self._refreshed_at
        if refreshed is None or self._clock.now() - refreshed > self._max_staleness:
            return ArmingGate.disarmed()
        return self._gate

    def is_current(self) -> bool:
        """Whether the last read of the windows is recent enough to arm on (health reports it)."""
        refreshed = self._refreshed_at
        return refreshed is not None and self._clock.now() - refreshed <= self._max_staleness

    def refresh(self) -> ArmingGate:
        """Re-reads live windows and records arm/disarm transitions. Never raises: failure disarms."""
        with self._lock:
            try:
                if self._timekeeper is not None:
                    reading = self._timekeeper.measure()
                    if not self._timekeeper.agrees():
                        self._record_skew(reading)
                        self._gate, self._refreshed_at = ArmingGate.disarmed(), None
                        self._last_good = None  # the skew records cover this time; it is no outage
                        self._report(armed=False, read_at=None)
                        return self._gate
                    self._record_agreement(reading)
                self._record_outage_if_over()
                windows = self._load_and_record_transitions()
            except Exception:
                logger.exception("cannot read deployment windows; matcher disarmed until the store recovers")
                if self._unreachable_since is None:
                    self._unreachable_since = self._last_good[0] if self._last_good else self._clock.now()
                self._gate, self._refreshed_at = ArmingGate.disarmed(), None
                if self._metrics is not None:
                    self._metrics.windows_read_failed()
                self._report(armed=False, read_at=None)
                return self._gate
            now = self._clock.now()
            self._gate, self._refreshed_at = ArmingGate(windows), now
            self._last_good = (now, self._monotonic())
            self._last_read = windows
            self._report(armed=True, read_at=now)
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

    def _record_skew(self, reading: ClockReading) -> None:
        """Audits the start of a disarm for clock skew, once per episode."""
        assert self._timekeeper is not None
        logger.error(
            "this replica's clock is %.3f s off the store's (limit %.3f s); disarmed until they agree",
            -reading.offset.total_seconds(),
            self._timekeeper.max_skew.total_seconds(),
        )
        if self._skewed_since is not None:
            return
        now = self._clock.now()
        self._append_replica_event(
            AuditAction.MATCHER_DISARMED,
            now,
            {
                "reason": "clock_skew",
                "replica_clock_ahead_ms": round(-reading.offset.total_seconds() * 1000),
                "uncertainty_ms": round(reading.uncertainty.total_seconds() * 1000),
                "limit_ms": round(self._timekeeper.max_skew.total_seconds() * 1000),
            },
        )
        self._skewed_since = now

    def _record_agreement(self, reading: ClockReading) -> None:
        if self._skewed_since is None:
            return
        self._append_replica_event(
            AuditAction.MATCHER_REARMED,
            self._clock.now(),
            {
                "reason": "clock_skew",
                "disarmed_since": self._skewed_since.isoformat(),
                "replica_clock_ahead_ms": round(-reading.offset.total_seconds() * 1000),
            },
        )
        self._skewed_since = None

    def _record_outage_if_over(self) -> None:
        """Writes down a disarm the store could not be told about while it happened: reads failed, or no
        read succeeded for longer than the gate stays valid."""
        since = self._unreachable_since
        if since is None and self._last_good is not None:
            last_time, last_tick = self._last_good
            if self._monotonic() - last_tick > self._max_staleness.total_seconds():
                since = last_time
        if since is None:
            return
        self._append_replica_event(
            AuditAction.MATCHER_DISARMED,
            self._clock.now(),
            {
                "reason": "store_unreachable",
                "last_good_read": since.isoformat(),
                "max_staleness_seconds": self._max_staleness.total_seconds(),
            },
        )
        self._unreachable_since = None

    def _append_replica_event(
        self, action: AuditAction, at: datetime, details: dict[str, str | int | float]
    ) -> None:
        with self._uow() as uow:
            uow.audit.append(AuditEvent(action, "system", "replica", self._replica, at, details))
            uow.commit()

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
