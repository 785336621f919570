"""HTML pages. They carry no alert data themselves: the page's script fetches it from the JSON API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lfr.adapters.tablet.auth import landing_page
from lfr.adapters.tablet.deps import Context, User, current_session
from lfr.adapters.tablet.sessions import Session
from lfr.domain.principal import Principal, Role

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, principal: Principal, session: Session, ctx: Context) -> Response:
    response = request.app.state.templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "csrf_token": session.csrf,
            "is_supervisor": principal.has_any(Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR),
            "can_decide": principal.has_any(Role.OFFICER, Role.SUPERVISOR),
            "can_amend": principal.has_any(Role.SUPERVISOR),
            "can_authorise": principal.has_any(Role.SUPERVISOR),
            "can_close": principal.has_any(Role.SUPERVISOR, Role.ADMIN),
            "two_person_rule": ctx.two_person_rule,
        },
    )
    assert isinstance(response, Response)
    return response


@router.get("/")
def home(principal: User) -> Response:
    return RedirectResponse(landing_page(principal), status_code=303)


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request, ctx: Context, principal: User, session: Annotated[Session, Depends(current_session)]
) -> Response:
    return _page(request, "alerts.html", principal, session, ctx)


@router.get("/deployments", response_class=HTMLResponse)
def deployments_page(
    request: Request, ctx: Context, principal: User, session: Annotated[Session, Depends(current_session)]
) -> Response:
    principal.require(Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR)
    return _page(request, "deployments.html", principal, session, ctx)
