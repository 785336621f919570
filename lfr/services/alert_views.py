"""What an officer's tablet shows about alerts: the alert with its listing facts, never a non-match.

Reads here are not audited because they carry no biometric data (no crop); looking at a crop goes
through AlertService.consult, which is. An alert the reader may not see is reported exactly like one
that does not exist, so its existence does not leak to an officer from another deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from lfr.domain.alert import Alert
from lfr.domain.errors import NotFound
from lfr.domain.ports import UnitOfWork, UnitOfWorkFactory
from lfr.domain.principal import Principal
from lfr.domain.watchlist import Subject
from lfr.domain.window import DeploymentWindow
from lfr.services.deployments import can_see


@dataclass(frozen=True, slots=True)
class AlertCard:
    alert: Alert
    location: str
    subject_reference: str
    subject_name: str
    category: str
    reason: str
    has_reference_image: bool


class AlertViewService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def cards(
        self, actor: Principal, window_id: str | None = None, after_sequence: int = 0, limit: int = 100
    ) -> list[AlertCard]:
        """Alerts the actor may see, in sequence order, after `after_sequence`."""
        with self._uow() as uow:
            windows = {
                w.id: w
                for w in uow.windows.find()
                if can_see(w, actor) and (window_id is None or w.id == window_id)
            }
            if not windows:
                return []
            alerts = uow.alerts.find(sorted(windows), after_sequence=after_sequence, limit=limit)
            return [_card(uow, alert, windows[alert.window_id]) for alert in alerts]

    def describe(self, alert: Alert) -> AlertCard:
        """The card of an alert already known to be visible to its reader (the feed checked)."""
        with self._uow() as uow:
            return _card(uow, alert, uow.windows.get(alert.window_id))

    def card(self, alert_id: str, actor: Principal) -> AlertCard:
        with self._uow() as uow:
            alert, window = _visible(uow, alert_id, actor)
            return _card(uow, alert, window)

    def require_visible(self, alert_id: str, actor: Principal) -> None:
        """Raises NotFound unless the alert exists and the actor may see it."""
        with self._uow() as uow:
            _visible(uow, alert_id, actor)

    def reference_image(self, alert_id: str, actor: Principal) -> bytes:
        """The watchlist image of the subject an alert names (listing data, not a passer-by's)."""
        with self._uow() as uow:
            alert, window = _visible(uow, alert_id, actor)
            subject = _subject(uow, window, alert.subject_id)
        if subject is None or not subject.reference_image_jpeg:
            raise NotFound(f"alert {alert_id} has no reference image")
        return subject.reference_image_jpeg


def _visible(uow: UnitOfWork, alert_id: str, actor: Principal) -> tuple[Alert, DeploymentWindow]:
    try:
        alert = uow.alerts.get(alert_id)
        window = uow.windows.get(alert.window_id)
    except NotFound:
        raise NotFound(f"no alert {alert_id}") from None
    if not can_see(window, actor):
        raise NotFound(f"no alert {alert_id}")
    return alert, window


def _subject(uow: UnitOfWork, window: DeploymentWindow, subject_id: str) -> Subject | None:
    try:
        return uow.watchlists.get_subject(window.watchlist_id, subject_id)
    except NotFound:  # the watchlist was destroyed after the deployment; the alert outlives it
        return None


def _card(uow: UnitOfWork, alert: Alert, window: DeploymentWindow) -> AlertCard:
    subject = _subject(uow, window, alert.subject_id)
    return AlertCard(
        alert=alert,
        location=window.location,
        subject_reference=subject.reference if subject else "",
        subject_name=subject.display_name if subject else "",
        category=subject.category if subject else "(watchlist destroyed)",
        reason=subject.reason if subject else "",
        has_reference_image=bool(subject and subject.reference_image_jpeg),
    )


def explain_score(score: float, threshold: float) -> str:
    """The score in words, next to the number: how far above the window's threshold it is, and what a
    score is not. The bands are about the margin over the threshold, not about identity."""
    margin = score - threshold
    if margin >= 0.15:
        strength = "Strong similarity: well above this deployment's threshold"
    elif margin >= 0.05:
        strength = "Clear similarity: above this deployment's threshold"
    else:
        strength = "Borderline: only just above this deployment's threshold; compare the faces with care"
    return (
        f"{strength} ({score:.2f} against {threshold:.2f}). The score measures how alike two faces "
        "look to the software; it is not the chance that this is the listed person."
    )
