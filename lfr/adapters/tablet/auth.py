"""Signing in and out. The sign-in form works without JavaScript; its CSRF token lives in an
anonymous session cookie, and a successful sign-in replaces that cookie with a new session."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lfr.adapters.tablet.deps import (
    Context,
    User,
    cookie_session,
    current_session,
    require_csrf,
    signed_in_session,
)
from lfr.adapters.tablet.errors import ERROR_RESPONSES, retry_after
from lfr.adapters.tablet.schemas import SessionOut, roles_of
from lfr.adapters.tablet.sessions import Session
from lfr.domain.errors import Throttled, Unauthenticated
from lfr.domain.principal import Principal, Role

logger = logging.getLogger(__name__)

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["session"], responses=ERROR_RESPONSES)


def landing_page(principal: Principal) -> str:
    if principal.has_any(Role.OFFICER):
        return "/alerts"
    return "/deployments"


def _login_form(
    request: Request,
    ctx: Context,
    session: Session | None,
    notice: str,
    status: int,
    headers: dict[str, str] | None = None,
) -> Response:
    session = session if session is not None and session.user is None else ctx.sessions.new(None)
    response = request.app.state.templates.TemplateResponse(
        request,
        "login.html",
        {"csrf_token": session.csrf, "notice": notice, "principal": None},
        status_code=status,
        headers=headers,
    )
    request.state.session_cookie = ctx.sessions.dumps(session)
    assert isinstance(response, Response)
    return response


@pages.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    ctx: Context,
    session: Annotated[Session | None, Depends(cookie_session)],
    notice: str = "",
) -> Response:
    return _login_form(request, ctx, session, notice[:200], 200)


@pages.post("/login", dependencies=[Depends(require_csrf)])
def login(
    request: Request,
    ctx: Context,
    username: Annotated[str, Form(max_length=128)],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    name = username.strip()
    address = request.client.host if request.client is not None else "unknown"
    throttle = ctx.services.sign_in_throttle
    try:
        throttle.check(name, address)
        principal = ctx.services.passwords.authenticate(name, password)
    except Throttled as exc:
        logger.info("throttled tablet sign-in")
        return _login_form(request, ctx, None, str(exc), 429, retry_after(exc))
    except Unauthenticated as exc:
        logger.info("refused tablet sign-in")
        throttle.failed(name, address)
        return _login_form(request, ctx, None, str(exc), 401)
    throttle.succeeded(name, address)
    session = ctx.sessions.new(principal.name, principal.session_generation)
    request.state.session_cookie = ctx.sessions.dumps(session)
    return RedirectResponse(landing_page(principal), status_code=303)


@pages.post("/logout", dependencies=[Depends(require_csrf)])
def logout(request: Request, ctx: Context) -> Response:
    try:
        principal, _ = signed_in_session(request, ctx)
    except Unauthenticated:
        pass  # already over: nothing to end
    else:
        # Clearing our cookie is not enough: a copy of it would stay valid until it expired.
        ctx.services.principals.end_sessions(principal.name)
    request.state.session_cookie = ctx.sessions.dumps(ctx.sessions.new(None))
    return RedirectResponse("/login?notice=Signed+out", status_code=303)


@api.get("/session", response_model=SessionOut)
def whoami(
    ctx: Context, principal: User, session: Annotated[Session, Depends(current_session)]
) -> SessionOut:
    """Who is signed in, and the CSRF token to send as X-CSRF-Token on state-changing requests."""
    return SessionOut(
        name=principal.name,
        roles=roles_of(principal),
        csrf_token=session.csrf,
        expires_at=ctx.sessions.deadline(session),
        two_person_rule=ctx.two_person_rule,
    )
