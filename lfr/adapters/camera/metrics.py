"""Prometheus metrics of one camera node. Nothing is registered at import: the registry is passed in, and
label children are bound once because the hot path increments them for every frame and face."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from lfr.adapters.grpc.channels import ChannelSecurity
from lfr.domain.quality import GateReason

# align: alignment + quality measurement of every detected face; embed: recogniser + JPEG of due faces.
STAGES = ("detect", "align", "embed", "send")
OUTCOMES = ("alert", "no_match", "not_armed", "rejected")
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class CameraMetrics:
    def __init__(self, registry: CollectorRegistry, camera_id: str) -> None:
        self.registry = registry
        labels = {"camera": camera_id}

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, ["camera"], registry=registry)

        self.frames_captured = counter(
            "lfr_camera_frames_captured_total", "frames read from the source"
        ).labels(**labels)
        self.frames_dropped = counter(
            "lfr_camera_frames_dropped_total", "frames replaced by a newer one before inference took them"
        ).labels(**labels)
        self.frames_processed = counter(
            "lfr_camera_frames_processed_total", "frames run through detection"
        ).labels(**labels)
        self.faces_detected = counter("lfr_camera_faces_detected_total", "faces found").labels(**labels)
        gated = Counter(
            "lfr_camera_faces_gated_total",
            "faces refused by the quality gate",
            ["camera", "reason"],
            registry=registry,
        )
        self.faces_gated = {
            reason: gated.labels(camera=camera_id, reason=reason.value) for reason in GateReason
        }
        self.faces_embedded = counter(
            "lfr_camera_faces_embedded_total", "faces embedded (tracks due to send)"
        ).labels(**labels)
        self.observations_sent = counter(
            "lfr_camera_observations_sent_total", "observations written to the matcher stream"
        ).labels(**labels)
        self.observations_dropped = counter(
            "lfr_camera_observations_dropped_total",
            "observations dropped, oldest first, from a full buffer while the matcher was unreachable",
        ).labels(**labels)
        results = Counter(
            "lfr_camera_results_total", "matcher answers by outcome", ["camera", "outcome"], registry=registry
        )
        self.results = {outcome: results.labels(camera=camera_id, outcome=outcome) for outcome in OUTCOMES}
        latency = Histogram(
            "lfr_camera_stage_seconds",
            "time spent per frame in each stage",
            ["camera", "stage"],
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.stage_seconds = {stage: latency.labels(camera=camera_id, stage=stage) for stage in STAGES}
        self.connected = Gauge(
            "lfr_camera_matcher_connected",
            "1 while a stream to the matcher is open",
            ["camera"],
            registry=registry,
        ).labels(**labels)
        self.reconnects = counter(
            "lfr_camera_reconnects_total", "stream (re)connection attempts after a failure"
        ).labels(**labels)
        self.buffered = Gauge(
            "lfr_camera_buffered_observations",
            "observations waiting for the matcher",
            ["camera"],
            registry=registry,
        ).labels(**labels)
        self.hits_unacknowledged = Gauge(
            "lfr_camera_hits_unacknowledged",
            "hits the matcher could not store yet (store_error), kept in memory and re-sent",
            ["camera"],
            registry=registry,
        ).labels(**labels)
        self.hits_dropped = counter(
            "lfr_camera_hits_dropped_total",
            "unacknowledged hits dropped, oldest first, because too many were waiting",
        ).labels(**labels)
        # Labelled only when a certificate is configured: a 0 would read as "expired in 1970".
        self.certificate_expiry = Gauge(
            "lfr_camera_certificate_expiry_timestamp_seconds",
            "Unix time this node's certificates expire (client, matcher_ca); earliest in a bundle",
            ["camera", "certificate"],
            registry=registry,
        )
        self.camera_id = camera_id


def export_certificate_expiry(metrics: CameraMetrics, security: ChannelSecurity) -> None:
    """Sets when the node's configured certificates expire (read once at start: a new one needs a restart)."""
    from lfr.adapters.metrics import certificate_expiry

    for name, path in (("client", security.client_cert_file), ("matcher_ca", security.ca_file)):
        if path is not None:
            expires = certificate_expiry(path).timestamp()
            metrics.certificate_expiry.labels(camera=metrics.camera_id, certificate=name).set(expires)


def serve_metrics(registry: CollectorRegistry, listen: str) -> None:
    """Expose the registry on its own HTTP port (a daemon thread), e.g. listen='127.0.0.1:9465'."""
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)
