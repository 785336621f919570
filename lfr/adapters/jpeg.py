"""Checks that a face crop is a JPEG of bounded size before anything keeps it."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from lfr.domain.errors import InvalidCrop

DEFAULT_MAX_CROP_BYTES = 64 * 1024


class JpegCropValidator:
    def __init__(self, max_bytes: int = DEFAULT_MAX_CROP_BYTES, max_side_px: int = 1024) -> None:
        self._max_bytes = max_bytes
        self._max_side_px = max_side_px

    def check_envelope(self, crop: bytes | bytearray) -> None:
        if not crop:
            raise InvalidCrop("face crop is empty")
        if len(crop) > self._max_bytes:
            raise InvalidCrop(f"face crop is {len(crop)} bytes, the limit is {self._max_bytes}")
        if not (crop[:3] == b"\xff\xd8\xff" and crop[-2:] == b"\xff\xd9"):
            raise InvalidCrop("face crop is not a complete JPEG")

    def __call__(self, crop: bytes | bytearray) -> None:
        self.check_envelope(crop)
        try:
            with Image.open(io.BytesIO(crop)) as image:
                if image.format != "JPEG":
                    raise InvalidCrop(f"face crop is {image.format}, not JPEG")
                if max(image.size) > self._max_side_px:
                    raise InvalidCrop(f"face crop is {image.size[0]}x{image.size[1]} px, too large")
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InvalidCrop("face crop is not a readable JPEG") from exc
