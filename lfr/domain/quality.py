"""The face quality gate: which detected faces are worth embedding and sending.

Pure policy over measured `FaceQuality`; the camera node and the evaluation harness both use it, so a
threshold changed here changes both the same way. Faces that fail are counted by reason, never embedded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from lfr.domain.observation import FaceQuality


class GateReason(StrEnum):
    """Why a face was not embedded. A bounded set: safe as a metric label."""

    TOO_SMALL = "too_small"
    EYES_TOO_CLOSE = "eyes_too_close"
    LOW_SCORE = "low_score"
    BLURRY = "blurry"
    YAW = "yaw"
    PITCH = "pitch"


@dataclass(frozen=True, slots=True)
class QualityPolicy:
    min_face_px: float = 40.0  # shorter side of the detector box
    min_interocular_px: float = 20.0
    min_detector_score: float = 0.6
    min_sharpness: float = 30.0  # variance of the Laplacian of the aligned face
    max_abs_yaw_deg: float = 45.0
    max_abs_pitch_deg: float = 35.0


def gate(quality: FaceQuality, policy: QualityPolicy) -> GateReason | None:
    """The first reason `quality` fails `policy`, or None when the face may be embedded.

    Checked cheapest-to-measure first so callers can stop early; NaN measurements fail.
    """
    if not min(quality.face_width_px, quality.face_height_px) >= policy.min_face_px:
        return GateReason.TOO_SMALL
    if not quality.interocular_px >= policy.min_interocular_px:
        return GateReason.EYES_TOO_CLOSE
    if not quality.detector_score >= policy.min_detector_score:
        return GateReason.LOW_SCORE
    if not abs(quality.yaw_deg) <= policy.max_abs_yaw_deg:
        return GateReason.YAW
    if not abs(quality.pitch_deg) <= policy.max_abs_pitch_deg:
        return GateReason.PITCH
    if not quality.sharpness >= policy.min_sharpness:
        return GateReason.BLURRY
    return None


def quality_score(quality: FaceQuality) -> float:
    """A single figure to pick a track's best face: bigger, more frontal, sharper, surer is better.

    Saturating terms keep one very large or very sharp face from outranking a frontal one.
    """
    size = min(quality.interocular_px, 80.0) / 80.0
    sharp = min(max(quality.sharpness, 0.0), 400.0) / 400.0
    frontal = math.cos(math.radians(min(abs(quality.yaw_deg), 90.0))) * math.cos(
        math.radians(min(abs(quality.pitch_deg), 90.0))
    )
    return quality.detector_score * (0.5 + 0.5 * size) * (0.5 + 0.5 * sharp) * frontal
