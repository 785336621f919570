"""What the tablet's routes need, handed in explicitly by the composition root (no globals)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from lfr.adapters.tablet.sessions import SessionCodec
from lfr.domain.alert import Alert
from lfr.domain.clock import Clock
from lfr.services.alert_feed import AlertFeed
from lfr.services.alert_views import AlertCard, AlertViewService
from lfr.services.alerts import AlertService
from lfr.services.audit import AuditService
from lfr.services.deployment_overview import DeploymentOverviewService
from lfr.services.deployments import DeploymentService
from lfr.services.equity import EvaluationService
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
    evaluations: EvaluationService  # the equity gate's verdict on a window, shown before authorising


class CardCache:
    """Alert cards of recent alert versions as JSON, shared by every live feed of this process: one alert
    change going to many tablets is described (subject, location) from the store and serialised once, not
    once per tablet. A card holds no crop and implies no consultation; the feed checks visibility per
    reader before anything is sent."""

    def __init__(self, views: AlertViewService, render: Callable[[AlertCard], str], size: int = 512) -> None:
        self._views = views
        self._render = render
        self._size = size
        self._cards: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, alert: Alert) -> str | None:
        """The card if it is at hand: no store read, so callers need no worker thread."""
        key = (alert.id, alert.version)
        with self._lock:
            found = self._cards.get(key)
            if found is not None:
                self._cards.move_to_end(key)
            return found

    def card(self, alert: Alert) -> str:
        """The card, read from the store if need be (call from a worker thread)."""
        if (found := self.cached(alert)) is not None:
            return found
        rendered = self._render(self._views.describe(alert))
        with self._lock:
            self._cards[(alert.id, alert.version)] = rendered
            while len(self._cards) > self._size:
                self._cards.popitem(last=False)
        return rendered


@dataclass(frozen=True, slots=True)
class TabletContext:
    services: TabletServices
    feed: AlertFeed  # every alert change, from this replica and (over PostgreSQL) the others
    cards: CardCache
    clock: Clock
    sessions: SessionCodec
    cookie_secure: str  # "auto", "always" or "never"
    two_person_rule: bool
