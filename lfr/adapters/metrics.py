"""Prometheus metrics for the matcher (the IngestMetrics port). Registered on a registry passed in, never
at import. Labels are bounded and carry no identity: camera ids (accounts, one per camera node), outcome and
reject codes (fixed enums), window ids (one per deployment). Nothing about any face."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    make_wsgi_app,
    start_http_server,
)
from prometheus_client.exposition import ThreadingWSGIServer

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from lfr.adapters.blas_kernel import ensure_blas_kernel
from lfr.domain.alert import Adjudication
from lfr.domain.observation import RejectCode

# Match latency spans 0.1 ms (small batch, small list) to a slow SQLite commit of an alert.
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class PrometheusIngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._faces = Counter(
            "lfr_faces_received",
            "Observations received, by camera and outcome",
            ["camera", "outcome"],
            registry=registry,
        )
        self._rejected = Counter(
            "lfr_rejected", "Observations rejected, by reason", ["reason"], registry=registry
        )
        self._latency = Histogram(
            "lfr_match_latency_seconds",
            "Time to decide one micro-batch",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._armed = Gauge(
            "lfr_window_armed", "1 while a deployment window is armed", ["window"], registry=registry
        )
        self._streams_open = Gauge(
            "lfr_camera_streams_open",
            "Ingest streams open now, by camera (this matcher process only)",
            ["camera"],
            registry=registry,
        )
        self._alerts_raised = Counter("lfr_alerts_raised", "Alerts raised (durable)", registry=registry)
        self._not_durable = Counter(
            "lfr_alerts_not_durable",
            "Hits whose alert could not be stored (answered store_error; the camera node re-sends them)",
            registry=registry,
        )
        self._suspended = Gauge(
            "lfr_matcher_suspended",
            "1 while matching is suspended because alerts cannot be made durable (store failing)",
            registry=registry,
        )
        self._adjudicated = Counter(
            "lfr_alerts_adjudicated", "Alerts adjudicated, by outcome", ["outcome"], registry=registry
        )
        # Label children bound once: `.labels()` costs as much as the increment itself (PERF_NOTES.md).
        self._rejected_by = {code.value: self._rejected.labels(code.value) for code in RejectCode}
        self._adjudicated_by = {a.value: self._adjudicated.labels(a.value) for a in Adjudication}
        self._faces_by: dict[tuple[str, str], Callable[[float], None]] = {}
        self._lock = threading.Lock()
        for code in RejectCode:
            self._rejected_by[code.value].inc(0)
        blas = ensure_blas_kernel()
        Info(
            "lfr_faiss_blas_kernel",
            "The GEMM kernel FAISS's OpenBLAS runs and how it was chosen (see `lfr doctor`)",
            registry=registry,
        ).info(
            {
                "kernel": blas.running or "unknown",
                "source": blas.source,
                "detected": blas.detected or "unknown",
                "best_supported": blas.best_supported or "unknown",
            }
        )

    def observed(self, camera_id: str, outcome: str, count: int = 1) -> None:
        key = (camera_id, outcome)
        inc = self._faces_by.get(key)
        if inc is None:
            with self._lock:
                inc = self._faces_by.setdefault(key, self._faces.labels(camera_id, outcome).inc)
        inc(count)

    def rejected(self, code: str, count: int = 1) -> None:
        child = self._rejected_by.get(code)
        if child is not None:  # an unknown code would be an unbounded label: count nothing rather than that
            child.inc(count)

    def match_latency(self, seconds: float) -> None:
        self._latency.observe(seconds)

    def armed(self, window_id: str, is_armed: bool) -> None:
        self._armed.labels(window_id).set(1 if is_armed else 0)

    def streams_open(self, camera_id: str, count: int) -> None:
        self._streams_open.labels(camera_id).set(count)

    def alert_raised(self) -> None:
        self._alerts_raised.inc()

    def alert_not_durable(self) -> None:
        self._not_durable.inc()

    def matcher_suspended(self, suspended: bool) -> None:
        self._suspended.set(1 if suspended else 0)

    def alert_adjudicated(self, outcome: str) -> None:
        child = self._adjudicated_by.get(outcome)
        if child is not None:
            child.inc()


def serve_metrics(
    registry: CollectorRegistry, listen: str, token: str | None = None
) -> tuple[WSGIServer, int]:
    """Serves /metrics on its own port (`host:port`, port 0 for a free one); returns the server and port.
    With a `token`, a scrape without `Authorization: Bearer <token>` gets 401 and nothing else."""
    host, _, port = listen.rpartition(":")
    if token is None:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
        return server, int(server.server_address[1])
    guarded = _bearer_only(make_wsgi_app(registry), token)
    server = make_server(host or "127.0.0.1", int(port), guarded, ThreadingWSGIServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="lfr-metrics", daemon=True).start()
    return server, int(server.server_address[1])


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


def _bearer_only(app: WSGIApplication, token: str) -> WSGIApplication:
    expected = f"Bearer {token}".encode()

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        sent = environ.get("HTTP_AUTHORIZATION", "").encode()
        if not hmac.compare_digest(sent, expected):
            start_response(
                "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")]
            )
            return [b"a bearer token is required\n"]
        return app(environ, start_response)

    return guarded
