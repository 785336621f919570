"""CameraIngest over real gRPC: matches inside a window, per-observation rejections, auth, size limits."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from lfr.v1 import control_pb2 as pb
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import (
    DIM,
    World,
    auth,
    first_answer,
    observation,
    packed_batch,
    rpc_error,
)
from tests.support import tiny_jpeg


async def test_camera_outside_every_window_is_not_armed_and_nothing_is_stored(world: World):
    await world.armed_window()
    [answer] = await world.stream("cam-9", [[observation(1, world.people[0], camera="cam-9")]])
    assert answer.results[0].outcome == ipb.OUTCOME_NOT_ARMED
    assert world.container.alerts.list_alerts(world.container.principals.get("sam")) == []


async def test_match_raises_alert_and_non_match_is_only_counted(world: World):
    window = await world.armed_window()
    [answer] = await world.stream(
        "cam-1",
        [
            [
                observation(7, world.stranger()),
                observation(8, world.people[3]),
                observation(9, world.stranger()),
            ]
        ],
    )
    assert [r.seq for r in answer.results] == [7, 8, 9]
    assert [r.outcome for r in answer.results] == [
        ipb.OUTCOME_NO_MATCH,
        ipb.OUTCOME_ALERT,
        ipb.OUTCOME_NO_MATCH,
    ]
    alert = await world.alerts.GetAlert(
        pb.AlertRef(alert_id=answer.results[1].alert_id), metadata=world.md("olly")
    )
    assert alert.subject_id == world.subject_ids[3]
    assert alert.window_id == window.id
    assert alert.crop_jpeg == tiny_jpeg()
    world.container.flush_counters()
    with world.container.store() as uow:
        totals = uow.counters.totals(window.id)
        assert totals == {
            (window.id, "cam-1", "no_match"): 2,
            (window.id, "cam-1", "alert"): 1,
            (window.id, "cam-1", "tracks"): 3,  # three tracks, three people seen
        }
        assert len(uow.alerts.find()) == 1


@pytest.mark.parametrize("packed", [False, True], ids=["per-observation", "packed"])
async def test_each_bad_observation_is_rejected_alone_and_the_stream_goes_on(world: World, packed: bool):
    await world.armed_window()
    person = world.people[1]
    nan, inf = person.copy(), person.copy()
    nan[5], inf[9] = np.nan, np.inf
    # Packed, an observation's share is its declared dimension, so a byte count that disagrees with it is
    # an out-of-range dimension instead (a total that disagrees refuses the whole message: below).
    disagreeing = (
        observation(3, np.ones(5000, dtype=np.float32))
        if packed
        else observation(3, person, dimension=DIM + 3)
    )
    bad = [
        observation(1, person),  # accepted before anything bad: must survive
        observation(2, np.ones(DIM + 1, dtype=np.float32)),  # wrong dimension (declared consistently)
        disagreeing,  # byte count does not match declared dimension / dimension out of range
        observation(4, nan),
        observation(5, inf),
        observation(6, np.zeros(DIM, dtype=np.float32)),
        observation(7, person, model="another-model"),
        observation(8, person, camera="cam-2"),  # names a camera other than the token's
        observation(9, person, crop=b"\xff\xd8\xff corrupt \xff\xd9"),
        observation(10, person, crop=noisy_jpeg(320)),  # over matching.max_crop_bytes (64 KiB)
    ]
    answers = await world.stream("cam-1", [bad, [observation(11, person)]], packed=packed)
    results = answers[0].results
    assert results[0].outcome == ipb.OUTCOME_ALERT
    codes = [(r.seq, r.outcome, r.reject_code) for r in results[1:]]
    rejected = ipb.OUTCOME_REJECTED
    assert codes == [
        (2, rejected, "bad_embedding"),
        (3, rejected, "malformed"),
        (4, rejected, "bad_embedding"),
        (5, rejected, "bad_embedding"),
        (6, rejected, "bad_embedding"),
        (7, rejected, "wrong_model"),
        (8, rejected, "camera_mismatch"),
        (9, rejected, "bad_crop"),
        (10, rejected, "bad_crop"),
    ]
    assert all(r.reason for r in results[1:])
    assert "dimension" in results[1].reason
    assert "NaN" in results[3].reason
    assert "zero" in results[5].reason
    assert answers[1].results[0].outcome == ipb.OUTCOME_ALERT  # the stream carried on
    stored = world.container.alerts.list_alerts(world.container.principals.get("sam"))
    assert {a.id for a in stored} == {results[0].alert_id, answers[1].results[0].alert_id}
    assert len(noisy_jpeg(320)) > 64 * 1024


async def test_packed_embeddings_that_disagree_with_the_declared_dimensions_refuse_the_message(
    world: World,
):
    await world.armed_window()
    person = world.people[2]
    short = packed_batch([observation(1, person), observation(2, person)])
    short.embeddings_f32le = short.embeddings_f32le[:-4]
    twice = packed_batch([observation(3, person), observation(4, person)])
    twice.observations[1].embedding_f32le = person.astype("<f4").tobytes()  # in both places
    call = world.ingest.Stream(metadata=world.md("cam-1"))
    answers = []
    for message in (short, twice):
        message.answers_read = len(answers)
        await call.write(message)
        answers.append(await call.read())
    await call.done_writing()
    refused = [(r.seq, r.outcome, r.reject_code) for r in answers[0].results]
    assert refused == [(1, ipb.OUTCOME_REJECTED, "malformed"), (2, ipb.OUTCOME_REJECTED, "malformed")]
    assert "embeddings_f32le has" in answers[0].results[0].reason
    assert [r.outcome for r in answers[1].results] == [ipb.OUTCOME_ALERT, ipb.OUTCOME_REJECTED]
    assert answers[1].results[1].reject_code == "malformed"
    assert "sent twice" in answers[1].results[1].reason


def noisy_jpeg(side: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


async def test_missing_or_unknown_token_is_unauthenticated(world: World):
    for metadata in [(), auth("not-a-token"), (("authorization", "Basic abc"),)]:
        call = world.ingest.Stream(metadata=metadata)
        error = await rpc_error(first_answer(call, [observation(1, world.people[0])]))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.deployments.ListWindows(pb.ListWindowsRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_user_tokens_cannot_stream_and_camera_tokens_cannot_control(world: World):
    call = world.ingest.Stream(metadata=world.md("sam"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.deployments.ListWindows(pb.ListWindowsRequest(), metadata=world.md("cam-1"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_many_streams_each_get_their_own_answers_in_order(world: World):
    import asyncio

    await world.armed_window()

    async def camera(name: str, offset: int) -> list[ipb.ObservationResults]:
        batches = [
            [observation(offset + 10 * i + j, world.stranger(), camera=name) for j in range(5)]
            for i in range(20)
        ]
        return await world.stream(name, batches)

    first, second = await asyncio.gather(camera("cam-1", 0), camera("cam-2", 100_000))
    assert [r.seq for a in first for r in a.results] == [10 * i + j for i in range(20) for j in range(5)]
    assert [r.seq for a in second for r in a.results] == [
        100_000 + 10 * i + j for i in range(20) for j in range(5)
    ]
    assert {r.outcome for a in first + second for r in a.results} == {ipb.OUTCOME_NO_MATCH}
