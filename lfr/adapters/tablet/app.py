"""The tablet web app factory: everything it uses is handed in, so tests and `lfr serve` wire it alike."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from lfr.adapters.tablet import alerts, auth, deployments, pages
from lfr.adapters.tablet.context import CardCache, TabletContext, TabletServices
from lfr.adapters.tablet.deps import signed_in_passively
from lfr.adapters.tablet.errors import install_error_handlers
from lfr.adapters.tablet.feed import TABLET_CHANNEL
from lfr.adapters.tablet.schemas import AlertOut
from lfr.adapters.tablet.security import SecurityHeaders
from lfr.adapters.tablet.sessions import SessionCodec
from lfr.config import TabletSettings
from lfr.domain.clock import Clock
from lfr.domain.errors import InvalidInput
from lfr.services.alert_feed import AlertFeed, FeedClosed

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
SECRET_ENV = "LFR_TABLET_SESSION_SECRET"
MIN_SECRET_BYTES = 32
ROUTERS = (auth.pages, auth.api, pages.router, alerts.router, deployments.router)


def create_tablet_app(
    services: TabletServices,
    feed: AlertFeed,
    clock: Clock,
    settings: TabletSettings,
    session_secret: bytes,
    two_person_rule: bool = False,
) -> FastAPI:
    if len(session_secret) < MIN_SECRET_BYTES:
        raise InvalidInput(f"the tablet session secret must have at least {MIN_SECRET_BYTES} bytes")
    app = FastAPI(
        title="lfr officers' tablet API",
        version="1",
        description="Live alerts and their adjudication. Sign in at /login; send the session's CSRF "
        "token as X-CSRF-Token on every POST.",
        openapi_url=None,  # served below, as `tablet.openapi` says
        docs_url=None,  # the Swagger and ReDoc pages load scripts from a CDN, which the CSP forbids
        redoc_url=None,
    )
    app.state.tablet = TabletContext(
        services=services,
        feed=feed,
        cards=CardCache(services.views, lambda card: AlertOut.of(card).model_dump_json()),
        clock=clock,
        sessions=SessionCodec(
            session_secret,
            clock,
            idle=timedelta(minutes=settings.idle_timeout_minutes),
            max_age=timedelta(hours=settings.session_max_hours),
        ),
        cookie_secure=settings.cookie_secure,
        two_person_rule=two_person_rule,
    )
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in ROUTERS:
        app.include_router(router)
    _serve_openapi(app, settings.openapi)
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders, cookie_secure=settings.cookie_secure)
    return app


def _serve_openapi(app: FastAPI, who: str) -> None:
    """The API's OpenAPI document at /api/openapi.json: to nobody ("off"), to signed-in users
    ("signed_in", the default), or to anyone ("public")."""
    if who == "off":
        return
    guard = [Depends(signed_in_passively)] if who == "signed_in" else []

    @app.get("/api/openapi.json", include_in_schema=False, dependencies=guard)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())


def close_feeds(app: FastAPI) -> None:
    """Ends the open live feeds (their tablets reconnect and catch up); call before stopping."""
    ctx: TabletContext = app.state.tablet
    ctx.feed.end_all(FeedClosed("the tablet server is stopping"), channel=TABLET_CHANNEL)


def read_session_secret(settings: TabletSettings) -> bytes:
    """The cookie-signing secret: from the configured file, else the environment, else a random one.

    Replicas behind one load balancer must share it; a random secret signs everyone out on restart.
    """
    if settings.session_secret_file is not None:
        try:
            secret = settings.session_secret_file.read_bytes().strip()
        except OSError as exc:
            raise InvalidInput(
                f"cannot read tablet session secret {settings.session_secret_file}: {exc.strerror}"
            ) from exc
    elif value := os.environ.get(SECRET_ENV):
        secret = value.encode()
    else:
        logger.warning("no tablet session secret configured; using a random one for this process")
        return secrets.token_bytes(MIN_SECRET_BYTES)
    if len(secret) < MIN_SECRET_BYTES:
        raise InvalidInput(f"the tablet session secret must have at least {MIN_SECRET_BYTES} bytes")
    return secret
