"""What the tablet's routes need, handed in explicitly by the composition root (no globals)."""

from __future__ import annotations

import threading
from collections import OrderedDict
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


class CardCache:
    """Cards of recent alert versions, shared by every live feed of this process: one alert change going
    to many tablets is described (subject, location) from the store once, not once per tablet. A card
    holds no crop and no consultation is implied; visibility is checked by the feed, per reader."""

    def __init__(self, views: AlertViewService, size: int = 512) -> None:
        self._views = views
        self._size = size
        self._cards: OrderedDict[tuple[str, int], AlertCard] = OrderedDict()
        self._lock = threading.Lock()

    def card(self, alert: Alert) -> AlertCard:
        key = (alert.id, alert.version)
        with self._lock:
            if (found := self._cards.get(key)) is not None:
                self._cards.move_to_end(key)
                return found
        card = self._views.describe(alert)
        with self._lock:
            self._cards[key] = card
            while len(self._cards) > self._size:
                self._cards.popitem(last=False)
        return card


@dataclass(frozen=True, slots=True)
class TabletContext:
    services: TabletServices
    feed: AlertFeed  # every alert change, from this replica and (over PostgreSQL) the others
    cards: CardCache
    clock: Clock
    sessions: SessionCodec
    cookie_secure: str  # "auto", "always" or "never"
    two_person_rule: bool
