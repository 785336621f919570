"""What the tablet's routes need, handed in explicitly by the composition root (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from lfr.adapters.alert_bus import AlertBroadcaster
from lfr.adapters.tablet.sessions import SessionCodec
from lfr.domain.clock import Clock
from lfr.services.alert_views import AlertViewService
from lfr.services.alerts import AlertService
from lfr.services.audit import AuditService
from lfr.services.deployment_overview import DeploymentOverviewService
from lfr.services.deployments import DeploymentService
from lfr.services.passwords import PasswordService
from lfr.services.principals import PrincipalService
from lfr.services.sign_in_throttle import SignInThrottle


@dataclass(frozen=True, slots=True)
class TabletServices:
    alerts: AlertService
    views: AlertViewService
    deployments: DeploymentService
    overview: DeploymentOverviewService
    principals: PrincipalService
    passwords: PasswordService
    audit: AuditService
    sign_in_throttle: SignInThrottle


class FeedControl:
    """Lets the server end open live feeds, e.g. before a graceful shutdown, so tablets reconnect
    (to this replica once it is back, or to another) instead of being cut off mid-stream."""

    def __init__(self) -> None:
        self.generation = 0

    def close_all(self) -> None:
        """Ends every feed open now; feeds opened afterwards are unaffected."""
        self.generation += 1


@dataclass(frozen=True, slots=True)
class TabletContext:
    services: TabletServices
    new_alerts: AlertBroadcaster  # fed by the matcher once an alert is durable
    changed_alerts: AlertBroadcaster  # fed by this app after an adjudication, so other tablets update
    clock: Clock
    sessions: SessionCodec
    cookie_secure: str  # "auto", "always" or "never"
    poll_seconds: float
    two_person_rule: bool
    feeds: FeedControl
