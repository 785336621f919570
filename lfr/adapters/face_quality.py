"""Measures what the quality gate judges: sharpness of the aligned face (OpenCV) and head pose from the
detector's five keypoints (`head_pose`). Cheap enough to run on every detected face before embedding."""

from __future__ import annotations

import cv2
import numpy as np

from lfr.adapters.embedder import DetectedFace
from lfr.adapters.head_pose import estimate_head_pose
from lfr.domain.observation import FaceQuality

# Bumped whenever a measurement's meaning changes, so stored measurements (the evaluation's cache) are
# taken again rather than judged by the new gate. 1: yaw/pitch from the nose's offset (saturated at 45
# degrees); 2: yaw/pitch from the five-point model fit (`head_pose`); 3: pitch from the eyes and nose
# tip, the mouth line only towards the nose's fold and profile.
MEASURES_VERSION = 3


def sharpness(aligned_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey aligned face: low for blurred or upscaled tiny faces."""
    grey = cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2GRAY) if aligned_bgr.ndim == 3 else aligned_bgr
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def measure(face: DetectedFace, aligned_bgr: np.ndarray) -> FaceQuality:
    pose = estimate_head_pose(face.keypoints)
    return FaceQuality(
        detector_score=face.score,
        face_width_px=max(0, round(face.width)),
        face_height_px=max(0, round(face.height)),
        interocular_px=face.interocular,
        sharpness=sharpness(aligned_bgr),
        yaw_deg=pose.yaw,
        pitch_deg=pose.pitch,
    )
