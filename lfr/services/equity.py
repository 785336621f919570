"""The equity gate: authorising a deployment checks that the model and threshold it will run were evaluated
for demographic differentials (NPL 2023 style) and passed, as Bridges v South Wales Police (2020) expects a
force to find out for itself. Evaluations are produced by the evaluation harness (`lfr eval run`) and recorded
here (`lfr eval record`); this module knows only their summaries."""

from __future__ import annotations

from datetime import datetime

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import InvalidInput, PermissionDenied
from lfr.domain.evaluation import EquityGate, EvaluationSummary
from lfr.domain.ports import UnitOfWork, UnitOfWorkFactory
from lfr.domain.window import DeploymentWindow
from lfr.services.deployments import AuthorisationPolicy, no_policy
from lfr.services.ids import new_id


def equity_policy(gate: EquityGate) -> AuthorisationPolicy:
    """The AuthorisationPolicy for DeploymentService: off, warn (authorise, record a policy warning in the
    audit log and in the authorisation record) or refuse (raise PermissionDenied)."""
    if gate is EquityGate.OFF:
        return no_policy

    def policy(window: DeploymentWindow, uow: UnitOfWork) -> list[str]:
        problem = equity_problem(window, uow.evaluations.for_model(window.model_id))
        if problem is None:
            return []
        if gate is EquityGate.REFUSE:
            raise PermissionDenied(f"equity gate refuses window {window.id}: {problem}")
        uow.audit.append(
            AuditEvent(
                AuditAction.POLICY_WARNING,
                window.authorised_by or "system",
                "window",
                window.id,
                window.authorised_at or window.created_at,
                {"policy": "equity_gate", "warning": problem, "model_id": window.model_id},
            )
        )
        return [problem]

    return policy


def equity_problem(window: DeploymentWindow, evaluations: list[EvaluationSummary]) -> str | None:
    """Why this window's model and threshold are not covered, judged by the newest evaluation of the model
    (a later evaluation supersedes an earlier one, also when it fails); None when covered."""
    if not evaluations:
        return f"model {window.model_id} has no recorded demographic evaluation"
    latest = max(evaluations, key=lambda e: e.recorded_at)
    if latest.covers(window.model_id, window.threshold):
        return None
    if not latest.passed:
        return (
            f"the latest evaluation of model {window.model_id} ({latest.id}) found a significant demographic "
            "differential at every threshold tested"
        )
    return (
        f"threshold {window.threshold:g} is below {latest.recommended_threshold:g}, the lowest threshold at "
        f"which evaluation {latest.id} of model {window.model_id} found no significant demographic "
        "differential"
    )


class EvaluationService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def record(
        self,
        model_id: str,
        dataset_fingerprint: str,
        recommended_threshold: float | None,
        passed: bool,
        report_sha256: str,
        recorded_by: str,
    ) -> EvaluationSummary:
        if not model_id.strip() or not dataset_fingerprint.strip() or not recorded_by.strip():
            raise InvalidInput("an evaluation needs a model id, a dataset fingerprint and who records it")
        if passed and recommended_threshold is None:
            raise InvalidInput("a passing evaluation must name its recommended threshold")
        if recommended_threshold is not None and not 0.0 <= recommended_threshold <= 1.0:
            raise InvalidInput(f"recommended threshold {recommended_threshold} is outside [0, 1]")
        now: datetime = self._clock.now()
        summary = EvaluationSummary(
            id=new_id("eval"),
            model_id=model_id,
            dataset_fingerprint=dataset_fingerprint,
            # A failed evaluation covers no threshold; 1.0 keeps the field meaningful if it is read anyway.
            recommended_threshold=recommended_threshold if recommended_threshold is not None else 1.0,
            passed=passed,
            report_sha256=report_sha256,
            recorded_by=recorded_by,
            recorded_at=now,
        )
        with self._uow() as uow:
            uow.evaluations.add(summary)
            uow.audit.append(
                AuditEvent(
                    AuditAction.EVALUATION_RECORDED,
                    recorded_by,
                    "evaluation",
                    summary.id,
                    now,
                    {
                        "model_id": model_id,
                        "dataset_fingerprint": dataset_fingerprint,
                        "recommended_threshold": recommended_threshold,
                        "passed": passed,
                        "report_sha256": report_sha256,
                    },
                )
            )
            uow.commit()
        return summary
