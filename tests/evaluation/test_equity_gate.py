"""The equity gate at authorisation, over the memory store: off, warn (shown and audited), refuse (audited),
the threshold floor, and recording an evaluation as an audited act of an auditor or admin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lfr.adapters.storage import Store, open_store
from lfr.adapters.storage.memory import MemoryStore
from lfr.domain.audit import AuditAction, verify_chain
from lfr.domain.clock import ManualClock
from lfr.domain.errors import InvalidInput, PermissionDenied
from lfr.domain.evaluation import EquityGate, canonical_report, report_sha256
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.domain.window import WindowSpec, WindowState
from lfr.services.deployments import DeploymentService
from lfr.services.equity import EvaluationService, equity_policy
from lfr.services.watchlists import SubjectSpec, WatchlistService
from tests.evaluation.gate_reports import report

MODEL = "model-a"
START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SUPERVISOR = Principal("sup", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))
AUDITOR = Principal("aud", PrincipalKind.USER, frozenset({Role.AUDITOR}))
ADMIN = Principal("adm", PrincipalKind.USER, frozenset({Role.ADMIN}))


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """Every test here runs on each store: the refusal's audit record is written after a rollback."""
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_store_url")
    opened = open_store(url)
    yield opened
    opened.close()


def setup(store, gate: EquityGate, threshold: float = 0.6):
    clock = ManualClock(START)
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


def record(store, clock, document, actor=AUDITOR, sha256=None):
    text = canonical_report(document)
    return EvaluationService(store, clock).record(text, sha256 or report_sha256(document), actor)


def test_warn_authorises_and_audits_the_verdict_without_an_evaluation(store):
    _, _, deployments, window = setup(store, EquityGate.WARN)
    authorised = deployments.authorise(window.id, SUPERVISOR)
    assert authorised.state is WindowState.AUTHORISED
    actions = audit_actions(store)
    warnings = [d for a, d in actions if a == AuditAction.POLICY_WARNING]
    assert len(warnings) == 1
    assert warnings[0]["outcome"] == "insufficient evidence"
    assert "no recorded demographic evaluation" in warnings[0]["warning"]
    authorised_record = next(d for a, d in actions if a == AuditAction.WINDOW_AUTHORISED)
    assert authorised_record["policy_warnings"] == [warnings[0]["warning"]]
    with store() as uow:
        assert verify_chain(uow.audit.records(), uow.audit.head()).ok


def test_refuse_without_an_evaluation_says_to_record_one_and_audits_the_refusal(store):
    _, _, deployments, window = setup(store, EquityGate.REFUSE)
    with pytest.raises(PermissionDenied, match=r"record an evaluation first.*lfr eval record"):
        deployments.authorise(window.id, SUPERVISOR)
    with store() as uow:
        assert uow.windows.get(window.id).state is WindowState.PENDING
        assert verify_chain(uow.audit.records(), uow.audit.head()).ok
    actions = audit_actions(store)
    assert AuditAction.WINDOW_AUTHORISED not in [a for a, _ in actions]
    (refusal,) = [d for a, d in actions if a == AuditAction.WINDOW_AUTHORISATION_REFUSED]
    assert "insufficient evidence" in refusal["reason"]
    assert refusal["threshold"] == 0.6


def test_refuse_allows_a_window_covered_by_sufficient_evidence(store):
    _, clock, deployments, window = setup(store, EquityGate.REFUSE)
    record(store, clock, report(model_id=MODEL))
    assert deployments.authorise(window.id, SUPERVISOR).state is WindowState.AUTHORISED
    assert AuditAction.POLICY_WARNING not in [a for a, _ in audit_actions(store)]


def test_refuse_blocks_a_threshold_below_the_recommended(store):
    _, clock, deployments, window = setup(store, EquityGate.REFUSE, threshold=0.5)
    record(store, clock, report(model_id=MODEL, recommended=0.6))
    with pytest.raises(PermissionDenied, match=r"failed: threshold 0.5 is below 0.6"):
        deployments.authorise(window.id, SUPERVISOR)


def test_the_newest_evaluation_governs_and_a_failed_one_is_refused(store):
    _, clock, deployments, window = setup(store, EquityGate.REFUSE)
    record(store, clock, report(model_id=MODEL))
    clock.advance(timedelta(minutes=1))
    record(store, clock, report(model_id=MODEL, recommended=None, significant_at=(0.5, 0.6, 0.7)))
    with pytest.raises(PermissionDenied, match=r"significant demographic differential at threshold 0\.6"):
        deployments.authorise(window.id, SUPERVISOR)


def test_an_evaluation_of_another_model_does_not_count(store):
    _, clock, deployments, window = setup(store, EquityGate.REFUSE)
    record(store, clock, report(model_id="other-model"))
    with pytest.raises(PermissionDenied, match="no recorded demographic evaluation"):
        deployments.authorise(window.id, SUPERVISOR)


@pytest.mark.parametrize("gate", list(EquityGate))
def test_the_threshold_floor_holds_whatever_the_gate(store, gate):
    _, clock, deployments, window = setup(store, gate, threshold=0.0)
    record(store, clock, report(model_id=MODEL, thresholds=(0.0, 0.5), recommended=0.0))
    with pytest.raises(PermissionDenied, match=r"below the floor 0\.3"):
        deployments.authorise(window.id, SUPERVISOR)
    assert AuditAction.WINDOW_AUTHORISATION_REFUSED in [a for a, _ in audit_actions(store)]


def test_off_neither_warns_nor_refuses(store):
    _, _, deployments, window = setup(store, EquityGate.OFF)
    deployments.authorise(window.id, SUPERVISOR)
    assert AuditAction.POLICY_WARNING not in [a for a, _ in audit_actions(store)]


def test_recording_is_audited_under_the_principal_with_the_hash(store):
    clock = ManualClock(START)
    document = report(model_id=MODEL, sizes=(100, 1000))
    summary = record(store, clock, document, actor=ADMIN)
    with store() as uow:
        assert uow.evaluations.for_model(MODEL) == [summary]
        (audited,) = [r for r in uow.audit.records() if r.action == AuditAction.EVALUATION_RECORDED]
    assert audited.actor == "adm"
    assert audited.subject_id == summary.id
    assert audited.details["report_sha256"] == report_sha256(document) == summary.report_sha256
    assert audited.details["watchlist_sizes"] == [100, 1000]
    assert audited.details["index_type"] == "flat"
    assert summary.report_json == canonical_report(document)


@pytest.mark.parametrize("roles", [{Role.SUPERVISOR}, {Role.OFFICER}, set()])
def test_only_an_auditor_or_admin_may_record(store, roles):
    clock = ManualClock(START)
    with pytest.raises(PermissionDenied, match="auditor"):
        record(store, clock, report(), actor=Principal("x", PrincipalKind.USER, frozenset(roles)))
    assert audit_actions(store) == []


def test_a_report_edited_after_its_hash_was_taken_is_refused(store):
    clock = ManualClock(START)
    document = report(model_id=MODEL)
    taken = report_sha256(document)
    document["watchlists"][0]["thresholds"][1]["significant_differential"] = False
    document["watchlists"][0]["thresholds"][1]["fpir"]["count"] = 399  # edited after `lfr eval run`
    with pytest.raises(InvalidInput, match="SHA-256 mismatch"):
        record(store, clock, document, sha256=taken)
    with pytest.raises(InvalidInput, match="needs the report's SHA-256"):
        EvaluationService(store, clock).record(canonical_report(document), " ", AUDITOR)
    assert audit_actions(store) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [("not json", "not JSON"), ("[1]", "JSON object"), ('{"model_id": "m"}', "not a report")],
)
def test_a_report_that_is_not_one_is_refused(store, text, message):
    clock = ManualClock(START)
    with pytest.raises(InvalidInput, match=message):
        EvaluationService(store, clock).record(text, "0" * 64, AUDITOR)


def test_the_verdict_is_readable_by_supervisors_auditors_and_admins_only(store):
    _, clock, _, window = setup(store, EquityGate.REFUSE)
    service = EvaluationService(store, clock)
    assert service.verdict(window.id, AUDITOR).outcome.value == "insufficient evidence"
    with pytest.raises(PermissionDenied):
        service.verdict(window.id, Principal("o", PrincipalKind.USER, frozenset({Role.OFFICER})))
