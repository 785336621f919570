"""Envelope encryption of face images at rest (alert crops, watchlist reference images).

Each image gets its own random 256-bit data key; the image is sealed with AES-256-GCM under it, with the
row it belongs to ("alert:<id>", "subject:<id>") as associated data, so a sealed image moved to another
row does not open. The data key is wrapped (RFC 3394 AES key wrap) by a key-encryption key that lives
outside the database: a file by default, or any KeyWrapper (the hook for a KMS or an HSM). The database
holds only:

    b"LFRE1" | kek id (8) | wrapped key length (2, big-endian) | wrapped key | nonce (12) | ciphertext+tag

Rows written before encryption was configured start with the JPEG marker FF D8 instead, and are read
as they are until `reseal_plaintext` (run at start) seals them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from lfr.domain.errors import InvalidInput, StoreUnavailable

if TYPE_CHECKING:
    from lfr.config import EncryptionSettings

logger = logging.getLogger(__name__)

MAGIC = b"LFRE1"
JPEG_START = b"\xff\xd8"
KEK_BYTES = 32
NONCE_BYTES = 12


class KeyWrapper(Protocol):
    """Wraps and unwraps data keys with a key-encryption key the database never sees (file, KMS, HSM)."""

    @property
    def key_id(self) -> bytes:
        """8 bytes naming the key that `wrap` uses now."""
        ...

    def wrap(self, data_key: bytes) -> bytes: ...
    def unwrap(self, key_id: bytes, wrapped: bytes) -> bytes:
        """Raises StoreUnavailable if no key with this id is held or the wrapped key does not open."""
        ...


def kek_id(kek: bytes) -> bytes:
    return hashlib.sha256(b"lfr-kek-id" + kek).digest()[:8]


class FileKeyWrapper:
    """Key-encryption keys read from files: the current one wraps, retired ones still unwrap (rotation)."""

    def __init__(self, current: bytes, retired: Sequence[bytes] = ()) -> None:
        self._current = current
        self._id = kek_id(current)
        self._keys = {kek_id(k): k for k in (*retired, current)}

    @classmethod
    def from_files(cls, current: Path, retired: Sequence[Path] = ()) -> FileKeyWrapper:
        return cls(read_kek(current), [read_kek(p) for p in retired])

    @property
    def key_id(self) -> bytes:
        return self._id

    def wrap(self, data_key: bytes) -> bytes:
        return aes_key_wrap(self._current, data_key)

    def unwrap(self, key_id: bytes, wrapped: bytes) -> bytes:
        kek = self._keys.get(key_id)
        if kek is None:
            raise StoreUnavailable(
                f"an image is sealed under key-encryption key {key_id.hex()}, which is not configured"
            )
        try:
            return aes_key_unwrap(kek, wrapped)
        except InvalidUnwrap as exc:
            raise StoreUnavailable("an image's data key does not unwrap: it was altered") from exc


def read_kek(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the image encryption key {path}: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise InvalidInput(f"{path} must hold {KEK_BYTES} bytes as hex (`lfr db keygen-images`)") from exc
    if len(key) != KEK_BYTES:
        raise InvalidInput(f"{path} must hold {KEK_BYTES} bytes as hex, not {len(key)}")
    return key


def write_kek(path: Path) -> bytes:
    """A new random key-encryption key as hex, mode 0600; never overwrites an existing file."""
    key = secrets.token_bytes(KEK_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise InvalidInput(f"{path} already exists: refusing to overwrite an encryption key") from exc
    with os.fdopen(fd, "w") as out:
        out.write(key.hex() + "\n")
        out.flush()
        os.fsync(out.fileno())
    return key


class EnvelopeSealer:
    """The ImageSealer port: seal on write, open only when a row is read back."""

    def __init__(self, wrapper: KeyWrapper) -> None:
        self._wrapper = wrapper

    def seal(self, plaintext: bytes, context: str) -> bytes:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(data_key).encrypt(nonce, plaintext, context.encode())
        wrapped = self._wrapper.wrap(data_key)
        return b"".join(
            [MAGIC, self._wrapper.key_id, len(wrapped).to_bytes(2, "big"), wrapped, nonce, sealed]
        )

    def open(self, stored: bytes, context: str) -> bytes:
        if not stored.startswith(MAGIC):
            return stored  # written before encryption was configured (a JPEG); resealed at start
        at = len(MAGIC)
        key_id, at = stored[at : at + 8], at + 8
        length, at = int.from_bytes(stored[at : at + 2], "big"), at + 2
        wrapped, at = stored[at : at + length], at + length
        nonce, sealed = stored[at : at + NONCE_BYTES], stored[at + NONCE_BYTES :]
        data_key = self._wrapper.unwrap(key_id, wrapped)
        try:
            return AESGCM(data_key).decrypt(nonce, sealed, context.encode())
        except (InvalidTag, ValueError) as exc:
            raise StoreUnavailable(
                f"the image of {context} does not decrypt: it was altered or moved"
            ) from exc

    @staticmethod
    def is_sealed(stored: bytes) -> bool:
        return stored.startswith(MAGIC)


def image_sealer(settings: EncryptionSettings, store_url: str) -> EnvelopeSealer | None:
    """The configured sealer. SQLite without a key file: one created in <database folder>/keys on first
    start (a warning; fine for the demo, not for production, where the key belongs on other storage).
    memory://: a throwaway key. PostgreSQL without one: images stored in clear, loudly."""
    key_file = settings.key_file
    if key_file is None and store_url.startswith("sqlite:"):
        from lfr.adapters.storage.sql.engine import parse_store_url

        database = parse_store_url(store_url).database
        key_file = Path(database or ".").expanduser().parent / "keys" / "image-kek.hex"
    if key_file is None:
        if store_url.startswith("memory://"):
            return EnvelopeSealer(FileKeyWrapper(secrets.token_bytes(KEK_BYTES)))
        logger.error("image encryption is OFF: set encryption.key_file; crops are stored in clear")
        return None
    if not key_file.exists():
        if not settings.create_missing_key:
            raise InvalidInput(
                f"the image encryption key {key_file} does not exist: create it with "
                f"`lfr db keygen-images {key_file}` (encryption.create_missing_key is off)"
            )
        write_kek(key_file)
        logger.warning(
            "created image encryption key %s: keep it off the database's disk and back it up; "
            "without it no stored crop or reference image can be read",
            key_file,
        )
    return EnvelopeSealer(FileKeyWrapper.from_files(key_file, settings.retired_key_files))
