"""Small face crops for officers to compare with the watchlist photo: bounded side and bytes, JPEG."""

from __future__ import annotations

import cv2
import numpy as np

from lfr.domain.errors import InvalidCrop


def crop_pixels(image_bgr: np.ndarray, bbox: np.ndarray, max_side: int, margin: float = 0.25) -> np.ndarray:
    """A copy of the face box grown by `margin` on each side, clipped to the frame, shrunk to `max_side`."""
    height, width = image_bgr.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox[:4])
    grow_x, grow_y = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(x1 - grow_x)), max(0, int(y1 - grow_y))
    right, bottom = min(width, int(x2 + grow_x) + 1), min(height, int(y2 + grow_y) + 1)
    if right <= left or bottom <= top:
        raise InvalidCrop("face box lies outside the frame")
    region = image_bgr[top:bottom, left:right]
    scale = max_side / max(region.shape[:2])
    if scale < 1:
        size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        return cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    return region.copy()


def encode_jpeg(pixels: np.ndarray, quality: int, max_bytes: int) -> bytearray:
    """JPEG bytes under `max_bytes`, lowering the quality if needed (a bytearray so it can be wiped)."""
    for attempt in (quality, 70, 50, 30):
        if attempt > quality:
            continue
        ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, attempt])
        if not ok:
            raise InvalidCrop("OpenCV could not encode the face crop")
        if encoded.nbytes <= max_bytes:
            data = bytearray(encoded.tobytes())
            encoded.fill(0)
            return data
        encoded.fill(0)
    raise InvalidCrop(f"face crop does not fit in {max_bytes} bytes")
