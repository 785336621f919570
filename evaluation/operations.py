"""The operational report, from the audit log: what a force publishes after deployments (like the Met's
annual LFR figures): time armed, faces seen, alerts and how officers adjudicated them, false alerts per face.

Built from the audit chain (it outlives alert purges) and the per-window counters, the only trace passers-by
leave. Subject ids appear only for confirmed alerts and only on request; nobody else has an identity here.
Counters are not time-stamped: a window's faces count in full for any period in which it was armed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lfr.domain.audit import AuditAction, AuditRecord
from lfr.domain.errors import LfrError
from lfr.domain.observation import TRACKS_COUNTER
from lfr.domain.ports import UnitOfWork


@dataclass(slots=True)
class WindowFigures:
    window_id: str
    location: str = ""
    armed: timedelta = timedelta(0)
    faces_seen: int = 0
    people_seen: int = 0  # tracks started (issue 10): one person walking past is one, however many faces
    alerts: int = 0
    confirmed: int = 0
    false_alerts: int = 0
    not_engaged: int = 0
    pending: int = 0
    confirmed_subjects: list[str] = field(default_factory=list)

    @property
    def false_alert_rate(self) -> float | None:
        return self.false_alerts / self.faces_seen if self.faces_seen else None

    def add(self, other: WindowFigures) -> None:
        self.armed += other.armed
        self.faces_seen += other.faces_seen
        self.people_seen += other.people_seen
        self.alerts += other.alerts
        self.confirmed += other.confirmed
        self.false_alerts += other.false_alerts
        self.not_engaged += other.not_engaged
        self.pending += other.pending
        self.confirmed_subjects += other.confirmed_subjects


@dataclass(frozen=True, slots=True)
class OperationsReport:
    start: datetime | None
    end: datetime | None
    windows: list[WindowFigures]
    total: WindowFigures

    def as_dict(self, show_subjects: bool = False) -> dict[str, object]:
        def row(w: WindowFigures) -> dict[str, object]:
            out: dict[str, object] = {
                "window_id": w.window_id,
                "location": w.location,
                "armed_hours": round(w.armed.total_seconds() / 3600, 4),
                "faces_seen": w.faces_seen,
                "people_seen": w.people_seen,
                "alerts": w.alerts,
                "confirmed": w.confirmed,
                "false_alerts": w.false_alerts,
                "not_engaged": w.not_engaged,
                "pending": w.pending,
                "false_alert_rate": w.false_alert_rate,
                "false_alert_one_in": (1 / w.false_alert_rate) if w.false_alert_rate else None,
            }
            if show_subjects:
                out["confirmed_subjects"] = list(w.confirmed_subjects)
            return out

        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "windows": [row(w) for w in self.windows],
            "total": row(self.total),
        }


def operations_report(uow: UnitOfWork, start: datetime | None, end: datetime | None) -> OperationsReport:
    records = [r for r in uow.audit.records() if _within(r.at, start, end)]
    figures: dict[str, WindowFigures] = {}

    def of(window_id: str) -> WindowFigures:
        return figures.setdefault(window_id, WindowFigures(window_id))

    ends = {}
    for window_id in {r.subject_id for r in records if r.action == AuditAction.WINDOW_ARMED}:
        try:
            window = uow.windows.get(window_id)
        except LfrError:  # a window row may be gone; the audit log still counts it
            continue
        # The matcher stops matching at the window's end even if the disarm is audited a little later.
        ends[window_id] = min(t for t in (window.ends_at, window.closed_at) if t is not None)
    _armed_time(records, of, start, end, ends)
    for record in records:
        if record.action == AuditAction.WINDOW_CREATED:
            of(record.subject_id).location = str(record.details.get("location", ""))
    outcomes = _alert_outcomes(records)
    for window_id, subject_id, outcome in outcomes.values():
        w = of(window_id)
        w.alerts += 1
        if outcome == "confirmed":
            w.confirmed += 1
            w.confirmed_subjects.append(subject_id)
        elif outcome == "false_alert":
            w.false_alerts += 1
        elif outcome == "not_engaged":
            w.not_engaged += 1
        else:
            w.pending += 1
    for window_id, w in figures.items():
        totals = uow.counters.totals(window_id)
        w.faces_seen = sum(n for (_, _, outcome), n in totals.items() if outcome in ("no_match", "alert"))
        w.people_seen = sum(n for (_, _, outcome), n in totals.items() if outcome == TRACKS_COUNTER)
        if not w.location:
            try:
                w.location = uow.windows.get(window_id).location
            except LfrError:
                w.location = ""
    windows = [w for w in sorted(figures.values(), key=lambda w: w.window_id) if w.armed or w.alerts]
    total = WindowFigures("total")
    for w in windows:
        total.add(w)
    return OperationsReport(start, end, windows, total)


def _within(at: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or at >= start) and (end is None or at < end)


def _armed_time(
    records: Iterable[AuditRecord],
    of: Callable[[str], WindowFigures],
    start: datetime | None,
    end: datetime | None,
    window_ends: dict[str, datetime],
) -> None:
    armed_since: dict[str, datetime] = {}
    last_seen: datetime | None = None
    for record in records:
        last_seen = record.at
        if record.action == AuditAction.WINDOW_ARMED:
            armed_since.setdefault(record.subject_id, record.at)
        elif record.action == AuditAction.WINDOW_DISARMED:
            began = armed_since.pop(record.subject_id, start)
            until = min(record.at, window_ends.get(record.subject_id, record.at))
            if began is not None and until > began:
                of(record.subject_id).armed += until - began
    # Still armed at the end of the period: count up to its end (or the last record if open-ended).
    for window_id, began in armed_since.items():
        until = end or last_seen
        if until is not None and window_id in window_ends:
            until = min(until, window_ends[window_id])
        if until is not None and until > began:
            of(window_id).armed += until - began


def _alert_outcomes(records: Iterable[AuditRecord]) -> dict[str, tuple[str, str, str]]:
    """alert id -> (window id, subject id, final outcome or 'pending'), for alerts raised in the period."""
    raised: dict[str, tuple[str, str]] = {}
    outcome: dict[str, str] = {}
    for record in records:
        if record.action == AuditAction.ALERT_RAISED:
            details = record.details
            raised[record.subject_id] = (
                str(details.get("window_id", "")),
                str(details.get("subject_id", "")),
            )
        elif record.action == AuditAction.ALERT_ADJUDICATED:
            details = record.details
            if details.get("state") == "awaiting_verification":
                outcome[record.subject_id] = "pending"  # a confirmed match waits for its second officer
            else:
                outcome[record.subject_id] = str(details.get("outcome"))
        elif record.action == AuditAction.ALERT_VERIFIED:
            details = record.details
            if details.get("agree"):
                outcome[record.subject_id] = "confirmed"
            else:
                outcome.pop(record.subject_id, None)
    return {a: (w, s, outcome.get(a, "pending")) for a, (w, s) in raised.items()}
