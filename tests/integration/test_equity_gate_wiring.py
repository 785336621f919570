"""The configured equity gate reaches window authorisation in the composed matcher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lfr.bootstrap import build_container
from lfr.config import load_config
from lfr.domain.clock import ManualClock
from lfr.domain.errors import PermissionDenied
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.domain.window import WindowSpec
from lfr.services.equity import EvaluationService
from lfr.services.watchlists import SubjectSpec

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
ADMIN = Principal("admin", PrincipalKind.USER, frozenset({Role.ADMIN, Role.SUPERVISOR}))
CREATOR = Principal("sgt", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))  # separation of duties


def pending_window(gate: str):
    config = load_config(None, {"store.url": "memory://", "policy.equity_gate": gate})
    container = build_container(config, clock=ManualClock(T0))
    wl = container.watchlists.create("op", "model-x", 4, ADMIN)
    container.watchlists.add_subject(
        wl.id, SubjectSpec("R1", "n", "c", "r", "s"), np.eye(4)[:1], "model-x", ADMIN
    )
    container.watchlists.seal(wl.id, ADMIN)
    spec = WindowSpec("p", "lb", "loc", frozenset({"cam-1"}), wl.id, 0.6, T0, T0 + timedelta(hours=1))
    return container, container.deployments.create(spec, CREATOR)


def audit_actions(container) -> list[str]:
    with container.store() as uow:
        return [r.action for r in uow.audit.records()]


def test_refuse_blocks_authorisation_without_a_passing_evaluation():
    container, window = pending_window("refuse")
    with pytest.raises(PermissionDenied, match="equity gate"):
        container.deployments.authorise(window.id, ADMIN)
    assert "window.authorised" not in audit_actions(container)


def test_warn_authorises_and_records_the_warning():
    container, window = pending_window("warn")
    container.deployments.authorise(window.id, ADMIN)
    actions = audit_actions(container)
    assert actions.index("policy.warning") == actions.index("window.authorised") - 1


def test_off_records_no_warning():
    container, window = pending_window("off")
    container.deployments.authorise(window.id, ADMIN)
    assert "policy.warning" not in audit_actions(container)


def test_a_passing_evaluation_at_or_below_the_threshold_satisfies_refuse():
    container, window = pending_window("refuse")
    EvaluationService(container.store, container.clock).record(
        model_id="model-x",
        dataset_fingerprint="sha256:d",
        recommended_threshold=0.56,
        passed=True,
        report_sha256="0" * 64,
        recorded_by="admin",
    )
    assert container.deployments.authorise(window.id, ADMIN).authorised_by == "admin"
