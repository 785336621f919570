"""Quality measurements on synthetic faces: pose from keypoints, sharpness, crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lfr.adapters.camera.crops import crop_pixels, encode_jpeg
from lfr.adapters.face_quality import sharpness
from lfr.adapters.head_pose import estimate_head_pose
from lfr.domain.errors import InvalidCrop

# insightface's ArcFace alignment template: the keypoints of a frontal face.
FRONTAL = np.array(
    [[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]], dtype=np.float32
)


def rotated(points: np.ndarray, degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = points.mean(axis=0)
    return (points - centre) @ matrix.T + centre


def test_frontal_template_has_no_yaw_or_pitch_even_when_rolled_or_scaled() -> None:
    for points in (FRONTAL, rotated(FRONTAL, 25), FRONTAL * 3 + 40):
        yaw, pitch, _ = estimate_head_pose(points)
        assert abs(yaw) < 2
        assert abs(pitch) < 2


def test_nose_off_centre_reads_as_yaw_with_its_sign() -> None:
    turned = FRONTAL.copy()
    turned[2, 0] += 12
    yaw, pitch, _ = estimate_head_pose(turned)
    assert yaw > 25
    # Moving the nose alone is not a rigid turn: a head turned ~30 degrees would also show its eye line
    # cos(30) = 13% shorter, and pitch takes its scale from the eye line, so here it reads ~10 degrees up.
    assert abs(pitch) < 12
    turned[2, 0] -= 24
    assert estimate_head_pose(turned)[0] < -25


def test_nose_near_the_mouth_reads_as_looking_down() -> None:
    down = FRONTAL.copy()
    down[2, 1] += 10
    assert estimate_head_pose(down)[1] > 20
    up = FRONTAL.copy()
    up[2, 1] -= 10
    assert estimate_head_pose(up)[1] < -20


def test_blurring_lowers_sharpness() -> None:
    rng = np.random.default_rng(0)
    face = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    assert sharpness(cv2.GaussianBlur(face, (9, 9), 3)) < sharpness(face) / 10


def test_crop_is_bounded_and_fits_the_byte_limit() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    pixels = crop_pixels(image, np.array([600.0, 200.0, 900.0, 560.0]), max_side=144)
    assert max(pixels.shape[:2]) == 144
    jpeg = encode_jpeg(pixels, 85, 60 * 1024)
    assert isinstance(jpeg, bytearray)
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert len(jpeg) <= 60 * 1024
    assert cv2.imdecode(np.frombuffer(bytes(jpeg), np.uint8), cv2.IMREAD_COLOR).shape[:2] == pixels.shape[:2]


def test_noise_crop_that_cannot_fit_is_refused() -> None:
    noise = np.random.default_rng(2).integers(0, 255, (160, 160, 3), dtype=np.uint8)
    with pytest.raises(InvalidCrop, match="does not fit"):
        encode_jpeg(noise, 85, 1024)


def test_face_box_outside_the_frame_is_refused() -> None:
    with pytest.raises(InvalidCrop):
        crop_pixels(np.zeros((100, 100, 3), np.uint8), np.array([150.0, 150.0, 200.0, 200.0]), 144)
