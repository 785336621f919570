"""Head pose from the detector's five keypoints, in closed form under scaled orthographic projection.

A face is small and far compared with its own depth (a 6 cm inter-ocular face at 1 m or more), so the
camera sees it, to within a few per cent, as a rotated, scaled and shifted copy of a rigid 3D model:
`keypoint = s * R[:2] @ model_point + t`. The 5 points give 8 independent differences; the unknown
2x3 matrix `s * R[:2]` has 6 entries, so it is solved exactly (least squares on the redundant eye and
mouth axes), then snapped to the nearest scaled rotation (polar decomposition) and read as Euler angles.
No camera intrinsics are needed, and the angles are relative to the line of sight, which is what decides
how the face looks to the recogniser. Yaw and roll come from that fit; pitch is read again from the nose
tip's height below the eye line (see "Pitch" below), because the fit's vertical scale is the mouth line,
which expression moves. Pure float arithmetic on ten numbers: a few microseconds per face.

Frame (OpenCV camera convention): x right, y down, z away from the camera. The model faces -z (the camera).
Angles: yaw > 0 turns the nose towards the image's right, pitch > 0 tilts it down (looking down),
roll > 0 turns the eye line clockwise on screen. The rotation is R = Rz(roll) @ Ry(-yaw) @ Rx(pitch),
so yaw is the azimuth and pitch the elevation of the facing direction once roll is taken out.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

# The model, in units of the inter-ocular distance, origin at the eye midpoint. Its x and y are
# insightface's ArcFace alignment template (arcface_dst, made left/right symmetric): where the detector's
# keypoints lie on a frontal face, so that template reads as exactly 0 yaw and 0 pitch. Depth (-z: towards
# the camera) is from insightface's 3D mean face (meanshape_68.pkl, used by its 3D68 landmark model for
# pose): eye centres = means of points 36-41 and 42-47, nose tip = point 30, mouth corners = 48 and 54.
EYE_HALF_WIDTH = 0.5
MOUTH_HALF_WIDTH = 0.41406  # (70.7299 - 41.5493) / 2 / 35.2372
MOUTH_DROP = 1.15463  # mouth line below the eye line: (92.2848 - 51.5989) / 35.2372
NOSE_DROP = 0.57149  # nose tip below the eye line: (71.7366 - 51.5989) / 35.2372
MOUTH_DEPTH = 0.11819  # mouth corners in front of the eye centres (meanshape_68)
NOSE_DEPTH = 0.53405  # nose tip in front of the eye centres (meanshape_68)

# (left eye, right eye, nose tip, left mouth corner, right mouth corner), "left" = image left, as the
# detector orders its keypoints.
FACE_MODEL = np.array(
    [
        [-EYE_HALF_WIDTH, 0.0, 0.0],
        [EYE_HALF_WIDTH, 0.0, 0.0],
        [0.0, NOSE_DROP, -NOSE_DEPTH],
        [-MOUTH_HALF_WIDTH, MOUTH_DROP, -MOUTH_DEPTH],
        [MOUTH_HALF_WIDTH, MOUTH_DROP, -MOUTH_DEPTH],
    ]
)

# Under the model the two singular values of s * R[:2] are equal. Perspective and keypoint noise make them
# differ by a few per cent (measured up to ~10% at 80 degrees yaw with noise, bench.pose); keypoints whose
# ratio falls below this fit no rigid face (collapsed, collinear or scrambled points) and get no pose.
MIN_SINGULAR_RATIO = 0.5

# Pitch. The rigid fit takes its vertical scale from the mouth line, which expression moves (a smile lifts
# the corners; they are also higher, relative to the eyes, on real faces than on the ArcFace template, and
# more so on women's), so it reads smiles and short lower faces as looking down. Under the model the eye
# line's length is s*cos(yaw) whatever the pitch, and the nose tip's height below it is
# s*(NOSE_DROP*cos(p) + NOSE_DEPTH*sin(p)): pitch from those alone ignores the mouth. That height peaks at
# atan(NOSE_DEPTH / NOSE_DROP) = 43 degrees down, so near and beyond that the nose cannot tell pitch and
# the rigid fit (whose mouth foreshortens) takes over: blended in as the nose's reading rises from
# NOSE_PITCH_TRUSTED to NOSE_PITCH_FOLD, and as the rigid reading rises from RIGID_PITCH_FAR to
# RIGID_PITCH_FAR + RIGID_PITCH_RAMP (a head lowered past the fold; the rigid fit read no level smiling
# face of the development evaluation beyond 50 degrees). Towards profile
# the eye line is foreshortened too much to give the scale, so the rigid fit takes over with yaw as well.
NOSE_PITCH_TRUSTED = math.radians(20.0)
NOSE_PITCH_FOLD = math.radians(35.0)
RIGID_PITCH_FAR = math.radians(40.0)
RIGID_PITCH_RAMP = math.radians(10.0)
EYE_SCALE_YAW = (math.radians(50.0), math.radians(70.0))
_NOSE_RADIUS = math.hypot(NOSE_DROP, NOSE_DEPTH)
_NOSE_ANGLE = math.atan2(NOSE_DEPTH, NOSE_DROP)

_WIDTH_NORM = 1.0 + (2 * MOUTH_HALF_WIDTH) ** 2
_DET = MOUTH_DROP * -NOSE_DEPTH - -MOUTH_DEPTH * NOSE_DROP


class HeadPose(NamedTuple):
    """Degrees. NaN throughout when the keypoints fit no face: `gate` fails NaN, so such a face is never
    embedded."""

    yaw: float
    pitch: float
    roll: float


NO_POSE = HeadPose(math.nan, math.nan, math.nan)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The head's rotation for angles in degrees (the inverse of `estimate_head_pose`'s reading)."""
    y, p, r = math.radians(-yaw), math.radians(pitch), math.radians(roll)
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    matrix: np.ndarray = rz @ ry @ rx
    return matrix


def estimate_head_pose(keypoints: np.ndarray) -> HeadPose:
    """Yaw, pitch and roll in degrees from the 5 keypoints (left eye, right eye, nose, mouth left, mouth
    right), in any pixel frame. NO_POSE for keypoints no face can produce (NaN, collapsed, collinear)."""
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = (
        np.asarray(keypoints, dtype=np.float64).reshape(5, 2).tolist()
    )
    # Column 0 of s*R[:2] (the model's x axis): both the eye axis and the mouth axis measure it.
    mouth_width = 2 * MOUTH_HALF_WIDTH
    c0x = ((rx - lx) + mouth_width * (mrx - mlx)) / _WIDTH_NORM
    c0y = ((ry - ly) + mouth_width * (mry - mly)) / _WIDTH_NORM
    # Columns 1 and 2 (model y and z) from the eye midpoint's offsets to the mouth midpoint and the nose.
    ex, ey = (lx + rx) / 2, (ly + ry) / 2
    mx, my = (mlx + mrx) / 2 - ex, (mly + mry) / 2 - ey
    nose_x, nose_y = nx - ex, ny - ey
    c1x = (mx * -NOSE_DEPTH - nose_x * -MOUTH_DEPTH) / _DET
    c1y = (my * -NOSE_DEPTH - nose_y * -MOUTH_DEPTH) / _DET
    c2x = (MOUTH_DROP * nose_x - NOSE_DROP * mx) / _DET
    c2y = (MOUTH_DROP * nose_y - NOSE_DROP * my) / _DET
    # Nearest scaled rotation: rows a, b of the 2x3 matrix times (A A^T)^(-1/2), in closed form for 2x2.
    aa = c0x * c0x + c1x * c1x + c2x * c2x
    bb = c0y * c0y + c1y * c1y + c2y * c2y
    ab = c0x * c0y + c1x * c1y + c2x * c2y
    det = aa * bb - ab * ab
    trace = aa + bb
    if not (math.isfinite(det) and math.isfinite(trace) and det > 0.0):
        return NO_POSE
    spread = math.sqrt(max(trace * trace / 4 - det, 0.0))
    small, large = trace / 2 - spread, trace / 2 + spread
    if not small > MIN_SINGULAR_RATIO**2 * large:
        return NO_POSE
    root_det = math.sqrt(det)
    norm = root_det * math.sqrt(trace + 2 * root_det)
    wa, wb = (bb + root_det) / norm, -ab / norm
    va, vb = -ab / norm, (aa + root_det) / norm
    r00, r01, r02 = wa * c0x + wb * c0y, wa * c1x + wb * c1y, wa * c2x + wb * c2y
    r10, r11, r12 = va * c0x + vb * c0y, va * c1x + vb * c1y, va * c2x + vb * c2y
    # Third row: r0 x r1 (a proper rotation, so the depth order of nose and eyes is kept).
    r20 = r01 * r12 - r02 * r11
    r21 = r02 * r10 - r00 * r12
    r22 = r00 * r11 - r01 * r10
    cos_yaw = math.hypot(r21, r22)
    yaw = math.atan2(r20, cos_yaw)
    rigid_pitch = math.atan2(r21, r22)
    roll = math.degrees(math.atan2(r10, r00))
    # The nose tip's height below the eye line over the scale s = eye-line length / cos(yaw).
    eye_dx, eye_dy = rx - lx, ry - ly
    eye_length_sq = eye_dx * eye_dx + eye_dy * eye_dy
    if not eye_length_sq > 0.0:  # both eyes on one point: the mouth alone made the fit look like a face
        return NO_POSE
    height = (nose_y * eye_dx - nose_x * eye_dy) * cos_yaw / eye_length_sq
    nose_pitch = _NOSE_ANGLE - math.acos(min(max(height / _NOSE_RADIUS, -1.0), 1.0))
    pitch = nose_pitch
    pitch += _ramp(nose_pitch, NOSE_PITCH_TRUSTED, NOSE_PITCH_FOLD) * (rigid_pitch - pitch)
    pitch += _ramp(rigid_pitch, RIGID_PITCH_FAR, RIGID_PITCH_FAR + RIGID_PITCH_RAMP) * (rigid_pitch - pitch)
    pitch += _ramp(abs(yaw), *EYE_SCALE_YAW) * (rigid_pitch - pitch)
    return HeadPose(math.degrees(yaw), math.degrees(pitch), roll)


def _ramp(value: float, start: float, end: float) -> float:
    """0 below start, 1 above end, linear between."""
    return min(max((value - start) / (end - start), 0.0), 1.0)
