"""What a platform watches on the tablet app: /healthz (the store answers) for load balancers and
probes, request counts by route template for Prometheus, and /metrics when it runs on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HealthCheck = Callable[[], None]  # raises when the app cannot serve (the store does not answer)


class TabletMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # Route templates (/api/alerts/{alert_id}), never paths: an alert id is no label.
        self.requests = Counter(
            "lfr_tablet_requests",
            "Tablet HTTP requests answered, by route template, method and status class",
            ["route", "method", "status"],
            registry=registry,
        )


class RequestCounter:
    """Plain ASGI middleware (it must not buffer the live feed's SSE stream)."""

    def __init__(self, app: ASGIApp, metrics: TabletMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.requests.labels(route, method, f"{status[0] // 100}xx").inc()


_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})


def operations_router(health: HealthCheck, registry: CollectorRegistry | None) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> Response:
        try:
            await asyncio.to_thread(health)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    if registry is not None:

        @router.get("/metrics")
        async def metrics() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def install_operations(
    app: FastAPI, health: HealthCheck, metrics: TabletMetrics, serve_metrics: bool
) -> None:
    app.include_router(operations_router(health, metrics.registry if serve_metrics else None))
    app.add_middleware(RequestCounter, metrics=metrics)
