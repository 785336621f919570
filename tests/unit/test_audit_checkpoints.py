"""Signed checkpoints without a server: key resolution, rotation, the anchor file, partial chains."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lfr.adapters.signing import (
    Ed25519Keyring,
    Ed25519Signer,
    FileAnchor,
    audit_signing,
    load_signer,
    write_key_pair,
)
from lfr.adapters.storage.memory import MemoryStore
from lfr.config import AuditSettings
from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.checkpoint import verify_anchored
from lfr.domain.errors import InvalidInput
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.services.audit import AuditService

AUDITOR = Principal("aud", PrincipalKind.USER, frozenset({Role.AUDITOR}))
T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)


def append(store: MemoryStore, n: int) -> None:
    with store() as uow:
        for i in range(n):
            uow.audit.append(
                AuditEvent(AuditAction.POLICY_WARNING, "sys", "x", str(i), T0 + timedelta(seconds=i))
            )
        uow.commit()


def test_embedded_store_creates_its_key_beside_the_database_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'lfr.db'}"
    with caplog.at_level(logging.WARNING):
        first = audit_signing(AuditSettings(), url)
    assert first.signer is not None
    assert "created audit signing key" in caplog.text
    key = tmp_path / "db" / "audit" / "signing-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "db" / "audit" / "signing-key.pem.pub").exists()
    again = audit_signing(AuditSettings(), url)  # a restart reuses it
    assert again.signer is not None
    assert again.signer.key_id == first.signer.key_id
    assert isinstance(again.anchor, FileAnchor)
    assert again.anchor.path == tmp_path / "db" / "audit" / "anchor.jsonl"


def test_a_missing_key_is_refused_when_creation_is_off(tmp_path: Path) -> None:
    settings = AuditSettings(signing_key_file=tmp_path / "nope.pem", create_missing_key=False)
    with pytest.raises(InvalidInput, match="lfr audit keygen"):
        audit_signing(settings, "sqlite:///" + str(tmp_path / "lfr.db"))


def test_postgres_without_a_key_signs_nothing_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        signing = audit_signing(AuditSettings(), "postgresql+psycopg://u@127.0.0.1/x")
    assert signing.signer is None
    assert "audit checkpoints are OFF" in caplog.text


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    write_key_pair(tmp_path / "k.pem")
    with pytest.raises(InvalidInput, match="refusing to overwrite"):
        write_key_pair(tmp_path / "k.pem")


def test_rotation_keeps_old_checkpoints_verifiable_through_the_keyring(tmp_path: Path) -> None:
    store = MemoryStore()
    anchor = FileAnchor(tmp_path / "anchor.jsonl")
    old = write_key_pair(tmp_path / "old.pem")
    append(store, 3)
    AuditService(store, old, Ed25519Keyring([old.public]), anchor).checkpoint()

    # Rotated: a new key signs; the old public key moves to trusted_public_keys.
    new = write_key_pair(tmp_path / "new.pem")
    settings = AuditSettings(
        signing_key_file=tmp_path / "new.pem",
        trusted_public_keys=[tmp_path / "old.pem.pub"],
        anchor_file=tmp_path / "anchor.jsonl",
    )
    signing = audit_signing(settings, "memory://")
    assert signing.signer is not None
    assert signing.signer.key_id == new.key_id
    rotated = AuditService(store, signing.signer, signing.keyring, signing.anchor)
    append(store, 2)
    rotated.checkpoint()
    verdict = rotated.verify(AUDITOR)
    assert verdict.ok, verdict
    assert verdict.checkpoints_checked == 2
    assert verdict.anchored_seq == 5

    forgetful = AuditService(store, new, Ed25519Keyring([new.public]), anchor)
    verdict = forgetful.verify(AUDITOR)
    assert not verdict.ok
    assert "not in the trusted keyring" in verdict.reason


def test_an_altered_anchor_file_fails_verification(tmp_path: Path) -> None:
    store = MemoryStore()
    signer = Ed25519Signer.generate()
    anchor = FileAnchor(tmp_path / "anchor.jsonl")
    service = AuditService(store, signer, Ed25519Keyring([signer.public]), anchor)
    append(store, 2)
    service.checkpoint()
    with anchor.path.open("a") as f:
        f.write("{not json\n")
    verdict = service.verify(AUDITOR)
    assert not verdict.ok
    assert "line 2 is not JSON" in verdict.reason


def test_an_unchanged_head_is_not_signed_again(tmp_path: Path) -> None:
    store = MemoryStore()
    signer = load_signer_roundtrip(tmp_path)
    anchor = FileAnchor(tmp_path / "anchor.jsonl")
    service = AuditService(store, signer, Ed25519Keyring([signer.public]), anchor)
    assert service.checkpoint() is None  # no record yet
    append(store, 1)
    first = service.checkpoint()
    assert service.checkpoint() == first
    assert len(anchor.checkpoints()) == 1
    assert service.checkpoint(force=True) != first
    assert len(anchor.checkpoints()) == 2


def test_a_partial_chain_is_fixed_by_its_checkpoints(tmp_path: Path) -> None:
    store = MemoryStore()
    signer = Ed25519Signer.generate()
    keyring = Ed25519Keyring([signer.public])
    service = AuditService(store, signer, keyring)
    append(store, 4)
    service.checkpoint()
    append(store, 4)
    last = service.checkpoint()
    with store() as uow:
        tail = list(uow.audit.records(5))
        checkpoints = uow.audit.checkpoints(5)
    assert [c.seq for c in checkpoints] == [8]
    verdict = verify_anchored(tail, checkpoints, keyring, partial=True)
    assert verdict.ok
    assert verdict.anchored_seq == 8
    import dataclasses

    tail[1] = dataclasses.replace(tail[1], actor="someone")
    verdict = verify_anchored(tail, checkpoints, keyring, partial=True)
    assert not verdict.ok
    assert verdict.first_bad_seq == 6
    assert last is not None


def load_signer_roundtrip(folder: Path) -> Ed25519Signer:
    written = write_key_pair(folder / "k.pem")
    loaded = load_signer(folder / "k.pem")
    assert loaded.key_id == written.key_id
    return loaded
