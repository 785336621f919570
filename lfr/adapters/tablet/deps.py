"""Request-scoped dependencies: the app context, the signed-in person, and the CSRF check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from lfr.adapters.tablet.context import TabletContext
from lfr.adapters.tablet.sessions import COOKIE_NAME, CSRF_FIELD, CSRF_HEADER, Session
from lfr.domain.errors import NotFound, PermissionDenied, Unauthenticated
from lfr.domain.principal import Principal, PrincipalKind

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def context(request: Request) -> TabletContext:
    ctx: TabletContext = request.app.state.tablet
    return ctx


Context = Annotated[TabletContext, Depends(context)]


def cookie_session(request: Request, ctx: Context) -> Session | None:
    """The session the cookie carries, if it is genuine and unexpired (anonymous ones included)."""
    session = ctx.sessions.loads(request.cookies.get(COOKIE_NAME))
    if session is None or ctx.sessions.expired(session):
        return None
    return session


def _principal(request: Request, ctx: TabletContext, refresh: bool) -> tuple[Principal, Session]:
    session = ctx.sessions.loads(request.cookies.get(COOKIE_NAME))
    if session is None or session.user is None:
        raise Unauthenticated("please sign in")
    if ctx.sessions.expired(session):
        raise Unauthenticated("your session expired; please sign in again")
    try:
        principal = ctx.services.principals.get(session.user)
    except NotFound:
        raise Unauthenticated("this account no longer exists") from None
    if not principal.active or principal.kind is not PrincipalKind.USER:
        raise Unauthenticated("this account is disabled")
    if session.generation != principal.session_generation:
        raise Unauthenticated("this session was signed out; please sign in again")
    if refresh and (touched := ctx.sessions.touched(session)) is not None:
        request.state.session_cookie = ctx.sessions.dumps(touched)  # written by the headers middleware
    return principal, session


def signed_in(request: Request, ctx: Context) -> Principal:
    """The person behind the request; their activity restarts the idle clock."""
    return _principal(request, ctx, refresh=True)[0]


def signed_in_passively(request: Request, ctx: Context) -> Principal:
    """For background reads (live feed, auto-refresh) that must not keep an unattended tablet signed in."""
    return _principal(request, ctx, refresh=False)[0]


def current_session(request: Request, ctx: Context) -> Session:
    return _principal(request, ctx, refresh=False)[1]


def signed_in_session(request: Request, ctx: TabletContext) -> tuple[Principal, Session]:
    """The person and session a request carries, checked as every route checks them; for sign-out."""
    return _principal(request, ctx, refresh=False)


async def require_csrf(request: Request, ctx: Context) -> None:
    """Every state-changing request must echo the token bound to its session (header or form field)."""
    session = ctx.sessions.loads(request.cookies.get(COOKIE_NAME))
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if session is None or not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise PermissionDenied("missing or wrong CSRF token; reload the page and try again")


User = Annotated[Principal, Depends(signed_in)]
PassiveUser = Annotated[Principal, Depends(signed_in_passively)]
