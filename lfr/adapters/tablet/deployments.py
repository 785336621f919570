"""Deployment windows (what an officer is assigned to), the supervisor overview, and the audit trail."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Query

from lfr.adapters.tablet.deps import Context, PassiveUser
from lfr.adapters.tablet.errors import ERROR_RESPONSES
from lfr.adapters.tablet.schemas import AuditRecordOut, OverviewOut, WindowOut, WindowOverviewOut
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
