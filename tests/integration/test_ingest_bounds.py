"""Bounded resources per camera and per stream: a stream that does not read its answers is cut off with
RESOURCE_EXHAUSTED after grpc.stream_max_unread_answers, so it can neither make the matcher hold answers
nor keep the shared matcher busy; other cameras keep being answered; a camera has at most
grpc.max_streams_per_camera streams open at once. Defaults are used on purpose: they are what ships."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from lfr.config import GrpcSettings
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import World, first_answer, observation, rpc_error

PER_MESSAGE = 50


def faces_received(world: World, camera: str) -> float:
    registry = world.container.registry
    return sum(
        registry.get_sample_value("lfr_faces_received_total", {"camera": camera, "outcome": outcome}) or 0
        for outcome in ("no_match", "alert", "not_armed", "rejected")
    )


async def test_a_stream_that_does_not_read_is_cut_off_and_another_camera_is_answered_meanwhile(world: World):
    await world.armed_window()
    limit = GrpcSettings().stream_max_unread_answers
    silent = world.ingest.Stream(metadata=world.md("cam-1"))
    flood = ipb.ObservationBatch(
        observations=[observation(i, world.stranger()) for i in range(PER_MESSAGE)]
    )  # answers_read stays 0: this caller never reads

    async def write_without_reading() -> int:
        written = 0
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            for _ in range(20 * limit):
                await silent.write(flood)
                written += 1
        return written

    flooding = asyncio.create_task(write_without_reading())
    answers = await world.stream(
        "cam-2", [[observation(1000 + i, world.people[0], camera="cam-2")] for i in range(20)]
    )
    assert [a.results[0].outcome for a in answers] == [ipb.OUTCOME_ALERT] * 20
    written = await asyncio.wait_for(flooding, 60)
    # Its writes fail once the matcher has ended the call; what it left unread, then why, can be read.
    error = await rpc_error(drain(silent))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    assert "unread" in error.details()
    assert written < 20 * limit  # it was cut off, not left to write for ever
    # What the matcher took on for the silent stream is bounded by the window (plus what was queued when
    # it was cut), not by how long the stream kept writing: the memory bound, counted in observations.
    assert faces_received(world, "cam-1") <= (limit + 2 * world_max_in_flight()) * PER_MESSAGE


async def drain(call: grpc.aio.StreamStreamCall) -> None:
    async for _ in call:
        pass


def world_max_in_flight() -> int:
    return GrpcSettings().stream_max_in_flight


async def test_a_camera_cannot_open_more_than_its_streams(world: World):
    await world.armed_window()
    cap = GrpcSettings().max_streams_per_camera
    calls = [world.ingest.Stream(metadata=world.md("cam-1")) for _ in range(cap)]
    for i, call in enumerate(calls):
        answer = await first_answer(call, [observation(i, world.stranger())])
        assert answer.results[0].outcome == ipb.OUTCOME_NO_MATCH
    extra = world.ingest.Stream(metadata=world.md("cam-1"))
    error = await rpc_error(first_answer(extra, [observation(99, world.stranger())]))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "streams" in error.details()
    # Another camera is not affected by cam-1's cap ...
    [other] = await world.stream("cam-2", [[observation(1, world.people[0], camera="cam-2")]])
    assert other.results[0].outcome == ipb.OUTCOME_ALERT
    # ... and closing one of cam-1's streams frees its place.
    await calls[0].done_writing()
    assert await calls[0].read() == grpc.aio.EOF
    for _ in range(100):
        if world.container.streams.open_count("cam-1") < cap:
            break
        await asyncio.sleep(0.02)
    [again] = await world.stream("cam-1", [[observation(100, world.stranger())]])
    assert again.results[0].outcome == ipb.OUTCOME_NO_MATCH
    for call in calls[1:]:
        call.cancel()


async def test_the_micro_batcher_takes_cameras_in_turns():
    """A camera with many messages waiting does not make another wait behind all of them."""
    from datetime import UTC, datetime

    import numpy as np

    from lfr.adapters.grpc.ingest import MicroBatcher
    from lfr.domain.observation import Observation, ObservationResult, Outcome

    order: list[str] = []

    def process(batch):  # type: ignore[no-untyped-def]
        order.extend(o.camera_id for o in batch)
        return [ObservationResult(Outcome.NO_MATCH) for _ in batch]

    def one(camera: str) -> list[Observation]:
        return [Observation(camera, datetime.now(UTC), "t", "m", np.ones(4, np.float32), bytearray(b"x"))]

    batcher = MicroBatcher(process, batch_max=1, wait_seconds=0)
    busy = [batcher.submit(one("busy"), owner="busy") for _ in range(10)]
    quiet = batcher.submit(one("quiet"), owner="quiet")
    batcher.start()
    try:
        await asyncio.gather(*busy, quiet)
    finally:
        await batcher.stop()
    assert order.index("quiet") <= 1
