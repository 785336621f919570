"""The hot path's protobuf conversions give exactly what protobuf's own (slower) conversions give."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from lfr.adapters.grpc.convert import embedding_from_bytes, from_timestamp
from lfr.domain.errors import InvalidInput


@settings(max_examples=300, deadline=None)
@given(st.integers(-62135596800, 253402300799), st.integers(0, 999_999_999))
def test_timestamps_read_as_protobuf_reads_them(seconds, nanos):
    stamp = Timestamp(seconds=seconds, nanos=nanos)
    if seconds == 0 and nanos == 0:
        return
    assert from_timestamp(stamp, "t") == stamp.ToDatetime(tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "nanos"), [(253402300800, 0), (-62135596801, 0), (5, -1), (5, 10**9)])
def test_timestamps_protobuf_refuses_are_refused(seconds, nanos):
    stamp = Timestamp(seconds=seconds, nanos=nanos)
    with pytest.raises(InvalidInput, match="t is out of range"):
        from_timestamp(stamp, "t")
    with pytest.raises(ValueError, match="Timestamp is not valid"):
        stamp.ToDatetime(tzinfo=UTC)


def test_an_embedding_is_a_private_writable_copy_with_the_values_sent():
    values = np.random.default_rng(2).standard_normal(512).astype("<f4")
    payload = values.tobytes()
    vector = embedding_from_bytes(payload, 512)
    np.testing.assert_array_equal(vector, values)
    assert vector.dtype == np.float32
    vector.fill(0)  # the service wipes it
    assert payload == values.tobytes()  # the message's bytes were never shared
