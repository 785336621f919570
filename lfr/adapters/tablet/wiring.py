"""Builds the services the tablet uses from a store; called by the composition root and by tests."""

from __future__ import annotations

from lfr.adapters.passwords import Argon2Hasher
from lfr.adapters.tablet.context import TabletServices
from lfr.domain.clock import Clock
from lfr.domain.ports import IngestMetrics, UnitOfWorkFactory
from lfr.services.alert_views import AlertViewService
from lfr.services.alerts import AlertService
from lfr.services.audit import AuditService
from lfr.services.deployment_overview import DeploymentOverviewService, OpenStreams
from lfr.services.deployments import DeploymentService
from lfr.services.passwords import PasswordHasher, PasswordService
from lfr.services.principals import PrincipalService
from lfr.services.sign_in_throttle import SignInThrottle, ThrottlePolicy


def tablet_services(
    uow: UnitOfWorkFactory,
    clock: Clock,
    two_person_rule: bool = False,
    hasher: PasswordHasher | None = None,
    open_streams: OpenStreams | None = None,
    metrics: IngestMetrics | None = None,
    throttle: ThrottlePolicy | None = None,
) -> TabletServices:
    return TabletServices(
        alerts=AlertService(uow, clock, two_person_rule=two_person_rule, metrics=metrics),
        views=AlertViewService(uow),
        deployments=DeploymentService(uow, clock),
        overview=DeploymentOverviewService(uow, clock, open_streams),
        principals=PrincipalService(uow, clock),
        passwords=PasswordService(uow, clock, hasher or Argon2Hasher()),
        audit=AuditService(uow),
        sign_in_throttle=SignInThrottle(uow, clock, throttle or ThrottlePolicy()),
    )
