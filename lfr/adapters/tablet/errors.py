"""The one place where lfr's domain errors become HTTP status codes."""

from __future__ import annotations

import logging
import math
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from lfr.domain.errors import (
    Conflict,
    InvalidInput,
    LfrError,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
    Throttled,
    Unauthenticated,
)

logger = logging.getLogger(__name__)

# Most specific first: StaleUpdate and AlreadyAdjudicated are Conflicts.
STATUS_BY_ERROR: tuple[tuple[type[LfrError], int], ...] = (
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (Throttled, 429),
    (StoreUnavailable, 503),
)


class ErrorOut(BaseModel):
    error: str
    detail: str


def status_for(exc: LfrError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status
    return 500


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


async def handle_lfr_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LfrError)
    status = status_for(exc)
    if status == 500:
        logger.error("unmapped lfr error %s on %s", type(exc).__name__, request.url.path)
    if _wants_html(request):
        if status == 401:
            return RedirectResponse(f"/login?notice={quote(str(exc))}", status_code=303)
        templates = request.app.state.templates
        return templates.TemplateResponse(  # type: ignore[no-any-return]
            request,
            "error.html",
            {"status": status, "message": str(exc)},
            status_code=status,
            headers=retry_after(exc),
        )
    body = ErrorOut(error=type(exc).__name__, detail=str(exc))
    return JSONResponse(body.model_dump(), status_code=status, headers=retry_after(exc))


def retry_after(exc: LfrError) -> dict[str, str]:
    """The Retry-After header a throttled caller needs (whole seconds, rounded up)."""
    if isinstance(exc, Throttled):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_seconds)))}
    return {}


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
    )
    body = ErrorOut(error="InvalidInput", detail=problems or "invalid request")
    return JSONResponse(body.model_dump(), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LfrError, handle_lfr_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 422, 429, 503)
}
