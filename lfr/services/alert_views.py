"""What an officer's tablet shows about alerts: the alert with its listing facts, never a non-match.

Reads here are not audited because they carry no probe (no crop from a camera); looking at a crop goes
through AlertService.consult, which is. The subject's reference images are listing data, as the rest of
the card, and are not audited either. An alert the reader may not see is reported exactly like one that
does not exist, so its existence does not leak to an officer from another deployment.

Each card names its group (alert_groups): repeat sightings of the subject in the window within
`group_interval` share one card on the tablet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from lfr.domain.alert import Alert
from lfr.domain.errors import NotFound
from lfr.domain.ports import UnitOfWork, UnitOfWorkFactory
from lfr.domain.principal import Principal
from lfr.domain.watchlist import Subject
from lfr.domain.window import DeploymentWindow
from lfr.services.alert_groups import group_alerts, group_of
from lfr.services.deployments import can_see

# Alerts of one subject in one window read to find a card's group: the latest ones, which decide it.
GROUP_READ_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ReferenceImage:
    provenance: str
    jpeg: bytes


@dataclass(frozen=True, slots=True)
class AlertCard:
    alert: Alert
    location: str
    subject_reference: str
    subject_name: str
    category: str
    reason: str
    reference_provenances: tuple[str, ...]  # one per reference image, in the order they are fetched
    group_id: str  # the first alert of its group of repeat sightings (its own id when alone)

    @property
    def has_reference_image(self) -> bool:
        return bool(self.reference_provenances)


class AlertViewService:
    def __init__(self, uow: UnitOfWorkFactory, group_interval: timedelta = timedelta(0)) -> None:
        self._uow = uow
        self._group_interval = group_interval

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
            groups = self._groups_of(uow, alerts)
            subjects: dict[tuple[str, str], _Listing] = {}
            cards = []
            for alert in alerts:
                window = windows[alert.window_id]
                key = (window.id, alert.subject_id)
                if key not in subjects:
                    subjects[key] = _listing(uow, window, alert.subject_id)
                cards.append(_card(alert, window, subjects[key], groups[alert.id]))
            return cards

    def describe(self, alert: Alert) -> AlertCard:
        """The card of an alert already known to be visible to its reader (the feed checked)."""
        with self._uow() as uow:
            return self._card(uow, alert, uow.windows.get(alert.window_id))

    def card(self, alert_id: str, actor: Principal) -> AlertCard:
        with self._uow() as uow:
            alert, window = _visible(uow, alert_id, actor)
            return self._card(uow, alert, window)

    def require_visible(self, alert_id: str, actor: Principal) -> None:
        """Raises NotFound unless the alert exists and the actor may see it."""
        with self._uow() as uow:
            _visible(uow, alert_id, actor)

    def reference_image(self, alert_id: str, actor: Principal, index: int = 0) -> bytes:
        """Reference image `index` (0: the subject's own reference image, then each template's source
        image) of the subject an alert names: listing data, not a passer-by's."""
        with self._uow() as uow:
            alert, window = _visible(uow, alert_id, actor)
            images = _reference_images(uow, window, _subject(uow, window, alert.subject_id))
        if not 0 <= index < len(images):
            raise NotFound(f"alert {alert_id} has no reference image {index}")
        return images[index].jpeg

    def _card(self, uow: UnitOfWork, alert: Alert, window: DeploymentWindow) -> AlertCard:
        return _card(alert, window, _listing(uow, window, alert.subject_id), self._group_id(uow, alert))

    def _group_id(self, uow: UnitOfWork, alert: Alert) -> str:
        if self._group_interval <= timedelta(0):
            return alert.id
        earlier = uow.alerts.find_for_subject(
            alert.window_id, alert.subject_id, alert.sequence, GROUP_READ_LIMIT
        )
        return group_of(alert, earlier, self._group_interval).id

    def _groups_of(self, uow: UnitOfWork, alerts: list[Alert]) -> dict[str, str]:
        """Each alert's group id, reading every window and subject's earlier alerts once."""
        if self._group_interval <= timedelta(0):
            return {a.id: a.id for a in alerts}
        last: dict[tuple[str, str], int] = {}
        for alert in alerts:
            key = (alert.window_id, alert.subject_id)
            last[key] = max(last.get(key, 0), alert.sequence)
        found: dict[str, str] = {}
        for (window_id, subject_id), up_to in last.items():
            same = uow.alerts.find_for_subject(window_id, subject_id, up_to, GROUP_READ_LIMIT)
            for group in group_alerts(same, self._group_interval):
                found.update((a.id, group.id) for a in group.alerts)
        return {a.id: found.get(a.id, a.id) for a in alerts}


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


def _reference_images(
    uow: UnitOfWork, window: DeploymentWindow, subject: Subject | None
) -> list[ReferenceImage]:
    """The subject's reference image, then each template's source image that differs from it (enrolment
    usually takes the reference from the first template: it is shown once)."""
    if subject is None:
        return []
    primary = subject.reference_image_jpeg
    images = [ReferenceImage(subject.image_source, primary)] if primary else []
    for template in uow.watchlists.subject_templates(window.watchlist_id, subject.id):
        if template.jpeg and template.jpeg != primary:
            images.append(ReferenceImage(template.provenance, template.jpeg))
    return images


@dataclass(frozen=True, slots=True)
class _Listing:
    subject: Subject | None
    reference_provenances: tuple[str, ...]


def _listing(uow: UnitOfWork, window: DeploymentWindow, subject_id: str) -> _Listing:
    subject = _subject(uow, window, subject_id)
    images = _reference_images(uow, window, subject)
    return _Listing(subject, tuple(i.provenance for i in images))


def _card(alert: Alert, window: DeploymentWindow, listing: _Listing, group_id: str) -> AlertCard:
    subject = listing.subject
    return AlertCard(
        alert=alert,
        location=window.location,
        subject_reference=subject.reference if subject else "",
        subject_name=subject.display_name if subject else "",
        category=subject.category if subject else "(watchlist destroyed)",
        reason=subject.reason if subject else "",
        reference_provenances=listing.reference_provenances,
        group_id=group_id,
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
