"""The alert API: list, look (audited), decide, verify. Handlers stay thin: HTTP -> service -> JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from lfr.adapters.tablet.deps import Context, PassiveUser, User, current_session, require_csrf
from lfr.adapters.tablet.errors import ERROR_RESPONSES
from lfr.adapters.tablet.feed import alert_events
from lfr.adapters.tablet.schemas import AdjudicationIn, AlertOut, AlertPage, AmendmentIn, VerificationIn
from lfr.adapters.tablet.sessions import Session
from lfr.domain.limits import MAX_ID, MAX_SEQUENCE

router = APIRouter(prefix="/api/alerts", tags=["alerts"], responses=ERROR_RESPONSES)

AlertId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
MAX_REFERENCE_IMAGES = 1000
IMAGE_HEADERS = {"Cache-Control": "no-store", "Content-Disposition": "inline"}


@router.get("", response_model=AlertPage)
def list_alerts(
    ctx: Context,
    principal: PassiveUser,
    window_id: Annotated[str | None, Query(max_length=MAX_ID)] = None,
    after: Annotated[int, Query(ge=0, le=MAX_SEQUENCE, description="only alerts with a larger sequence")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertPage:
    """Alerts of the windows the caller may see, oldest first. No images: those are fetched (and audited)
    one by one."""
    cards = ctx.services.views.cards(principal, window_id, after, limit)
    return AlertPage(
        alerts=[AlertOut.of(c) for c in cards],
        last_sequence=max([after] + [c.alert.sequence for c in cards]),
        server_now=ctx.clock.now(),
    )


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
)
async def stream_alerts(
    request: Request,
    ctx: Context,
    principal: PassiveUser,
    session: Annotated[Session, Depends(current_session)],
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQUENCE, description="replay alerts after this sequence first")
    ] = 0,
    revision: Annotated[
        int | None,
        Query(ge=0, le=MAX_SEQUENCE, description="resume after this feed cursor (an earlier event id)"),
    ] = None,
) -> StreamingResponse:
    """Live feed: `alert` events for new alerts, `update` events for decisions and other changes (made
    anywhere: this tablet, another, gRPC, another replica), `window` events when a window closes. Event
    ids are feed cursors: a reconnecting client resumes after its Last-Event-ID (or `revision`) and
    receives every change it missed."""
    last_event_id = request.headers.get("last-event-id", "")
    resume = int(last_event_id) if last_event_id.isdigit() and len(last_event_id) < 19 else revision
    return StreamingResponse(
        alert_events(ctx, principal, session, after, resume, ctx.sessions.deadline(session)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/{alert_id}", response_model=AlertOut)
def get_alert(ctx: Context, principal: User, alert_id: AlertId) -> AlertOut:
    """One alert; recorded in the audit log as a consultation."""
    ctx.services.views.require_visible(alert_id, principal)
    ctx.services.alerts.consult(alert_id, principal, channel="tablet")
    return AlertOut.of(ctx.services.views.card(alert_id, principal))


@router.get("/{alert_id}/crop.jpg", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def alert_crop(ctx: Context, principal: User, alert_id: AlertId) -> Response:
    """The probe face crop; every fetch is an audited consultation."""
    ctx.services.views.require_visible(alert_id, principal)
    alert = ctx.services.alerts.consult(alert_id, principal, channel="tablet")
    return Response(alert.crop_jpeg, media_type="image/jpeg", headers=IMAGE_HEADERS)


@router.get(
    "/{alert_id}/reference.jpg", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}}
)
def reference_image(ctx: Context, principal: User, alert_id: AlertId) -> Response:
    """The watchlist's reference image of the subject the alert names (its first reference image)."""
    image = ctx.services.views.reference_image(alert_id, principal)
    return Response(image, media_type="image/jpeg", headers=IMAGE_HEADERS)


@router.get(
    "/{alert_id}/reference/{index}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def reference_image_n(
    ctx: Context,
    principal: User,
    alert_id: AlertId,
    index: Annotated[int, Path(ge=0, le=MAX_REFERENCE_IMAGES, description="as listed in `reference_images`")],
) -> Response:
    """One of the reference images of the subject the alert names, as listed on the alert. Listing data
    like the rest of the card: not an audited consultation (the probe crop is)."""
    image = ctx.services.views.reference_image(alert_id, principal, index)
    return Response(image, media_type="image/jpeg", headers=IMAGE_HEADERS)


@router.post("/{alert_id}/adjudication", response_model=AlertOut, dependencies=[Depends(require_csrf)])
def adjudicate(ctx: Context, principal: User, alert_id: AlertId, body: AdjudicationIn) -> AlertOut:
    """Record what the officer decided. Refused with 409 if it was already decided or changed since
    `expected_version`."""
    ctx.services.views.require_visible(alert_id, principal)
    decided = ctx.services.alerts.adjudicate(
        alert_id, body.outcome, principal, body.notes, expected_version=body.expected_version
    )
    return AlertOut.of(ctx.services.views.card(decided.id, principal))


@router.post("/{alert_id}/verification", response_model=AlertOut, dependencies=[Depends(require_csrf)])
def verify(ctx: Context, principal: User, alert_id: AlertId, body: VerificationIn) -> AlertOut:
    """Two-person rule: a second officer agrees with (or rejects) a confirmed match."""
    ctx.services.views.require_visible(alert_id, principal)
    verified = ctx.services.alerts.verify(
        alert_id, body.agree, principal, expected_version=body.expected_version
    )
    return AlertOut.of(ctx.services.views.card(verified.id, principal))


@router.post("/{alert_id}/amendment", response_model=AlertOut, dependencies=[Depends(require_csrf)])
def amend(ctx: Context, principal: User, alert_id: AlertId, body: AmendmentIn) -> AlertOut:
    """Supervisors only: change a decided alert's outcome, with a reason. The original decision stays on
    the record; the amendment, its reason and the previous outcome are audited."""
    ctx.services.views.require_visible(alert_id, principal)
    amended = ctx.services.alerts.amend(
        alert_id, body.outcome, principal, body.reason, expected_version=body.expected_version
    )
    return AlertOut.of(ctx.services.views.card(amended.id, principal))
