"""Ed25519 keys for audit checkpoints (the `cryptography` package), and anchors outside the database.

Key files are PEM: the private key PKCS#8 (mode 0600), its public key SubjectPublicKeyInfo beside it as
`<file>.pub`. A key's id is the first 16 hex digits of the SHA-256 of its raw 32-byte public key, so a
checkpoint names the key that signed it and a keyring can hold old keys after a rotation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lfr.domain.checkpoint import Checkpoint, checkpoint_from_dict, checkpoint_to_dict
from lfr.domain.errors import InvalidInput

if TYPE_CHECKING:
    from lfr.config import AuditSettings

logger = logging.getLogger(__name__)


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class Ed25519Signer:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self._key_id = key_id_of(self.public)

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())


def public_key_path(private_key_file: Path) -> Path:
    return private_key_file.with_name(private_key_file.name + ".pub")


def write_key_pair(private_key_file: Path) -> Ed25519Signer:
    """Generates a key pair: the private key (0600, never overwritten) and `<file>.pub`."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise InvalidInput(f"{private_key_file} already exists: refusing to overwrite a signing key") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    public_key_path(private_key_file).write_bytes(public_pem(private.public_key()))
    return Ed25519Signer(private)


def load_signer(private_key_file: Path) -> Ed25519Signer:
    try:
        data = private_key_file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the audit signing key {private_key_file}: {exc.strerror}") from exc
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{private_key_file} is not an unencrypted PEM private key") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise InvalidInput(f"{private_key_file} is not an Ed25519 key")
    return Ed25519Signer(private)


def load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in a PEM file (one or several concatenated), or in a folder's *.pub/*.pem."""
    if path.is_dir():
        return [
            k for p in sorted(path.iterdir()) if p.suffix in (".pub", ".pem") for k in load_public_keys(p)
        ]
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read public key file {path}: {exc.strerror}") from exc
    keys = []
    marker = b"-----END PUBLIC KEY-----"
    for block in text.split(marker)[:-1]:
        try:
            key = serialization.load_pem_public_key(block + marker)
        except ValueError as exc:
            raise InvalidInput(f"{path} holds something that is not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidInput(f"{path} holds a public key that is not Ed25519")
        keys.append(key)
    if not keys:
        raise InvalidInput(f"{path} holds no PEM public key")
    return keys


class Ed25519Keyring:
    """The public keys whose checkpoints are trusted: this deployment's current and retired keys."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys = {key_id_of(k): k for k in keys}

    @classmethod
    def from_files(cls, paths: Sequence[Path], also: Iterable[Ed25519PublicKey] = ()) -> Ed25519Keyring:
        return cls([*also, *(k for p in paths for k in load_public_keys(p))])

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def trusts(self, key_id: str) -> bool:
        return key_id in self._keys

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def checkpoint_line(checkpoint: Checkpoint) -> str:
    return json.dumps(checkpoint_to_dict(checkpoint), sort_keys=True, separators=(",", ":")) + "\n"


def parse_checkpoint_lines(lines: Iterable[str], source: str) -> list[Checkpoint]:
    found = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{source} line {number} is not JSON: the anchor was altered") from exc
        if not isinstance(data, dict):
            raise InvalidInput(f"{source} line {number} is not a checkpoint: the anchor was altered")
        try:
            found.append(checkpoint_from_dict(data))
        except InvalidInput as exc:
            raise InvalidInput(f"{source} line {number}: {exc}") from exc
    return found


class FileAnchor:
    """Checkpoints appended, one JSON line each, to a file outside the database.

    Opened O_APPEND for each write and fsynced, so a crash leaves whole lines. Make it append-only for
    everyone but the matcher's OS account (docs/security/audit-and-data-at-rest.md: ownership,
    `chattr +a`); the database's own account, and anyone holding only database credentials, has no
    access to it at all.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, checkpoint_line(checkpoint).encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def checkpoints(self) -> list[Checkpoint]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the audit anchor {self.path}: {exc}") from exc
        return parse_checkpoint_lines(text.splitlines(), str(self.path))


class MemoryAnchor:
    """For memory:// stores (tests, benchmarks): nothing outlives the process anyway."""

    def __init__(self) -> None:
        self._checkpoints: list[Checkpoint] = []

    def append(self, checkpoint: Checkpoint) -> None:
        self._checkpoints.append(checkpoint)

    def checkpoints(self) -> list[Checkpoint]:
        return list(self._checkpoints)


class CommandAnchor:
    """The hook for an external log: runs a command per checkpoint with its JSON line on stdin (for
    example `logger -t lfr-audit` to a remote syslog, or a script posting to a transparency log). It
    is write-only: verification reads the copies in the anchor file and the database."""

    TIMEOUT_S = 10

    def __init__(self, command: Sequence[str], inner: FileAnchor | MemoryAnchor | None = None) -> None:
        self._command = list(command)
        self._inner = inner

    def append(self, checkpoint: Checkpoint) -> None:
        if self._inner is not None:
            self._inner.append(checkpoint)
        try:
            subprocess.run(
                self._command,
                input=checkpoint_line(checkpoint).encode(),
                check=True,
                timeout=self.TIMEOUT_S,
                capture_output=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            # Logged, not raised: the file anchor (if any) has the checkpoint; the next one retries.
            logger.error("the audit anchor command failed (%s)", type(exc).__name__)

    def checkpoints(self) -> list[Checkpoint]:
        return self._inner.checkpoints() if self._inner is not None else []


@dataclass(frozen=True)
class AuditSigning:
    signer: Ed25519Signer | None
    keyring: Ed25519Keyring
    anchor: FileAnchor | MemoryAnchor | CommandAnchor | None


def audit_signing(settings: AuditSettings, store_url: str) -> AuditSigning:
    """Resolves the audit key, keyring and anchor for a store.

    SQLite (embedded, the demo): the key and anchor default to an `audit` folder beside the database and
    the key is created on first start, with a warning, unless `create_missing_key` is off. memory://: a
    throwaway key and an in-memory anchor. PostgreSQL without a configured key: no checkpoints, loudly.
    """
    key_file, anchor_file = settings.signing_key_file, settings.anchor_file
    folder = _sqlite_folder(store_url)
    if folder is not None:
        key_file = key_file or folder / "audit" / "signing-key.pem"
        anchor_file = anchor_file or folder / "audit" / "anchor.jsonl"
    signer: Ed25519Signer | None
    if key_file is not None:
        if key_file.exists():
            signer = load_signer(key_file)
        elif settings.create_missing_key:
            signer = write_key_pair(key_file)
            logger.warning(
                "created audit signing key %s (key id %s): keep its .pub with your records, and move the "
                "key out of reach of the database's administrators",
                key_file,
                signer.key_id,
            )
        else:
            raise InvalidInput(
                f"the audit signing key {key_file} does not exist: create it with `lfr audit keygen "
                f"{key_file}` (audit.create_missing_key is off)"
            )
    elif store_url.startswith("memory://"):
        signer = Ed25519Signer.generate()
    else:
        signer = None
        logger.error(
            "audit checkpoints are OFF: set audit.signing_key_file (and audit.anchor_file); without them "
            "a database administrator can rewrite the audit trail undetected"
        )
    own = [signer.public] if signer is not None else []
    keyring = Ed25519Keyring.from_files(settings.trusted_public_keys, also=own)
    inner: FileAnchor | MemoryAnchor | None = None
    if anchor_file is not None:
        inner = FileAnchor(anchor_file)
    elif store_url.startswith("memory://"):
        inner = MemoryAnchor()
    anchor: FileAnchor | MemoryAnchor | CommandAnchor | None = inner
    if settings.anchor_command:
        anchor = CommandAnchor(settings.anchor_command, inner)
    return AuditSigning(signer, keyring, anchor)


def _sqlite_folder(store_url: str) -> Path | None:
    if not store_url.startswith("sqlite:"):
        return None
    from lfr.adapters.storage.sql.engine import parse_store_url

    database = parse_store_url(store_url).database
    return Path(database).expanduser().parent if database else None
