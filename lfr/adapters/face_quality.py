"""Measures what the quality gate judges: sharpness of the aligned face (OpenCV) and head pose from the
detector's five keypoints (numpy). Cheap enough to run on every detected face before deciding to embed."""

from __future__ import annotations

import math

import cv2
import numpy as np

from lfr.adapters.embedder import DetectedFace
from lfr.domain.observation import FaceQuality

# Where ArcFace's alignment template puts the nose between the eye line and the mouth line (0 = eyes,
# 1 = mouth) for a frontal face: insightface's arcface_dst, (71.74 - 51.60) / (92.28 - 51.60).
FRONTAL_NOSE_DROP = 0.495
# Mouth-line to eye-line distance over inter-ocular distance in the same template (40.7 / 35.2).
EYE_MOUTH_OVER_INTEROCULAR = 1.155
# How far the nose tip stands in front of the eyes, as a fraction of the inter-ocular distance. A rough
# anthropometric figure: the pose estimate ranks and gates faces, it is not a measurement instrument.
NOSE_DEPTH_OVER_INTEROCULAR = 0.55


def sharpness(aligned_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey aligned face: low for blurred or upscaled tiny faces."""
    grey = cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2GRAY) if aligned_bgr.ndim == 3 else aligned_bgr
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def head_pose(keypoints: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from the 5 keypoints (left eye, right eye, nose, mouth left, mouth right).

    The points are first de-rotated so the eye line is horizontal (roll is harmless for recognition).
    Yaw: the nose's sideways offset from the eye midpoint; pitch: its offset along the eye-mouth axis
    from where a frontal face has it. Each offset over the nose's depth gives the angle. Positive yaw:
    nose towards the image's right; positive pitch: nose towards the mouth (looking down).
    """
    points = np.asarray(keypoints, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose = points[0], points[1], points[2]
    mouth = (points[3] + points[4]) / 2
    eye_mid = (left_eye + right_eye) / 2
    axis = right_eye - left_eye
    roll = math.atan2(axis[1], axis[0])
    cos_r, sin_r = math.cos(-roll), math.sin(-roll)
    rotation = np.array([[cos_r, -sin_r], [sin_r, cos_r]])
    nose_r = rotation @ (nose - eye_mid)
    mouth_r = rotation @ (mouth - eye_mid)
    interocular = float(np.hypot(*axis))
    eye_mouth = abs(float(mouth_r[1]))
    # Yaw shrinks the eye distance and pitch the eye-mouth distance; the larger estimate of the face's
    # true scale is the less foreshortened one.
    scale = max(interocular, eye_mouth / EYE_MOUTH_OVER_INTEROCULAR, 1e-6)
    depth = NOSE_DEPTH_OVER_INTEROCULAR * scale
    yaw = math.degrees(math.atan2(float(nose_r[0]), depth))
    pitch = math.degrees(math.atan2(float(nose_r[1]) - FRONTAL_NOSE_DROP * eye_mouth, depth))
    return yaw, pitch


def measure(face: DetectedFace, aligned_bgr: np.ndarray) -> FaceQuality:
    yaw, pitch = head_pose(face.keypoints)
    return FaceQuality(
        detector_score=face.score,
        face_width_px=max(0, round(face.width)),
        face_height_px=max(0, round(face.height)),
        interocular_px=face.interocular,
        sharpness=sharpness(aligned_bgr),
        yaw_deg=yaw,
        pitch_deg=pitch,
    )
