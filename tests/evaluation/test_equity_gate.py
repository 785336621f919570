"""The equity gate at authorisation, over the memory store: off, warn (audited) and refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from lfr.adapters.storage.memory import MemoryStore
from lfr.cli.main import app
from lfr.domain.audit import AuditAction, verify_chain
from lfr.domain.clock import ManualClock
from lfr.domain.errors import InvalidInput, PermissionDenied
from lfr.domain.evaluation import EquityGate
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.domain.window import WindowSpec, WindowState
from lfr.services.deployments import DeploymentService
from lfr.services.equity import EvaluationService, equity_policy
from lfr.services.watchlists import SubjectSpec, WatchlistService

MODEL = "model-a"
START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SUPERVISOR = Principal("sup", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))


def setup(gate: EquityGate, threshold: float = 0.5):
    store, clock = MemoryStore(), ManualClock(START)
    watchlists = WatchlistService(store, clock)
    wl = watchlists.create("test", MODEL, 8, SUPERVISOR)
    vector = np.ones((1, 8), dtype=np.float32) / np.sqrt(8)
    watchlists.add_subject(
        wl.id, SubjectSpec("ref", "P", "wanted", "warrant", "custody"), vector, MODEL, SUPERVISOR
    )
    wl = watchlists.seal(wl.id, SUPERVISOR)
    deployments = DeploymentService(store, clock, policy=equity_policy(gate))
    window = deployments.create(
        WindowSpec(
            "find", "PACE", "High St", frozenset({"cam"}), wl.id, threshold, START, START + timedelta(hours=1)
        ),
        SUPERVISOR,
    )
    return store, clock, deployments, window


def audit_actions(store):
    with store() as uow:
        return [(r.action, r.details) for r in uow.audit.records()]


def record(store, clock, threshold, passed=True, model=MODEL):
    return EvaluationService(store, clock).record(
        model, "sha256:data", threshold, passed, "ab" * 32, "auditor"
    )


def test_warn_authorises_but_audits_a_policy_warning_without_an_evaluation():
    store, _, deployments, window = setup(EquityGate.WARN)
    authorised = deployments.authorise(window.id, SUPERVISOR)
    assert authorised.state is WindowState.AUTHORISED
    actions = audit_actions(store)
    warnings = [d for a, d in actions if a == AuditAction.POLICY_WARNING]
    assert len(warnings) == 1
    assert "no recorded demographic evaluation" in warnings[0]["warning"]
    authorised_record = next(d for a, d in actions if a == AuditAction.WINDOW_AUTHORISED)
    assert authorised_record["policy_warnings"] == [warnings[0]["warning"]]
    with store() as uow:
        assert verify_chain(uow.audit.records(), uow.audit.head()).ok


def test_refuse_blocks_authorisation_below_the_evaluated_threshold():
    store, clock, deployments, window = setup(EquityGate.REFUSE, threshold=0.4)
    record(store, clock, threshold=0.45)
    with pytest.raises(PermissionDenied, match=r"threshold 0.4 is below 0.45"):
        deployments.authorise(window.id, SUPERVISOR)
    with store() as uow:
        assert uow.windows.get(window.id).state is WindowState.PENDING
    assert AuditAction.WINDOW_AUTHORISED not in [a for a, _ in audit_actions(store)]


def test_refuse_allows_a_window_covered_by_a_passing_evaluation():
    store, clock, deployments, window = setup(EquityGate.REFUSE, threshold=0.5)
    record(store, clock, threshold=0.45)
    assert deployments.authorise(window.id, SUPERVISOR).state is WindowState.AUTHORISED
    assert AuditAction.POLICY_WARNING not in [a for a, _ in audit_actions(store)]


def test_the_newest_evaluation_governs_and_a_failed_one_is_refused():
    store, clock, deployments, window = setup(EquityGate.REFUSE, threshold=0.6)
    record(store, clock, threshold=0.45)
    clock.advance(timedelta(minutes=1))
    record(store, clock, threshold=None, passed=False)
    with pytest.raises(PermissionDenied, match="significant demographic differential at every threshold"):
        deployments.authorise(window.id, SUPERVISOR)


def test_an_evaluation_of_another_model_does_not_count():
    store, clock, deployments, window = setup(EquityGate.REFUSE)
    record(store, clock, threshold=0.3, model="other-model")
    with pytest.raises(PermissionDenied, match="no recorded demographic evaluation"):
        deployments.authorise(window.id, SUPERVISOR)


def test_off_neither_warns_nor_refuses():
    store, _, deployments, window = setup(EquityGate.OFF)
    deployments.authorise(window.id, SUPERVISOR)
    assert AuditAction.POLICY_WARNING not in [a for a, _ in audit_actions(store)]


def test_recording_an_evaluation_is_audited_and_validated():
    store, clock = MemoryStore(), ManualClock(START)
    summary = record(store, clock, threshold=0.42)
    with store() as uow:
        assert uow.evaluations.for_model(MODEL) == [summary]
        (audited,) = [r for r in uow.audit.records() if r.action == AuditAction.EVALUATION_RECORDED]
    assert audited.subject_id == summary.id
    assert audited.details["recommended_threshold"] == 0.42
    with pytest.raises(InvalidInput, match="must name its recommended threshold"):
        record(store, clock, threshold=None, passed=True)


def test_eval_record_cli_reads_a_report(tmp_path, monkeypatch):
    monkeypatch.setenv("LFR_STORE_URL", "memory://")
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            {
                "model_id": MODEL,
                "dataset_fingerprint": "sha256:x",
                "recommended_threshold": 0.4,
                "passed": True,
            }
        )
    )
    result = CliRunner().invoke(app, ["eval", "record", str(report), "--actor", "auditor"])
    assert result.exit_code == 0, result.output
    assert "passed, lowest threshold 0.4" in result.output
    report.write_text("{}")
    result = CliRunner().invoke(app, ["eval", "record", str(report), "--actor", "auditor"])
    assert result.exit_code == 2
    assert "not a report" in result.output
