"""Reading and deciding alerts. Every look at an alert by a person is itself audited."""

from __future__ import annotations

from lfr.domain.alert import Adjudication, Alert
from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import StaleUpdate
from lfr.domain.limits import MAX_TEXT, require_length
from lfr.domain.ports import AlertPublisher, IngestMetrics, UnitOfWork, UnitOfWorkFactory
from lfr.domain.principal import Principal, Role
from lfr.services.deployments import can_see, require_visible


class AlertService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        two_person_rule: bool = False,
        metrics: IngestMetrics | None = None,
        publisher: AlertPublisher | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._two_person_rule = two_person_rule
        self._metrics = metrics
        self._publisher = publisher

    def consult(self, alert_id: str, actor: Principal, channel: str = "api") -> Alert:
        """Returns the alert (crop included) and audits that `actor` looked at it."""
        with self._uow() as uow:
            alert = self._visible_alert(uow, alert_id, actor)
            uow.audit.append(
                AuditEvent(
                    AuditAction.ALERT_CONSULTED,
                    actor.name,
                    "alert",
                    alert_id,
                    self._clock.now(),
                    {"window_id": alert.window_id, "channel": channel},
                )
            )
            uow.commit()
        return alert

    def list_alerts(
        self, actor: Principal, window_id: str | None = None, after_sequence: int = 0, limit: int = 100
    ) -> list[Alert]:
        with self._uow() as uow:
            windows = [w for w in uow.windows.find() if can_see(w, actor)]
            allowed = [w.id for w in windows if window_id is None or w.id == window_id]
            if not allowed:
                return []
            return uow.alerts.find(allowed, after_sequence=after_sequence, limit=limit)

    def adjudicate(
        self,
        alert_id: str,
        outcome: Adjudication,
        actor: Principal,
        notes: str = "",
        expected_version: int | None = None,
    ) -> Alert:
        actor.require(Role.OFFICER, Role.SUPERVISOR)
        require_length("notes", notes, MAX_TEXT)
        now = self._clock.now()
        with self._uow() as uow:
            alert = self._visible_alert(uow, alert_id, actor)
            _check_version(alert, expected_version)
            decided = alert.adjudicate(outcome, actor.name, now, notes.strip(), self._two_person_rule)
            decided = uow.alerts.update(decided)
            uow.audit.append(
                AuditEvent(
                    AuditAction.ALERT_ADJUDICATED,
                    actor.name,
                    "alert",
                    alert_id,
                    now,
                    {
                        "outcome": str(outcome),
                        "state": str(decided.state),
                        "window_id": alert.window_id,
                        "notes": decided.notes,
                    },
                )
            )
            uow.commit()
        if self._metrics is not None:
            self._metrics.alert_adjudicated(str(outcome))
        self._published(decided)
        return decided

    def amend(
        self,
        alert_id: str,
        outcome: Adjudication,
        actor: Principal,
        reason: str,
        expected_version: int | None = None,
    ) -> Alert:
        """A supervisor corrects a decided alert's outcome; the reason and the previous outcome are
        audited, and the original decision stays on the record beside the amendment."""
        actor.require(Role.SUPERVISOR)
        now = self._clock.now()
        with self._uow() as uow:
            alert = self._visible_alert(uow, alert_id, actor)
            _check_version(alert, expected_version)
            amended = uow.alerts.update(alert.amend(outcome, actor.name, now, reason))
            uow.audit.append(
                AuditEvent(
                    AuditAction.ALERT_AMENDED,
                    actor.name,
                    "alert",
                    alert_id,
                    now,
                    {
                        "previous_outcome": str(alert.outcome),
                        "previous_state": str(alert.state),
                        "decided_by": alert.adjudicated_by or "",
                        "outcome": str(outcome),
                        "reason": amended.amendment_reason,
                        "window_id": alert.window_id,
                    },
                )
            )
            uow.commit()
        self._published(amended)
        return amended

    def _published(self, alert: Alert) -> Alert:
        """Only once the change is durable may anyone be told (every channel, every replica)."""
        if self._publisher is not None:
            self._publisher.publish(alert)
        return alert

    def verify(
        self, alert_id: str, agree: bool, actor: Principal, expected_version: int | None = None
    ) -> Alert:
        actor.require(Role.OFFICER, Role.SUPERVISOR)
        now = self._clock.now()
        with self._uow() as uow:
            alert = self._visible_alert(uow, alert_id, actor)
            _check_version(alert, expected_version)
            verified = uow.alerts.update(alert.verify(actor.name, now, agree))
            uow.audit.append(
                AuditEvent(
                    AuditAction.ALERT_VERIFIED,
                    actor.name,
                    "alert",
                    alert_id,
                    now,
                    {"agree": agree, "state": str(verified.state), "window_id": alert.window_id},
                )
            )
            uow.commit()
        return self._published(verified)

    @staticmethod
    def _visible_alert(uow: UnitOfWork, alert_id: str, actor: Principal) -> Alert:
        alert = uow.alerts.get(alert_id)
        require_visible(uow.windows.get(alert.window_id), actor)
        return alert


def _check_version(alert: Alert, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != alert.version:
        raise StaleUpdate(
            f"alert {alert.id} changed since you loaded it (version {expected_version}, "
            f"now {alert.version}); reload before deciding"
        )
