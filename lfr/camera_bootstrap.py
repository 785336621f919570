"""Composition of the camera node and the enrolment tool: the only place their adapters are wired."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from lfr.adapters.camera.capture import Capture, LatestFrameSlot, open_source
from lfr.adapters.camera.client import MatcherClient
from lfr.adapters.camera.config import CameraNodeConfig
from lfr.adapters.camera.metrics import CameraMetrics, serve_metrics
from lfr.adapters.camera.node import CameraNode, FacePipeline
from lfr.adapters.embedder import InsightFaceEmbedder


def build_camera_node(
    config: CameraNodeConfig,
    registry: CollectorRegistry | None = None,
    embedder: InsightFaceEmbedder | None = None,
    serve: bool = True,
) -> CameraNode:
    """A ready node; `embedder` may be shared (tests load the models once), `serve` starts /metrics."""
    registry = registry or CollectorRegistry()
    metrics = CameraMetrics(registry, config.camera_id)
    source = open_source(config.source.uri, config.source.fps)
    embedder = embedder or InsightFaceEmbedder(config.models)
    slot = LatestFrameSlot(on_drop=metrics.frames_dropped.inc)
    pace = (config.source.fps or source.fps) if config.source.realtime else None
    capture = Capture(source, slot, pace, on_frame=metrics.frames_captured.inc)
    pipeline = FacePipeline(
        embedder,
        config.gate.policy(),
        config.tracker.policy(),
        config.crops.policy(),
        metrics,
        config.max_faces,
    )
    client = MatcherClient(
        config.matcher.address,
        config.matcher.token(),
        config.camera_id,
        embedder.model_id,
        embedder.dimension,
        metrics,
        config.stream.policy(),
        config.matcher.root_certificates,
    )
    if serve and config.metrics.enabled:
        serve_metrics(registry, config.metrics.listen)
    return CameraNode(capture, slot, pipeline, client, metrics, config.stream.drain_timeout_s)
