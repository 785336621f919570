"""The equity gate: authorising a deployment checks that the model, index and threshold it will run, at its
watchlist size, were evaluated for demographic differentials (NPL 2023 style) with enough searches per group
to have found one, and passed, as Bridges v South Wales Police (2020) expects a force to find out for itself.

Evaluations are produced by the evaluation harness (`lfr eval run`) and recorded here by an auditor or admin
over the API (`lfr eval record`), with the report itself and its SHA-256; the gate judges the stored report
(lfr.domain.evaluation.assess)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import InvalidInput, PermissionDenied
from lfr.domain.evaluation import (
    EXACT_INDEX,
    EquityGate,
    EquityVerdict,
    EvaluationSummary,
    EvidenceRules,
    ReportEvidence,
    WindowUnderReview,
    assess,
    canonical_report,
    report_sha256,
)
from lfr.domain.ports import UnitOfWork, UnitOfWorkFactory
from lfr.domain.principal import Principal, Role
from lfr.domain.window import DeploymentWindow
from lfr.services.deployments import AuthorisationPolicy
from lfr.services.ids import new_id

# The index type a window will be matched with. Today every window runs exact flat search; when
# `matching.index` exists this is where it comes in (lfr.config.matching_index_type).
IndexTypeOf = Callable[[DeploymentWindow], str]


def exact_index(window: DeploymentWindow) -> str:
    return EXACT_INDEX


def under_review(window: DeploymentWindow, uow: UnitOfWork, index_type: str) -> WindowUnderReview:
    return WindowUnderReview(
        model_id=window.model_id,
        index_type=index_type,
        threshold=window.threshold,
        watchlist_size=len(uow.watchlists.subjects(window.watchlist_id)),
    )


def window_verdict(
    window: DeploymentWindow, uow: UnitOfWork, rules: EvidenceRules, index_type: IndexTypeOf = exact_index
) -> EquityVerdict:
    return assess(
        under_review(window, uow, index_type(window)), uow.evaluations.for_model(window.model_id), rules
    )


def equity_policy(
    gate: EquityGate, rules: EvidenceRules | None = None, index_type: IndexTypeOf = exact_index
) -> AuthorisationPolicy:
    """The AuthorisationPolicy for DeploymentService. Whatever the gate, a threshold below the floor is
    refused. Then: off (no check), warn (authorise; the verdict's reasons are audited as a policy warning,
    kept in the authorisation record and returned to the supervisor) or refuse (PermissionDenied unless the
    verdict is passed; DeploymentService audits the refusal)."""
    rules = rules or EvidenceRules()

    def policy(window: DeploymentWindow, uow: UnitOfWork) -> list[str]:
        if window.threshold < rules.min_threshold:
            raise PermissionDenied(
                f"window {window.id}: threshold {window.threshold:g} is below the floor "
                f"{rules.min_threshold:g} (policy.equity_min_threshold)"
            )
        if gate is EquityGate.OFF:
            return []
        verdict = window_verdict(window, uow, rules, index_type)
        if verdict.passed:
            return []
        if gate is EquityGate.REFUSE:
            raise PermissionDenied(f"equity gate refuses window {window.id}: {verdict.describe()}")
        warning = f"equity gate ({verdict.outcome.value}): " + "; ".join(verdict.reasons)
        uow.audit.append(
            AuditEvent(
                AuditAction.POLICY_WARNING,
                window.authorised_by or "system",
                "window",
                window.id,
                window.authorised_at or window.created_at,
                {
                    "policy": "equity_gate",
                    "warning": warning,
                    "model_id": window.model_id,
                    **verdict.as_dict(),
                },
            )
        )
        return [warning]

    return policy


class EvaluationService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        rules: EvidenceRules | None = None,
        index_type: IndexTypeOf = exact_index,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._rules = rules or EvidenceRules()
        self._index_type = index_type

    def record(self, report_json: str, claimed_sha256: str, actor: Principal) -> EvaluationSummary:
        """Keeps an evaluation report as evidence for the gate. `claimed_sha256` is the hash `lfr eval run`
        printed for the report: a report changed since (or a typo) does not match and is refused."""
        actor.require(Role.AUDITOR, Role.ADMIN)
        try:
            document: Any = json.loads(report_json)
        except ValueError as exc:
            raise InvalidInput(f"the report is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise InvalidInput("the report must be a JSON object written by `lfr eval run`")
        evidence = ReportEvidence.parse(document)
        digest = report_sha256(document)
        claimed = claimed_sha256.strip().lower()
        if not claimed:
            raise InvalidInput(
                "recording an evaluation needs the report's SHA-256 as `lfr eval run` printed it"
            )
        if not hmac.compare_digest(digest, claimed):
            raise InvalidInput(
                f"report SHA-256 mismatch: the report's canonical JSON hashes to {digest}, not {claimed}; "
                "it was changed after `lfr eval run` wrote it (or the hash is mistyped)"
            )
        now: datetime = self._clock.now()
        summary = EvaluationSummary(
            id=new_id("eval"),
            model_id=evidence.model_id,
            dataset_fingerprint=evidence.dataset_fingerprint,
            # A failed evaluation covers no threshold; 1.0 keeps the field meaningful if it is read anyway.
            recommended_threshold=evidence.recommended_threshold
            if evidence.recommended_threshold is not None
            else 1.0,
            passed=evidence.recommended_threshold is not None,
            report_sha256=digest,
            recorded_by=actor.name,
            recorded_at=now,
            index_type=evidence.index_type,
            report_json=canonical_report(document),
        )
        with self._uow() as uow:
            uow.evaluations.add(summary)
            uow.audit.append(
                AuditEvent(
                    AuditAction.EVALUATION_RECORDED,
                    actor.name,
                    "evaluation",
                    summary.id,
                    now,
                    {
                        "model_id": summary.model_id,
                        "index_type": summary.index_type,
                        "dataset_fingerprint": summary.dataset_fingerprint,
                        "recommended_threshold": evidence.recommended_threshold,
                        "passed": summary.passed,
                        "watchlist_sizes": [w.size for w in evidence.watchlists],
                        "report_sha256": digest,
                    },
                )
            )
            uow.commit()
        return summary

    @staticmethod
    def watchlist_sizes(summary: EvaluationSummary) -> list[int]:
        if summary.report_json is None:
            return []
        return [w.size for w in ReportEvidence.parse(json.loads(summary.report_json)).watchlists]

    def verdict(self, window_id: str, actor: Principal) -> EquityVerdict:
        """What the gate says about a window now (for the supervisor, before or after authorising)."""
        actor.require(Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN)
        with self._uow() as uow:
            window = uow.windows.get(window_id)
            return window_verdict(window, uow, self._rules, self._index_type)
