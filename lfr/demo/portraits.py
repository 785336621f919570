"""Head-and-shoulders cut-outs of one person from a photo, ready to walk through the demo's clip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from lfr.adapters.embedder import DetectedFace
from lfr.domain.errors import InvalidInput

# Around the face box: the person's hair above, chin and shoulders below, a little room either side.
CONTEXT_SIDE = 0.45
CONTEXT_ABOVE = 0.45
CONTEXT_BELOW = 0.65


class FaceDetector(Protocol):
    def detect(self, image_bgr: np.ndarray, max_faces: int = 0) -> list[DetectedFace]: ...


class DemoInputError(InvalidInput):
    """An image or file the demo was given cannot be used; the message names it."""


def central_face(faces: Sequence[DetectedFace], shape: tuple[int, ...]) -> DetectedFace:
    centre = np.array([shape[1] / 2, shape[0] / 2])
    return min(faces, key=lambda f: float(np.linalg.norm((f.bbox[:2] + f.bbox[2:4]) / 2 - centre)))


def cut_portrait(image: np.ndarray, face: DetectedFace, others: Sequence[DetectedFace]) -> np.ndarray:
    """`face` with context, as a new image. Other faces that fall inside are blurred beyond detection, so
    every face in the clip belongs to the one person it is meant to show (the demo's ground truth)."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in face.bbox[:4])
    w, h = x2 - x1, y2 - y1
    left, right = max(0, int(x1 - CONTEXT_SIDE * w)), min(width, int(x2 + CONTEXT_SIDE * w))
    top, bottom = max(0, int(y1 - CONTEXT_ABOVE * h)), min(height, int(y2 + CONTEXT_BELOW * h))
    portrait = image[top:bottom, left:right].copy()
    for other in others:
        ox1, oy1, ox2, oy2 = (float(v) for v in other.bbox[:4])
        grow_x, grow_y = 0.2 * (ox2 - ox1), 0.2 * (oy2 - oy1)
        bx1, by1 = max(0, int(ox1 - grow_x) - left), max(0, int(oy1 - grow_y) - top)
        bx2, by2 = (
            min(portrait.shape[1], int(ox2 + grow_x) - left),
            min(portrait.shape[0], int(oy2 + grow_y) - top),
        )
        if bx2 > bx1 and by2 > by1:
            region = portrait[by1:by2, bx1:bx2]
            portrait[by1:by2, bx1:bx2] = cv2.blur(region, (max(3, region.shape[1]), max(3, region.shape[0])))
    return portrait


def portrait_from_file(detector: FaceDetector, path: Path) -> tuple[np.ndarray, float]:
    """The portrait of the central face in the image at `path`, and that face's height in pixels."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DemoInputError(f"{path}: not a readable image")
    faces = detector.detect(image)
    if not faces:
        raise DemoInputError(f"{path}: no face found")
    chosen = central_face(faces, image.shape)
    return cut_portrait(image, chosen, [f for f in faces if f is not chosen]), chosen.height
