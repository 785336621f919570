"""Deployment windows (what an officer is assigned to), the supervisor overview, and the audit trail."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from lfr.adapters.tablet.deps import Context, PassiveUser, User, require_csrf
from lfr.adapters.tablet.errors import ERROR_RESPONSES
from lfr.adapters.tablet.schemas import (
    AuditRecordOut,
    AuthorisationOut,
    ChainVerificationOut,
    CloseWindowIn,
    OverviewOut,
    WindowOut,
    WindowOverviewOut,
)
from lfr.domain.audit import AuditAction
from lfr.domain.limits import MAX_SEQUENCE

router = APIRouter(prefix="/api", tags=["deployments"], responses=ERROR_RESPONSES)


@router.get("/deployments", response_model=list[WindowOut])
def list_windows(ctx: Context, principal: PassiveUser) -> list[WindowOut]:
    """Windows the caller may see: officers only those they are assigned to."""
    now = ctx.clock.now()
    return [WindowOut.of(w, now) for w in ctx.services.deployments.list_windows(principal)]


@router.get("/deployments/overview", response_model=OverviewOut)
def overview(ctx: Context, principal: PassiveUser) -> OverviewOut:
    """Supervisors: each window's state, cameras and counts. Counts are all that exists of non-matches."""
    windows = ctx.services.overview.overview(principal)
    now = ctx.clock.now()
    return OverviewOut(windows=[WindowOverviewOut.of(o, now) for o in windows], server_now=now)


WindowId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# What the authorisation policy (the equity gate) recorded with an authorisation: shown as its verdict.
VERDICT_KEYS = ("policy", "equity", "verdict", "reason")


@router.post(
    "/deployments/{window_id}/authorise",
    response_model=AuthorisationOut,
    dependencies=[Depends(require_csrf)],
)
def authorise_window(ctx: Context, principal: User, window_id: WindowId) -> AuthorisationOut:
    """Supervisors: authorise a pending window. A refusal by the equity gate is an error naming its
    reasons; an authorisation comes back with the gate's verdict and what was recorded with it."""
    window = ctx.services.deployments.authorise(window_id, principal)
    record = ctx.services.audit.latest_about(principal, window.id, AuditAction.WINDOW_AUTHORISED)
    details = record.details if record is not None else {}
    recorded = {k: v for k, v in details.items() if any(word in k for word in VERDICT_KEYS)}
    verdict = ctx.services.evaluations.verdict(window.id, principal).as_dict()
    return AuthorisationOut(window=WindowOut.of(window, ctx.clock.now()), verdict=verdict | recorded)


@router.get("/deployments/{window_id}/equity", response_model=dict[str, object])
def equity_verdict(ctx: Context, principal: PassiveUser, window_id: WindowId) -> dict[str, object]:
    """The equity gate's verdict on a window now, with its reasons (supervisors, auditors, admins)."""
    return ctx.services.evaluations.verdict(window_id, principal).as_dict()


@router.post("/deployments/{window_id}/close", response_model=WindowOut, dependencies=[Depends(require_csrf)])
def close_window(ctx: Context, principal: User, window_id: WindowId, body: CloseWindowIn) -> WindowOut:
    """Supervisors: close a window now. Every replica disarms it within a second; the reason is audited."""
    closed = ctx.services.deployments.close(window_id, principal, body.reason.strip())
    return WindowOut.of(closed, ctx.clock.now())


@router.get("/audit/verification", response_model=ChainVerificationOut, tags=["audit"])
def audit_verification(ctx: Context, principal: PassiveUser) -> ChainVerificationOut:
    """Whether the audit chain verifies from its first record to its head (auditors, supervisors,
    admins)."""
    result = ctx.services.audit.verify(principal)
    return ChainVerificationOut(
        ok=result.ok,
        records_checked=result.records_checked,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason,
    )


@router.get("/audit", response_model=list[AuditRecordOut], tags=["audit"])
def audit_records(
    ctx: Context,
    principal: PassiveUser,
    from_seq: Annotated[int, Query(ge=1, le=MAX_SEQUENCE)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditRecordOut]:
    """Audit records from `from_seq` on (auditors, supervisors, admins)."""
    records = ctx.services.audit.export(principal, from_seq)
    try:
        return [AuditRecordOut.of(r) for r in islice(records, limit)]
    finally:
        # The export holds a unit of work (and its lock) open until the generator is closed.
        close = getattr(records, "close", None)
        if close is not None:
            close()
