"""The hot path's protobuf conversions give exactly what protobuf's own (slower) conversions give, and a
batch's conversion (embeddings packed or not) what its observations' one by one give."""

from __future__ import annotations

import dataclasses
from datetime import UTC

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from lfr.adapters.grpc.convert import (
    MalformedObservation,
    embedding_from_bytes,
    from_timestamp,
    observation,
    observations,
    packed_embeddings,
)
from lfr.domain.errors import InvalidInput
from lfr.domain.observation import FaceQuality, Observation
from lfr.v1 import ingest_pb2 as ipb


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


# --- a batch's observations, with embeddings per observation or packed in the batch -----------------------

_items = st.lists(
    st.fixed_dictionaries(
        {
            "dimension": st.sampled_from([0, 1, 3, 8, 4096, 4097]),
            "values": st.sampled_from([0.0, 1.5, -2.0, float("nan"), float("inf")]),
            "track_id": st.sampled_from(["t1", "", "x" * 129, "bad\x00track"]),
            "model_id": st.sampled_from(["m", ""]),
            "seconds": st.sampled_from([0, 1_700_000_000, 253402300800]),
            "seq": st.integers(0, 2**64 - 1),
        }
    ),
    min_size=1,
    max_size=6,
)


def _batches(items: list[dict], session: str) -> tuple[ipb.ObservationBatch, ipb.ObservationBatch]:
    """The same observations twice: each with its own embedding, and with the embeddings packed."""
    single, packed, payloads = ipb.ObservationBatch(node_session=session), ipb.ObservationBatch(), []
    packed.node_session = session
    for item in items:
        payload = np.full(item["dimension"], item["values"], dtype="<f4").tobytes()
        payloads.append(payload)
        fields = {
            "seq": item["seq"],
            "camera_id": "cam-1",
            "captured_at": Timestamp(seconds=item["seconds"]),
            "track_id": item["track_id"],
            "model_id": item["model_id"],
            "dimension": item["dimension"],
            "crop_jpeg": b"\xff\xd8crop\xff\xd9",
        }
        single.observations.append(ipb.Observation(embedding_f32le=payload, **fields))
        packed.observations.append(ipb.Observation(**fields))
    packed.embeddings_f32le = b"".join(payloads)
    return single, packed


def _outcome(found: Observation | MalformedObservation) -> tuple:
    if isinstance(found, MalformedObservation):
        return ("malformed", str(found))
    return (
        found.camera_id,
        found.captured_at,
        found.track_id,
        found.model_id,
        found.vector.tobytes(),
        found.vector.dtype,
        bytes(found.crop_jpeg),
        found.quality,
        found.source_ref,
    )


def _one_by_one(batch: ipb.ObservationBatch) -> list[tuple]:
    found = []
    for item in batch.observations:
        try:
            found.append(_outcome(observation(item, batch.node_session)))
        except MalformedObservation as exc:
            found.append(("malformed", str(exc)))
    return found


@settings(max_examples=200, deadline=None)
@given(_items, st.sampled_from(["", "node-a", "x" * 65, "bad\nsession"]), st.data())
def test_a_batch_converts_as_its_observations_do_one_by_one_packed_or_not(items, session, data):
    single, packed = _batches(items, session)
    expected = _one_by_one(single)
    assert [_outcome(o) for o in observations(single)] == expected
    assert [_outcome(o) for o in observations(packed)] == expected
    # Any subset of positions (the others: re-sends and refusals) gives the same for those positions.
    positions = data.draw(st.lists(st.sampled_from(range(len(items))), unique=True).map(sorted))
    assert [_outcome(o) for o in observations(packed, positions)] == [expected[p] for p in positions]


def test_packed_vectors_are_writable_views_of_one_private_copy_and_the_rest_is_wiped():
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((4, 8)).astype("<f4")
    batch = ipb.ObservationBatch(
        observations=[ipb.Observation(dimension=8) for _ in rows], embeddings_f32le=rows.tobytes()
    )
    taken = packed_embeddings(batch, [1, 3])
    assert all(isinstance(v, np.ndarray) for v in taken)
    np.testing.assert_array_equal(np.stack(taken), rows[[1, 3]])
    whole = taken[0].base
    assert whole is taken[1].base
    assert whole.flags.writeable
    np.testing.assert_array_equal(whole.reshape(4, 8)[[0, 2]], 0)  # shares not taken: wiped at once
    taken[0].fill(0)  # the service wipes each
    assert batch.embeddings_f32le == rows.tobytes()  # the message's own bytes were never shared


def test_a_packed_total_that_disagrees_with_the_dimensions_refuses_every_observation():
    batch = ipb.ObservationBatch(
        observations=[ipb.Observation(dimension=8), ipb.Observation(dimension=8)],
        embeddings_f32le=b"\x00" * (4 * 15),
    )
    refused = packed_embeddings(batch, [0, 1])
    assert all(isinstance(r, MalformedObservation) for r in refused)
    assert "embeddings_f32le has 60 bytes, expected 64" in str(refused[0])


def _sent_with(quality: ipb.FaceQuality | None) -> ipb.Observation:
    message = ipb.Observation(
        camera_id="c",
        captured_at=Timestamp(seconds=1_700_000_000),
        model_id="m",
        dimension=1,
        embedding_f32le=b"\x00\x00\x80\x3f",
        crop_jpeg=b"\xff\xd8\xff\xd9",
    )
    if quality is not None:
        message.quality.CopyFrom(quality)
    return message


def test_a_face_quality_reads_field_by_field_and_an_unset_one_as_all_zeros():
    sent = ipb.FaceQuality(
        detector_score=0.9,
        face_width_px=80,
        face_height_px=96,
        interocular_px=31.5,
        sharpness=120.0,
        yaw_deg=-12.0,
        pitch_deg=4.5,
    )
    found = observation(_sent_with(sent), "").quality
    assert dataclasses.astuple(found) == pytest.approx((0.9, 80, 96, 31.5, 120.0, -12.0, 4.5))
    unset = observation(_sent_with(None), "").quality
    assert unset == observation(_sent_with(ipb.FaceQuality()), "").quality == FaceQuality()
