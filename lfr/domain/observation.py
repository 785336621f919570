"""What a camera node sends about one face, and what the matcher answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np

from lfr.domain.embedding import wipe


@dataclass(frozen=True, slots=True)
class FaceQuality:
    detector_score: float = 0.0
    face_width_px: int = 0
    face_height_px: int = 0
    interocular_px: float = 0.0
    sharpness: float = 0.0
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0


@dataclass(slots=True)
class Observation:
    """Mutable on purpose: `discard()` overwrites the biometric buffers in place."""

    camera_id: str
    captured_at: datetime
    track_id: str
    model_id: str
    vector: np.ndarray
    crop_jpeg: bytearray
    quality: FaceQuality = field(default_factory=FaceQuality)
    # Where it came from, "{node session}:{seq}", when the node named its session: the store keeps one
    # alert per camera and source, so a re-send never raises a second alert, whichever replica gets it.
    source_ref: str | None = None

    def discard(self) -> None:
        wipe(self.vector)
        wipe(self.crop_jpeg)


class Outcome(StrEnum):
    NOT_ARMED = "not_armed"
    NO_MATCH = "no_match"
    ALERT = "alert"
    REJECTED = "rejected"


class RejectCode(StrEnum):
    """Bounded set of rejection reasons: safe to use as a metric label."""

    BAD_EMBEDDING = "bad_embedding"
    WRONG_MODEL = "wrong_model"
    BAD_CROP = "bad_crop"
    CAMERA_MISMATCH = "camera_mismatch"
    MALFORMED = "malformed"
    STORE_ERROR = "store_error"  # a hit that could not be made durable: the node keeps it and re-sends it
    STORE_UNAVAILABLE = "store_unavailable"  # matching suspended while alerts cannot be stored
    BAD_TIME = "bad_time"  # captured_at too far from the matcher's clock
    REPLAYED = "replayed"  # a seq already used in this node session
    INTERNAL = "internal"  # an unexpected fault with this one observation (a bug), never a batch's


@dataclass(frozen=True, slots=True)
class ObservationResult:
    outcome: Outcome
    alert_id: str | None = None
    reject_code: RejectCode | None = None
    reason: str = ""

    @classmethod
    def rejected(cls, code: RejectCode, reason: str) -> ObservationResult:
        return cls(Outcome.REJECTED, reject_code=code, reason=reason)
