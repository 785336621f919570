"""Signed checkpoints: what makes the audit chain hold against someone who can write the database.

A checkpoint is the matcher's signature over (key id, last record's seq, that record's chain hash, time).
The chain hash covers every earlier record, so one valid signature fixes the whole history up to that
record. The latest checkpoints are also appended to an anchor outside the database (a file the database
account cannot write, or an external log), so deleting the checkpoints kept in the database does not help
either. Verification then tells, and names, three kinds of tampering that the unkeyed chain misses:

- history rewritten and rehashed: a checkpointed record's hash no longer matches its signature;
- records deleted (and the rest renumbered): ditto, or the chain now ends before a checkpoint;
- the tail cut and the head moved: a checkpoint covers a record beyond the new end.

Signing and checking are ports (Signer and SignatureChecker below, CheckpointSigner and CheckpointKeyring
in lfr/domain/ports.py), implemented with Ed25519 in lfr/adapters/signing.py; this module stays pure.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lfr.domain.audit import (
    GENESIS_HASH,
    AuditRecord,
    ChainHead,
    ChainVerification,
    head_fault,
    link_fault,
)
from lfr.domain.errors import InvalidInput

FORMAT = "lfr-audit-checkpoint-v1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    key_id: str
    seq: int
    chain_hash: str
    at: datetime
    signature: str  # base64 of the signature over `message()`

    def message(self) -> bytes:
        return checkpoint_message(self.key_id, self.seq, self.chain_hash, self.at)

    def describe(self) -> str:
        return f"signed by key {self.key_id} at {self.at.isoformat(timespec='seconds')}"

    def signature_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError):
            return b""


def checkpoint_message(key_id: str, seq: int, chain_hash: str, at: datetime) -> bytes:
    """The exact bytes signed: a format tag, so a signature cannot be replayed as anything else."""
    fields = [FORMAT, key_id, seq, chain_hash, at.isoformat(timespec="microseconds")]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()


class Signer(Protocol):
    @property
    def key_id(self) -> str: ...
    def sign(self, message: bytes) -> bytes: ...


class SignatureChecker(Protocol):
    def trusts(self, key_id: str) -> bool: ...
    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool: ...


def sign_checkpoint(signer: Signer, head: ChainHead, at: datetime) -> Checkpoint:
    signature = signer.sign(checkpoint_message(signer.key_id, head.seq, head.hash, at))
    return Checkpoint(signer.key_id, head.seq, head.hash, at, base64.b64encode(signature).decode())


def checkpoint_to_dict(c: Checkpoint) -> dict[str, object]:
    return {
        "format": FORMAT,
        "key_id": c.key_id,
        "seq": c.seq,
        "chain_hash": c.chain_hash,
        "at": c.at.isoformat(timespec="microseconds"),
        "signature": c.signature,
    }


def checkpoint_from_dict(data: Mapping[str, object]) -> Checkpoint:
    """Raises InvalidInput for anything that is not a checkpoint of this format."""
    try:
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, not {FORMAT!r}")
        seq, at = data["seq"], data["at"]
        key_id, chain_hash, signature = data["key_id"], data["chain_hash"], data["signature"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError("seq is not a positive integer")
        if not all(isinstance(v, str) for v in (at, key_id, chain_hash, signature)):
            raise ValueError("a text field is not text")
        when = datetime.fromisoformat(str(at))
        if when.tzinfo is None:
            raise ValueError("at has no timezone")
        return Checkpoint(str(key_id), seq, str(chain_hash), when, str(signature))
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"not a valid audit checkpoint: {exc}") from exc


def _fail(checked: int, seq: int, reason: str, checkpoints: int = 0) -> ChainVerification:
    return ChainVerification(False, checked, seq, reason, checkpoints_checked=checkpoints)


def verify_anchored(
    records: Iterable[AuditRecord],
    checkpoints: Iterable[Checkpoint],
    keyring: SignatureChecker,
    head: ChainHead | None = None,
    partial: bool = False,
) -> ChainVerification:
    """Walks the chain and compares it with every signed checkpoint.

    `partial`: the records are an export that starts after record 1; the first record's link is taken
    as given (the checkpoints still fix every record from there on). A checkpoint signed by an unknown
    key or with a bad signature fails the verification: someone tried to vouch for a chain falsely.
    """
    ordered = sorted(set(checkpoints), key=lambda c: (c.seq, c.at, c.key_id))
    for cp in ordered:
        if not keyring.trusts(cp.key_id):
            return _fail(
                0,
                cp.seq,
                f"a checkpoint for record {cp.seq} ({cp.describe()}) is signed by a key that is not in "
                "the trusted keyring: it was not made by this deployment",
            )
        if not keyring.verify(cp.key_id, cp.message(), cp.signature_bytes()):
            return _fail(
                0,
                cp.seq,
                f"the checkpoint for record {cp.seq} ({cp.describe()}) has an invalid signature: "
                "it was forged or altered",
            )
    by_seq: dict[int, list[Checkpoint]] = {}
    for cp in ordered:
        by_seq.setdefault(cp.seq, []).append(cp)

    first = True
    start_seq, expected_seq, prev_hash, checked = 1, 1, GENESIS_HASH, 0
    anchored, used = 0, 0
    for record in records:
        if first and partial:
            start_seq, expected_seq, prev_hash = record.seq, record.seq, record.prev_hash
            by_seq = {s: cps for s, cps in by_seq.items() if s >= record.seq}
        first = False
        if (fault := link_fault(record, expected_seq, prev_hash, checked)) is not None:
            return ChainVerification(
                False, fault.records_checked, fault.first_bad_seq, fault.reason, checkpoints_checked=used
            )
        for cp in by_seq.get(record.seq, []):
            if cp.chain_hash != record.hash:
                lo = anchored + 1 if anchored else start_seq
                return _fail(
                    checked,
                    lo,
                    f"records {lo} to {record.seq} were rewritten: record {record.seq} no longer has the "
                    f"hash its checkpoint ({cp.describe()}) vouches for",
                    used,
                )
            used += 1
            anchored = record.seq
        checked += 1
        expected_seq, prev_hash = record.seq + 1, record.hash
    last = expected_seq - 1
    beyond = [cp for seq, cps in by_seq.items() if seq > last for cp in cps]
    if beyond:
        cp = max(beyond, key=lambda c: c.seq)
        return _fail(
            checked,
            last + 1,
            f"the chain ends at record {last} but a checkpoint ({cp.describe()}) vouches for record "
            f"{cp.seq}: records {last + 1} to {cp.seq} were removed",
            used,
        )
    if (fault := head_fault(head, last, prev_hash, checked)) is not None:
        return ChainVerification(
            False, fault.records_checked, fault.first_bad_seq, fault.reason, checkpoints_checked=used
        )
    return ChainVerification(True, checked, checkpoints_checked=used, anchored_seq=anchored)
