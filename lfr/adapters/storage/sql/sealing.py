"""Face images pass through the configured ImageSealer on their way into and out of the database."""

from __future__ import annotations

from lfr.domain.errors import StoreUnavailable
from lfr.domain.ports import ImageSealer

SEALED_MAGIC = b"LFRE1"  # lfr/adapters/envelope.py's format


def sealed(sealer: ImageSealer | None, image: bytes, context: str) -> bytes:
    return image if sealer is None else sealer.seal(image, context)


def opened(sealer: ImageSealer | None, stored: bytes, context: str) -> bytes:
    if sealer is not None:
        return sealer.open(stored, context)
    if stored.startswith(SEALED_MAGIC):
        raise StoreUnavailable(f"the image of {context} is encrypted and no image key is configured")
    return stored
