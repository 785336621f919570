"""A tamper-evident audit trail: each record's hash covers the previous record's hash and a canonical
encoding of its own fields, so any edit, deletion or reordering breaks the chain at a nameable record.
Truncating the tail is caught by comparing with the separately kept chain head.

The hash has no key, so someone who can write the database can rewrite a record and recompute every
later hash and the head. lfr/domain/checkpoint.py closes that gap with signed checkpoints kept outside
the database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

GENESIS_HASH = "0" * 64

JsonScalar = str | int | float | bool | None
Details = Mapping[str, object]  # JSON-serialisable; checked by canonical_details


class AuditAction(StrEnum):
    WINDOW_CREATED = "window.created"
    WINDOW_AUTHORISED = "window.authorised"
    WINDOW_AUTHORISATION_REFUSED = "window.authorisation_refused"
    WINDOW_ARMED = "window.armed"
    WINDOW_DISARMED = "window.disarmed"
    WINDOW_CLOSED = "window.closed"
    WATCHLIST_CREATED = "watchlist.created"
    WATCHLIST_SUBJECT_ADDED = "watchlist.subject_added"
    WATCHLIST_SUBJECT_REMOVED = "watchlist.subject_removed"
    WATCHLIST_SEALED = "watchlist.sealed"
    WATCHLIST_DESTROYED = "watchlist.destroyed"
    ALERT_RAISED = "alert.raised"
    ALERT_SEEN_AGAIN = "alert.seen_again"  # a later face of the same track matched the same subject
    ALERT_ADJUDICATED = "alert.adjudicated"
    ALERT_VERIFIED = "alert.verified"
    ALERT_AMENDED = "alert.amended"
    ALERT_CONSULTED = "alert.consulted"
    ALERT_PURGED = "alert.purged"
    OBSERVATIONS_ERASED = "observations.erased"
    PRINCIPAL_CHANGED = "principal.changed"
    EVALUATION_RECORDED = "evaluation.recorded"
    POLICY_WARNING = "policy.warning"
    # A whole matcher replica stopped matching (its clock disagreed with the store's, or it could not read
    # the store) or resumed; subject is the replica's name. Distinct from one window's armed / disarmed.
    MATCHER_DISARMED = "matcher.disarmed"
    MATCHER_REARMED = "matcher.rearmed"
    MATCHER_SUSPENDED = "matcher.suspended"  # an alert could not be made durable: matching stopped
    MATCHER_RESUMED = "matcher.resumed"  # the store writes again: matching goes on


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, before it has a place in the chain."""

    action: AuditAction
    actor: str
    subject_kind: str
    subject_id: str
    at: datetime
    details: Details = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: datetime
    actor: str
    action: str
    subject_kind: str
    subject_id: str
    details_json: str  # canonical JSON, stored verbatim so the hash can be recomputed byte for byte
    prev_hash: str
    hash: str

    @property
    def details(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.details_json)
        return loaded


def canonical_details(details: Details) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject_kind: str,
    subject_id: str,
    details_json: str,
    prev_hash: str,
) -> str:
    fields = [
        str(seq),
        at.isoformat(timespec="microseconds"),
        actor,
        action,
        subject_kind,
        subject_id,
        details_json,
        prev_hash,
    ]
    encoded = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def next_record(previous: AuditRecord | None, event: AuditEvent) -> AuditRecord:
    seq = 1 if previous is None else previous.seq + 1
    prev_hash = GENESIS_HASH if previous is None else previous.hash
    details_json = canonical_details(event.details)
    digest = record_hash(
        seq,
        event.at,
        event.actor,
        str(event.action),
        event.subject_kind,
        event.subject_id,
        details_json,
        prev_hash,
    )
    return AuditRecord(
        seq=seq,
        at=event.at,
        actor=event.actor,
        action=str(event.action),
        subject_kind=event.subject_kind,
        subject_id=event.subject_id,
        details_json=details_json,
        prev_hash=prev_hash,
        hash=digest,
    )


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class ChainVerification:
    ok: bool
    records_checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    checkpoints_checked: int = 0  # signed checkpoints the chain was compared with
    anchored_seq: int = 0  # the last record a valid signed checkpoint covers; later ones are unanchored


def link_fault(
    record: AuditRecord, expected_seq: int, prev_hash: str, checked: int
) -> ChainVerification | None:
    """Why `record` does not follow a predecessor with `prev_hash` at `expected_seq - 1`, or None."""
    if record.seq != expected_seq:
        kind = "missing or reordered" if record.seq > expected_seq else "duplicated or reordered"
        return ChainVerification(False, checked, expected_seq, f"record {expected_seq} is {kind}")
    if record.prev_hash != prev_hash:
        return ChainVerification(False, checked, record.seq, "link to the previous record is broken")
    recomputed = record_hash(
        record.seq,
        record.at,
        record.actor,
        record.action,
        record.subject_kind,
        record.subject_id,
        record.details_json,
        record.prev_hash,
    )
    if recomputed != record.hash:
        return ChainVerification(False, checked, record.seq, "record content does not match its hash")
    return None


def head_fault(
    head: ChainHead | None, last_seq: int, last_hash: str, checked: int
) -> ChainVerification | None:
    if head is not None and (head.seq != last_seq or head.hash != last_hash):
        return ChainVerification(
            False,
            checked,
            min(head.seq, last_seq + 1),
            f"chain ends at record {last_seq} "
            f"but the recorded head is record {head.seq}: records were removed from the end",
        )
    return None


def verify_chain(records: Iterable[AuditRecord], head: ChainHead | None = None) -> ChainVerification:
    """Walk the chain from the start; name the first record that does not follow from its predecessor."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    for record in records:
        if (fault := link_fault(record, expected_seq, prev_hash, checked)) is not None:
            return fault
        checked += 1
        expected_seq, prev_hash = record.seq + 1, record.hash
    if (fault := head_fault(head, expected_seq - 1, prev_hash, checked)) is not None:
        return fault
    return ChainVerification(True, checked)
