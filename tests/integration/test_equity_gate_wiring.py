"""The configured equity gate reaches window authorisation in the composed matcher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lfr.bootstrap import build_container
from lfr.config import load_config, matching_index_type
from lfr.domain.clock import ManualClock
from lfr.domain.errors import PermissionDenied
from lfr.domain.evaluation import canonical_report, report_sha256
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.domain.window import WindowSpec
from lfr.services.watchlists import SubjectSpec
from tests.evaluation.gate_reports import report

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
ADMIN = Principal("admin", PrincipalKind.USER, frozenset({Role.ADMIN, Role.SUPERVISOR}))
CREATOR = Principal("sgt", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))  # separation of duties


def pending_window(gate: str, **settings: object):
    config = load_config(None, {"store.url": "memory://", "policy.equity_gate": gate, **settings})
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


def test_sufficient_evidence_satisfies_refuse():
    container, window = pending_window("refuse")
    document = report(model_id="model-x")
    container.evaluations.record(canonical_report(document), report_sha256(document), ADMIN)
    assert container.deployments.authorise(window.id, ADMIN).authorised_by == "admin"


def test_the_configured_detectable_ratio_reaches_the_gate():
    document = report(model_id="model-x", groups={"F": 50_000, "M": 2_000})
    strict, strict_window = pending_window("refuse")
    strict.evaluations.record(canonical_report(document), report_sha256(document), ADMIN)
    with pytest.raises(PermissionDenied, match="2x FPIR differential"):
        strict.deployments.authorise(strict_window.id, ADMIN)
    relaxed, relaxed_window = pending_window("refuse", **{"policy.equity_detectable_ratio": 3.0})
    relaxed.evaluations.record(canonical_report(document), report_sha256(document), ADMIN)
    assert relaxed.evaluations.verdict(relaxed_window.id, ADMIN).passed
    relaxed.deployments.authorise(relaxed_window.id, ADMIN)


def test_the_index_type_defaults_to_flat_and_is_read_from_matching_index():
    config = load_config(None, {"store.url": "memory://"})
    assert matching_index_type(config) == "flat"
    # `matching.index` with the search parameters that apply to it: an evaluation at one efSearch/nprobe
    # does not vouch for another
    hnsw = config.model_copy(update={"matching": _with_index(config, "hnsw")})
    assert matching_index_type(hnsw) == "hnsw,efSearch=128"


def _with_index(config, index):
    matching = config.matching.model_copy()
    object.__setattr__(matching, "index", index)
    return matching


def test_the_code_default_refuses_a_threshold_zero_window_without_evidence():
    config = load_config(None, {"store.url": "memory://"})
    container = build_container(config, clock=ManualClock(T0))
    wl = container.watchlists.create("op", "model-x", 4, ADMIN)
    container.watchlists.add_subject(
        wl.id, SubjectSpec("R1", "n", "c", "r", "s"), np.eye(4)[:1], "model-x", ADMIN
    )
    container.watchlists.seal(wl.id, ADMIN)
    spec = WindowSpec("p", "lb", "loc", frozenset({"cam-1"}), wl.id, 0.0, T0, T0 + timedelta(hours=1))
    window = container.deployments.create(spec, CREATOR)
    with pytest.raises(PermissionDenied):
        container.deployments.authorise(window.id, ADMIN)
    assert "window.authorised" not in audit_actions(container)
    assert "window.authorisation_refused" in audit_actions(container)
