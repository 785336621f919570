"""A database administrator rewrites the audit trail with plain SQL, recomputing every unkeyed hash and
moving the chain head, as someone who has read lfr's source would. Each attack must be caught, on real
SQLite and PostgreSQL, by the signed checkpoints anchored outside the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from lfr.adapters.storage.sql import SqlStore
from lfr.domain.audit import GENESIS_HASH, AuditAction, AuditEvent, record_hash
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.services.audit import AuditService
from tests.integration.builders import T0
from tests.signing import signed_audit

AUDITOR = Principal("aud", PrincipalKind.USER, frozenset({Role.AUDITOR}))
Rows = list[dict[str, Any]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[SqlStore]:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_store_url"
    opened = SqlStore.open(request.getfixturevalue(fixture))
    yield opened
    opened.close()


def history() -> list[AuditEvent]:
    """A deployment as the trail records it: created and authorised by a supervisor, an alert raised,
    consulted three times, adjudicated, and the window closed."""
    steps = [
        (AuditAction.WINDOW_CREATED, "sam", "window", "win-1", {"purpose": "find wanted people"}),
        (AuditAction.WINDOW_AUTHORISED, "sam", "window", "win-1", {}),
        (AuditAction.WINDOW_ARMED, "system", "window", "win-1", {}),
        (AuditAction.ALERT_RAISED, "cam-1", "alert", "a-1", {"score": 0.91}),
        (AuditAction.ALERT_CONSULTED, "olly", "alert", "a-1", {}),
        (AuditAction.ALERT_CONSULTED, "otto", "alert", "a-1", {}),
        (AuditAction.ALERT_ADJUDICATED, "olly", "alert", "a-1", {"outcome": "confirmed"}),
        (AuditAction.ALERT_CONSULTED, "olly", "alert", "a-1", {}),
        (AuditAction.WINDOW_CLOSED, "sam", "window", "win-1", {"reason": "done"}),
    ]
    return [
        AuditEvent(action, actor, kind, subject, T0 + timedelta(seconds=n), details)
        for n, (action, actor, kind, subject, details) in enumerate(steps)
    ]


@pytest.fixture
def audit(store: SqlStore, tmp_path: Path) -> AuditService:
    """The trail of `history()`, checkpointed as a serving matcher does every minute."""
    service = signed_audit(store, tmp_path)
    with store() as uow:
        for step in history():
            uow.audit.append(step)
        uow.commit()
    service.checkpoint()
    verdict = service.verify(AUDITOR)
    assert verdict.ok, verdict
    assert verdict.checkpoints_checked >= 1
    return service


def rewrite_as_dba(store: SqlStore, edit: Callable[[Rows], Rows]) -> None:
    """Reads the whole trail, applies `edit`, renumbers and rehashes every record, moves the head, and
    deletes the checkpoints kept in the database too: all a database account can do."""
    with store.engine.begin() as sql:
        rows: Rows = [dict(r._mapping) for r in sql.execute(text("SELECT * FROM audit_records ORDER BY seq"))]
        rows = edit(rows)
        sql.execute(text("DELETE FROM audit_records"))
        previous = GENESIS_HASH
        for seq, row in enumerate(rows, start=1):
            from datetime import datetime

            row["seq"], row["prev_hash"] = seq, previous
            row["hash"] = record_hash(
                seq,
                datetime.fromisoformat(row["at_iso"]),
                row["actor"],
                row["action"],
                row["subject_kind"],
                row["subject_id"],
                row["details_json"],
                previous,
            )
            columns = ", ".join(row)
            sql.execute(
                text(f"INSERT INTO audit_records ({columns}) VALUES ({', '.join(':' + c for c in row)})"), row
            )
            previous = row["hash"]
        sql.execute(
            text("UPDATE audit_chain_head SET seq = :seq, hash = :hash WHERE id = 1"),
            {"seq": len(rows), "hash": previous},
        )
        sql.execute(text("DELETE FROM audit_checkpoints"))


def test_changing_who_authorised_a_window_is_detected(store: SqlStore, audit: AuditService) -> None:
    def reattribute(rows: Rows) -> Rows:
        for row in rows:
            if row["action"] == AuditAction.WINDOW_AUTHORISED:
                row["actor"] = "chief-inspector"
        return rows

    rewrite_as_dba(store, reattribute)
    verdict = audit.verify(AUDITOR)
    assert not verdict.ok
    assert verdict.first_bad_seq == 1  # the only checkpoint covers records 1..9: the rewrite lies in there
    assert "rewritten" in verdict.reason


def test_deleting_every_consultation_record_is_detected(store: SqlStore, audit: AuditService) -> None:
    rewrite_as_dba(store, lambda rows: [r for r in rows if r["action"] != AuditAction.ALERT_CONSULTED])
    verdict = audit.verify(AUDITOR)
    assert not verdict.ok
    # Six records remain; the anchored checkpoint covers nine.
    assert verdict.first_bad_seq == 7
    assert "removed" in verdict.reason


def test_cutting_the_tail_and_moving_the_head_is_detected(store: SqlStore, audit: AuditService) -> None:
    rewrite_as_dba(store, lambda rows: rows[:-3])
    verdict = audit.verify(AUDITOR)
    assert not verdict.ok
    assert verdict.first_bad_seq == 7
    assert verdict.records_checked == 6
    assert "removed" in verdict.reason


def test_a_rewrite_is_named_between_the_checkpoints_around_it(store: SqlStore, audit: AuditService) -> None:
    """Later checkpoints narrow down where history was changed: here, after the first nine records."""
    with store() as uow:
        for step in history():
            uow.audit.append(step)
        uow.commit()
    audit.checkpoint()

    def reattribute_last(rows: Rows) -> Rows:
        rows[-1]["actor"] = "someone-else"
        return rows

    rewrite_as_dba(store, reattribute_last)
    verdict = audit.verify(AUDITOR)
    assert not verdict.ok
    assert verdict.first_bad_seq == 10
    assert "records 10 to 18" in verdict.reason


def test_a_checkpoint_forged_into_the_database_is_rejected(store: SqlStore, audit: AuditService) -> None:
    """The DBA also inserts a checkpoint for the rewritten head, signed by a key of their own."""
    from tests.signing import forge_checkpoint_row

    rewrite_as_dba(store, lambda rows: rows[:-3])
    forge_checkpoint_row(store)
    verdict = audit.verify(AUDITOR)
    assert not verdict.ok
    assert "not in the trusted keyring" in verdict.reason or "removed" in verdict.reason


@pytest.mark.postgres
def test_two_replicas_with_their_own_keys_checkpoint_one_chain(
    postgres_store_url: str, tmp_path: Path
) -> None:
    """Each replica signs with its own key and anchors to its own file while both append: the checkpoints
    interleave on one unforked chain, and each replica's verification (trusting both keys) holds."""
    import threading

    from lfr.adapters.signing import Ed25519Keyring, FileAnchor, write_key_pair

    replicas = [SqlStore.open(postgres_store_url), SqlStore.open(postgres_store_url)]
    signers = [write_key_pair(tmp_path / f"replica-{n}.pem") for n in range(2)]
    keyring = Ed25519Keyring([s.public for s in signers])
    services = [
        AuditService(replicas[n], signers[n], keyring, FileAnchor(tmp_path / f"anchor-{n}.jsonl"))
        for n in range(2)
    ]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(30):
                with replicas[n]() as uow:
                    uow.audit.append(history()[i % len(history())])
                    uow.commit()
                services[n].checkpoint()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        for service in services:  # as each does within a minute, or at shutdown
            service.checkpoint()
        for service in services:
            verdict = service.verify(AUDITOR)
            assert verdict.ok, verdict
            assert verdict.records_checked == 60
        with replicas[0]() as uow:
            stored = uow.audit.checkpoints()
        assert {c.key_id for c in stored} == {s.key_id for s in signers}
        assert len(stored) >= 30

        rewrite_as_dba(replicas[0], lambda rows: rows[:-5])
        for service in services:
            assert not service.verify(AUDITOR).ok
    finally:
        for replica in replicas:
            replica.close()


def test_a_rewritten_chain_is_not_signed_afresh(store: SqlStore, audit: AuditService, tmp_path: Path) -> None:
    """The matcher's next checkpoint must not vouch for the rewritten history: it refuses, and the anchor
    is left as it was. A restarted matcher (a new service) refuses too: it reads its last checkpoint back
    from the anchor."""
    from lfr.adapters.signing import FileAnchor, load_signer
    from lfr.domain.errors import StoreUnavailable

    anchor = FileAnchor(tmp_path / "anchor.jsonl")
    before = anchor.checkpoints()
    with store() as uow:
        uow.audit.append(history()[0])
        uow.commit()

    def reattribute(rows: Rows) -> Rows:
        rows[1]["actor"] = "chief-inspector"
        return rows

    rewrite_as_dba(store, reattribute)
    with pytest.raises(StoreUnavailable, match="no longer leads from the last checkpoint"):
        audit.checkpoint()
    restarted = signed_audit(store, tmp_path, load_signer(tmp_path / "keys" / "audit-signing.pem"))
    with pytest.raises(StoreUnavailable, match="no longer leads from the last checkpoint"):
        restarted.checkpoint()
    assert anchor.checkpoints() == before


def test_an_untouched_chain_goes_on_being_signed_after_a_restart(
    store: SqlStore, audit: AuditService, tmp_path: Path
) -> None:
    from lfr.adapters.signing import load_signer

    restarted = signed_audit(store, tmp_path, load_signer(tmp_path / "keys" / "audit-signing.pem"))
    with store() as uow:
        for step in history():
            uow.audit.append(step)
        uow.commit()
    checkpoint = restarted.checkpoint()
    assert checkpoint is not None
    assert checkpoint.seq == 2 * len(history())
    assert restarted.verify(AUDITOR).ok
