"""Configuration of one camera node (`lfr camera --config FILE`): parsed once, then turned into the
plain policies the pipeline uses. The bearer token comes from a file or the environment, never the YAML."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lfr.adapters.camera.client import StreamPolicy
from lfr.adapters.camera.node import CropPolicy
from lfr.adapters.camera.tracker import TrackerPolicy
from lfr.adapters.embedder import ModelSettings
from lfr.adapters.grpc.channels import ChannelSecurity
from lfr.domain.errors import InvalidInput
from lfr.domain.quality import QualityPolicy


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatcherSettings(_Section):
    address: str = Field(default="127.0.0.1:50051", description="host:port of the matcher's gRPC server")
    token_file: Path | None = Field(default=None, description="file holding the camera's bearer token")
    token_env: str = Field(default="LFR_CAMERA_TOKEN", description="env var holding it if no token_file")
    root_certificates: Path | None = Field(
        default=None, description="PEM CA bundle that signed the matcher's certificate: TLS when set"
    )
    client_cert_file: Path | None = Field(
        default=None, description="PEM certificate of this node, for a matcher that demands mutual TLS"
    )
    client_key_file: Path | None = Field(default=None, description="PEM private key of that certificate")

    @model_validator(mode="after")
    def _client_pair(self) -> MatcherSettings:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            missing = "client_key_file" if self.client_key_file is None else "client_cert_file"
            raise ValueError(f"{missing} is missing: mutual TLS needs client_cert_file and client_key_file")
        return self

    def security(self) -> ChannelSecurity:
        return ChannelSecurity(self.root_certificates, self.client_cert_file, self.client_key_file)

    def token(self) -> str:
        if self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as exc:
                raise InvalidInput(f"cannot read token file {self.token_file}: {exc.strerror}") from exc
        else:
            token = os.environ.get(self.token_env, "").strip()
        if not token:
            where = self.token_file or f"environment variable {self.token_env}"
            raise InvalidInput(f"no camera token: {where} is empty or unset")
        return token


class SourceSettings(_Section):
    uri: str = Field(description="device index (0), rtsp:// or http(s):// URL, video file, or image folder")
    fps: float | None = Field(
        default=None, gt=0, le=240, description="rate for files and folders; unset: the file's own rate"
    )
    realtime: bool = Field(
        default=True,
        description="files and folders play at `fps`, dropping frames inference cannot keep up with; "
        "false: process every frame as fast as possible (replays, tests)",
    )


class GateSettings(_Section):
    min_face_px: float = Field(default=40, ge=0, le=4096, description="shorter side of the face box")
    min_interocular_px: float = Field(default=20, ge=0, le=2048)
    min_detector_score: float = Field(default=0.6, ge=0, le=1)
    min_sharpness: float = Field(default=30, ge=0, le=1e6, description="variance of the Laplacian")
    max_abs_yaw_deg: float = Field(default=45, ge=0, le=90)
    max_abs_pitch_deg: float = Field(default=35, ge=0, le=90)

    def policy(self) -> QualityPolicy:
        return QualityPolicy(**self.model_dump())


class TrackerSettings(_Section):
    min_iou: float = Field(default=0.3, gt=0, le=1, description="overlap to continue a track")
    min_interval_ms: float = Field(
        default=1000, ge=0, le=60_000, description="at most one face per track per"
    )
    max_age_ms: float = Field(default=1000, gt=0, le=60_000, description="a track unseen this long ends")
    max_tracks: int = Field(default=64, ge=1, le=10_000)
    max_speed: float = Field(
        default=25.0, ge=0, le=200, description="face-widths per second a newly seen face may move"
    )
    max_residual: float = Field(
        default=0.6, ge=0, le=10, description="face-widths a face may stray from its predicted place"
    )

    def policy(self) -> TrackerPolicy:
        return TrackerPolicy(
            self.min_iou,
            self.min_interval_ms / 1000,
            self.max_age_ms / 1000,
            self.max_tracks,
            max_speed=self.max_speed,
            max_residual=self.max_residual,
        )


class StreamSettings(_Section):
    buffer_max: int = Field(default=256, ge=1, le=100_000, description="observations kept while offline")
    batch_max: int = Field(default=16, ge=1, le=256)
    max_in_flight: int = Field(
        default=4,
        ge=1,
        le=15,
        description="unanswered batches (the matcher cuts off a stream with more than its "
        "grpc.stream_max_unread_answers, 15 by default, unread)",
    )
    backoff_initial_s: float = Field(default=0.2, gt=0, le=60)
    backoff_max_s: float = Field(default=10, gt=0, le=600)
    backoff_multiplier: float = Field(default=2, ge=1, le=10)
    jitter: float = Field(default=0.2, ge=0, le=1)
    hits_max: int = Field(
        default=64, ge=1, le=10_000, description="hits the matcher could not store yet, kept to re-send"
    )
    retry_hits_every_s: float = Field(default=2, gt=0, le=600, description="how often those are re-sent")
    drain_timeout_s: float = Field(default=10, ge=0, le=600, description="wait for answers at the end")
    packed_embeddings: bool = Field(
        default=True,
        description="send a message's embeddings in one field (matchers since issue 13); false for an "
        "older matcher, which reads only each observation's own",
    )

    def policy(self) -> StreamPolicy:
        return StreamPolicy(**self.model_dump(exclude={"drain_timeout_s"}))


class CropSettings(_Section):
    max_side_px: int = Field(default=144, ge=32, le=512)
    jpeg_quality: int = Field(default=85, ge=20, le=100)
    max_bytes: int = Field(default=60 * 1024, ge=1024, le=1024 * 1024)

    def policy(self) -> CropPolicy:
        return CropPolicy(self.max_side_px, self.jpeg_quality, self.max_bytes)


class NodeMetricsSettings(_Section):
    enabled: bool = True
    listen: str = Field(default="127.0.0.1:9465", description="host:port of the Prometheus endpoint")


class CameraNodeConfig(_Section):
    camera_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    matcher: MatcherSettings = MatcherSettings()
    source: SourceSettings
    models: ModelSettings = ModelSettings(intra_op_threads=1)
    max_faces: int = Field(default=0, ge=0, le=1000, description="largest faces per frame; 0: all")
    gate: GateSettings = GateSettings()
    tracker: TrackerSettings = TrackerSettings()
    stream: StreamSettings = StreamSettings()
    crops: CropSettings = CropSettings()
    metrics: NodeMetricsSettings = NodeMetricsSettings()


def load_camera_config(path: Path, overrides: dict[str, Any] | None = None) -> CameraNodeConfig:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise InvalidInput(f"cannot read camera config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"camera config {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"camera config {path} must hold a mapping at the top level")
    data.update(overrides or {})
    try:
        return CameraNodeConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid camera config {path}: {problems}") from exc
