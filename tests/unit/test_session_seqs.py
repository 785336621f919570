"""The seq bookkeeping behind replay refusal: SeqRanges behaves as a set, and SessionSeqs refuses reuse."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lfr.adapters.grpc.resends import SeqRanges, SessionSeqs


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=300))
def test_seq_ranges_hold_exactly_the_seqs_added(seqs: list[int]) -> None:
    ranges = SeqRanges(max_ranges=10_000)
    for seq in seqs:
        ranges.add(seq)
    assert [s for s in range(-1, 202) if s in ranges] == sorted(set(seqs))


def test_seq_ranges_forget_the_lowest_range_beyond_their_bound() -> None:
    ranges = SeqRanges(max_ranges=2)
    for seq in (1, 3, 5):  # three separate ranges
        ranges.add(seq)
    assert 1 not in ranges
    assert 3 in ranges
    assert 5 in ranges


def test_a_seq_is_used_once_unless_it_waits_to_be_resent() -> None:
    used = SessionSeqs(max_sessions=2)
    assert used.use("cam-1", "s", 1)
    assert not used.use("cam-1", "s", 1)
    used.may_resend("s", 1)
    assert used.use("cam-1", "s", 1)
    assert not used.use("cam-1", "s", 1)  # resent once; its next answer says whether again
    assert used.owner("s") == "cam-1"
    used.use("cam-2", "t", 1)
    used.use("cam-3", "u", 1)  # the least recently used session, "s", is forgotten
    assert used.owner("s") is None
