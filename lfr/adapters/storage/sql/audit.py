from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update

from lfr.adapters.storage.sql.schema import audit_chain_head as h
from lfr.adapters.storage.sql.schema import audit_checkpoints as cp
from lfr.adapters.storage.sql.schema import audit_records as t
from lfr.adapters.storage.sql.tx import Tx
from lfr.domain.audit import AuditEvent, AuditRecord, ChainHead, next_record
from lfr.domain.checkpoint import Checkpoint
from lfr.domain.errors import StoreUnavailable

HEAD_ROW_ID = 1
_PAGE = 1000

# Built once: every alert appends a record (see Tx's Params).
_LOCK_HEAD = select(h).where(h.c.id == HEAD_ROW_ID).with_for_update()
_RECORD = select(t).where(t.c.seq == bindparam("record_seq"))
_APPEND = insert(t)
_MOVE_HEAD = (
    update(h).where(h.c.id == HEAD_ROW_ID).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def lock_chain_head(tx: Tx) -> Row[Any]:
    """Locks the chain head row until the transaction ends and returns it.

    PostgreSQL: SELECT ... FOR UPDATE makes every other appender, in this process or another replica,
    wait here. SQLite renders no FOR UPDATE; there the transaction already holds the database's single
    write lock from BEGIN IMMEDIATE.
    """
    row = tx.first(_LOCK_HEAD, "locking the audit chain")
    if row is None:
        raise StoreUnavailable("the audit chain head row is missing: the schema was not migrated")
    return row


class SqlAudit:
    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def append(self, event: AuditEvent) -> AuditRecord:
        head = lock_chain_head(self._tx)
        previous = None
        if head.seq > 0:
            last = self._tx.first(_RECORD, "reading the audit chain", params={"record_seq": head.seq})
            if last is None:
                raise StoreUnavailable(f"the audit chain head names record {head.seq}, which is missing")
            previous = _from_row(last)
        record = next_record(previous, event)
        doing = f"appending audit record {record.seq}"
        self._tx.run(_APPEND, doing, params=_to_row(record))
        self._tx.run(_MOVE_HEAD, doing, params={"new_seq": record.seq, "new_hash": record.hash})
        return record

    def records(self, from_seq: int = 1) -> Iterator[AuditRecord]:
        """Streams in pages by seq, so a long chain is never held in memory at once."""
        after = from_seq - 1
        while True:
            rows = self._tx.rows(
                select(t).where(t.c.seq > after).order_by(t.c.seq).limit(_PAGE), "reading the audit chain"
            )
            yield from (_from_row(r) for r in rows)
            if len(rows) < _PAGE:
                return
            after = rows[-1].seq

    def head(self) -> ChainHead | None:
        row = self._tx.first(select(h).where(h.c.id == HEAD_ROW_ID), "reading the audit chain head")
        if row is None or row.seq == 0:
            return None
        return ChainHead(int(row.seq), row.hash)

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        values = {
            "key_id": checkpoint.key_id,
            "seq": checkpoint.seq,
            "chain_hash": checkpoint.chain_hash,
            "at_iso": checkpoint.at.isoformat(timespec="microseconds"),
            "signature": checkpoint.signature,
        }
        self._tx.run(insert(cp).values(values), f"storing the checkpoint of audit record {checkpoint.seq}")

    def checkpoints(self, from_seq: int = 1) -> list[Checkpoint]:
        rows = self._tx.rows(
            select(cp).where(cp.c.seq >= from_seq).order_by(cp.c.seq, cp.c.id), "reading audit checkpoints"
        )
        return [
            Checkpoint(r.key_id, int(r.seq), r.chain_hash, datetime.fromisoformat(r.at_iso), r.signature)
            for r in rows
        ]


def _to_row(r: AuditRecord) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "at_iso": r.at.isoformat(timespec="microseconds"),
        "actor": r.actor,
        "action": r.action,
        "subject_kind": r.subject_kind,
        "subject_id": r.subject_id,
        "details_json": r.details_json,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    }


def _from_row(r: Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=int(r.seq),
        at=datetime.fromisoformat(r.at_iso),
        actor=r.actor,
        action=r.action,
        subject_kind=r.subject_kind,
        subject_id=r.subject_id,
        details_json=r.details_json,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )
