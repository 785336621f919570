"""Audit signing for tests: a key pair and an anchor file in the test's folder, as `lfr serve` wires them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from lfr.adapters.signing import Ed25519Keyring, Ed25519Signer, FileAnchor, write_key_pair
from lfr.adapters.storage.sql import SqlStore
from lfr.domain.audit import ChainHead
from lfr.domain.checkpoint import sign_checkpoint
from lfr.domain.ports import UnitOfWorkFactory
from lfr.services.audit import AuditService


def signed_audit(store: UnitOfWorkFactory, folder: Path, signer: Ed25519Signer | None = None) -> AuditService:
    signer = signer or write_key_pair(folder / "keys" / "audit-signing.pem")
    return AuditService(store, signer, Ed25519Keyring([signer.public]), FileAnchor(folder / "anchor.jsonl"))


def forge_checkpoint_row(store: SqlStore) -> None:
    """What a DBA with a key of their own can add: a well-formed checkpoint of the (rewritten) head."""
    with store.engine.begin() as sql:
        seq, chain_hash = sql.execute(text("SELECT seq, hash FROM audit_chain_head WHERE id = 1")).one()
        from datetime import UTC, datetime

        forged = sign_checkpoint(Ed25519Signer.generate(), ChainHead(seq, chain_hash), datetime.now(UTC))
        sql.execute(
            text(
                "INSERT INTO audit_checkpoints (key_id, seq, chain_hash, at_iso, signature) "
                "VALUES (:k, :s, :h, :a, :sig)"
            ),
            {
                "k": forged.key_id,
                "s": forged.seq,
                "h": forged.chain_hash,
                "a": forged.at.isoformat(),
                "sig": forged.signature,
            },
        )
