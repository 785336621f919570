"""The audit chain detects any edit, deletion, reordering or truncation and names the first bad record."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lfr.domain.audit import GENESIS_HASH, AuditAction, AuditEvent, ChainHead, next_record, verify_chain

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def chain(n: int):
    records, previous = [], None
    for i in range(n):
        previous = next_record(
            previous,
            AuditEvent(
                AuditAction.ALERT_ADJUDICATED,
                f"officer{i % 3}",
                "alert",
                f"alr_{i}",
                T0 + timedelta(seconds=i, microseconds=i),
                {"outcome": "false_alert", "i": i, "score": 0.61},
            ),
        )
        records.append(previous)
    return records


def head_of(records):
    return ChainHead(records[-1].seq, records[-1].hash)


def test_intact_chain_verifies():
    records = chain(10)
    result = verify_chain(records, head_of(records))
    assert (result.ok, result.records_checked, result.first_bad_seq) == (True, 10, None)
    assert records[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))


def test_edited_details_are_named():
    records = chain(10)
    records[4] = dataclasses.replace(
        records[4], details_json=records[4].details_json.replace("false", "true")
    )
    result = verify_chain(records, head_of(records))
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "hash" in result.reason


@pytest.mark.parametrize("field", ["actor", "action", "subject_id", "subject_kind"])
def test_edited_fields_are_named(field):
    records = chain(6)
    records[2] = dataclasses.replace(records[2], **{field: "tampered"})
    assert verify_chain(records).first_bad_seq == 3


def test_edited_timestamp_is_named():
    records = chain(6)
    records[3] = dataclasses.replace(records[3], at=records[3].at + timedelta(microseconds=1))
    assert verify_chain(records).first_bad_seq == 4


def test_rehashed_edit_breaks_the_next_link():
    records = chain(6)
    forged = next_record(records[1], AuditEvent(AuditAction.ALERT_ADJUDICATED, "mallory", "alert", "x", T0))
    records[2] = forged
    result = verify_chain(records)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "link" in result.reason


def test_deleted_middle_record_is_named():
    records = chain(8)
    del records[3]
    result = verify_chain(records)
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_reordered_records_are_named():
    records = chain(8)
    records[2], records[5] = records[5], records[2]
    assert verify_chain(records).first_bad_seq == 3


def test_truncated_tail_is_caught_by_the_head():
    records = chain(8)
    head = head_of(records)
    result = verify_chain(records[:6], head)
    assert not result.ok
    assert "removed from the end" in result.reason


def test_empty_chain_with_head_is_not_ok():
    assert not verify_chain([], ChainHead(3, "a" * 64)).ok
    assert verify_chain([]).ok


def test_nan_details_are_refused():
    with pytest.raises(ValueError, match="JSON"):
        next_record(
            None, AuditEvent(AuditAction.ALERT_RAISED, "system", "alert", "a", T0, {"score": float("nan")})
        )


@given(st.integers(min_value=1, max_value=25), st.data())
def test_any_single_deletion_or_swap_is_detected(n, data):
    records = chain(n)
    if n > 1 and data.draw(st.booleans()):
        i, j = data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
        records[i], records[j] = records[j], records[i]
    else:
        del records[data.draw(st.integers(0, n - 1))]
    assert not verify_chain(records, ChainHead(n, chain(n)[-1].hash)).ok
