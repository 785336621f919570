"""Prometheus metrics for the matcher (the IngestMetrics port). Registered on a registry passed in, never
at import. Labels are bounded and carry no identity: camera ids (accounts, one per camera node), outcome and
reject codes (fixed enums), window ids (one per deployment). Nothing about any face."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
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
from lfr.domain.errors import InvalidInput
from lfr.domain.observation import RejectCode

# Match latency spans 0.1 ms (small batch, small list) to a slow SQLite commit of an alert.
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)

# Capture to alert: camera inference, network, batching and the alert's commit; the alert rule is at 1 s.
ALERT_DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)


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
            "lfr_window_armed",
            "1 while a live deployment window is armed in this process, 0 while it is not (before its "
            "start, or disarmed by a store failure); a window leaves the label once it is over",
            ["window"],
            registry=registry,
        )
        self._windows_armed = Gauge(
            "lfr_windows_armed", "Deployment windows armed in this process now", registry=registry
        )
        self._open_by_schedule = Gauge(
            "lfr_windows_open_by_schedule",
            "Authorised windows whose schedule covers now, per the last good read of the store "
            "(kept through a store failure, so disarmed-while-open can alert)",
            registry=registry,
        )
        self._windows_read = Gauge(
            "lfr_windows_read_timestamp_seconds",
            "Unix time of the last successful read of the deployment windows",
            registry=registry,
        )
        self._window_ids: set[str] = set()
        self._read_failures = Counter(
            "lfr_windows_read_failures",
            "Refreshes that could not read the deployment windows (each one disarms this process)",
            registry=registry,
        )
        self._duty_failures = Counter(
            "lfr_duty_failures",
            "Background duties (gate refresh, counter flush, retention purge, audit verification) that "
            "failed, by duty",
            ["duty"],
            registry=registry,
        )
        self._audit_ok = Gauge(
            "lfr_audit_chain_ok",
            "1 if the last unattended verification of the audit chain held, 0 if it found a break",
            registry=registry,
        )
        self._audit_verified = Gauge(
            "lfr_audit_verified_timestamp_seconds",
            "Unix time the audit chain was last verified (whatever the result)",
            registry=registry,
        )
        self._audit_records = Gauge(
            "lfr_audit_records_verified", "Records checked by the last verification", registry=registry
        )
        self._cert_expiry = Gauge(
            "lfr_certificate_expiry_timestamp_seconds",
            "Unix time the configured certificate expires, by which certificate (grpc, grpc_client_ca, "
            "tablet); the earliest in a chain or bundle",
            ["certificate"],
            registry=registry,
        )
        self._streams_open = Gauge(
            "lfr_camera_streams_open",
            "Ingest streams open now, by camera (this matcher process only)",
            ["camera"],
            registry=registry,
        )
        self._alerts_raised = Counter("lfr_alerts_raised", "Alerts raised (durable)", registry=registry)
        self._to_alert = Histogram(
            "lfr_observation_to_alert_seconds",
            "From a face's capture on the camera (its clock) to its alert being durable and announced",
            buckets=ALERT_DELAY_BUCKETS,
            registry=registry,
        )
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

    def windows(self, armed: Mapping[str, bool], open_by_schedule: int, read_at: datetime | None) -> None:
        with self._lock:
            for gone in self._window_ids - armed.keys():
                self._armed.remove(gone)  # one series per live window, not one per window ever
            for window_id, is_armed in armed.items():
                self._armed.labels(window_id).set(1 if is_armed else 0)
            self._window_ids = set(armed)
        self._windows_armed.set(sum(armed.values()))
        self._open_by_schedule.set(open_by_schedule)
        if read_at is not None:
            self._windows_read.set(read_at.timestamp())

    def windows_read_failed(self) -> None:
        self._read_failures.inc()

    def duty_failed(self, duty: str) -> None:
        self._duty_failures.labels(duty).inc()

    def audit_verified(self, ok: bool, records: int, at: datetime) -> None:
        self._audit_ok.set(1 if ok else 0)
        self._audit_records.set(records)
        self._audit_verified.set(at.timestamp())

    def certificate_expires(self, certificate: str, at: datetime) -> None:
        self._cert_expiry.labels(certificate).set(at.timestamp())

    def streams_open(self, camera_id: str, count: int) -> None:
        self._streams_open.labels(camera_id).set(count)

    def alert_raised(self, since_capture_seconds: float | None = None) -> None:
        self._alerts_raised.inc()
        if since_capture_seconds is not None:
            self._to_alert.observe(max(0.0, since_capture_seconds))

    def alert_not_durable(self) -> None:
        self._not_durable.inc()

    def matcher_suspended(self, suspended: bool) -> None:
        self._suspended.set(1 if suspended else 0)

    def alert_adjudicated(self, outcome: str) -> None:
        child = self._adjudicated_by.get(outcome)
        if child is not None:
            child.inc()


def certificate_expiry(path: Path) -> datetime:
    """When the first certificate in a PEM file (chain or CA bundle) to expire does so."""
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read certificate {path}: {exc}") from exc
    return min(c.not_valid_after_utc for c in certificates)


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
