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
                width, height = image.size
                if not (0 < width <= self._max_side_px and 0 < height <= self._max_side_px):
                    raise InvalidCrop(
                        f"face crop declares {width}x{height} px, outside 1..{self._max_side_px}"
                    )
                image.verify()
        except InvalidCrop:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InvalidCrop("face crop is not a readable JPEG") from exc
        except Exception as exc:
            # A crafted header can make PIL raise anything: DecompressionBombError (or its warning, where
            # warnings are errors), ValueError, struct.error, ... Whatever it is, it is this crop's fault
            # alone, and must be refused as a bad crop rather than fail the batch it travels in.
            raise InvalidCrop(f"face crop is not a usable JPEG ({type(exc).__name__})") from exc
