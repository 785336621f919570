"""One bad observation fails only itself: crafted crops, malformed messages and overflowing fields are
refused one by one (or with INVALID_ARGUMENT), never failing the shared micro-batch or another camera's
stream; an alert is stored exactly when its camera is told ALERT."""

from __future__ import annotations

import asyncio
import struct

import grpc
import pytest

from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import World, matcher_config, observation
from tests.support import tiny_jpeg


def crafted_jpeg(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) declares `width` x `height` pixels."""
    data = bytearray(tiny_jpeg())
    sof = data.index(b"\xff\xc0")
    # SOF0: marker(2) length(2) precision(1) height(2) width(2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.fixture
def config():
    # A long gather, so observations of both cameras share one micro-batch.
    return matcher_config(**{"matching.batch_wait_ms": 50})


def stored_alert_ids(world: World) -> set[str]:
    with world.container.store() as uow:
        return {a.id for a in uow.alerts.find()}


@pytest.mark.parametrize(
    "crop",
    [
        crafted_jpeg(65_000, 65_000),  # PIL: DecompressionBombError (not an OSError)
        crafted_jpeg(12_000, 12_000),  # PIL: DecompressionBombWarning territory
        crafted_jpeg(0, 0),  # zero-sized frame
    ],
    ids=["bomb-error", "bomb-warning", "zero-size"],
)
async def test_a_crafted_crop_fails_only_itself_and_not_another_cameras_stream(world: World, crop: bytes):
    await world.armed_window()

    async def victim() -> list[ipb.ObservationResults]:
        return await world.stream(
            "cam-2", [[observation(100 + i, world.people[2], camera="cam-2")] for i in range(3)]
        )

    attack = world.stream(
        "cam-1",
        [[observation(1, world.people[0]), observation(2, world.people[1], crop=crop)]],
    )
    [attacked], victim_answers = await asyncio.gather(attack, victim())
    first, crafted = attacked.results
    assert first.outcome == ipb.OUTCOME_ALERT
    assert crafted.outcome == ipb.OUTCOME_REJECTED
    assert crafted.reject_code == "bad_crop"
    assert crafted.reason
    assert [a.results[0].outcome for a in victim_answers] == [ipb.OUTCOME_ALERT] * 3
    told = {first.alert_id} | {a.results[0].alert_id for a in victim_answers}
    assert stored_alert_ids(world) == told  # stored exactly what the cameras were told


async def test_a_failing_batch_fails_only_its_own_camera(world: World, monkeypatch):
    """Whatever goes wrong unexpectedly in one camera's observations (a bug, not a bad input) must not
    fail the observations of other cameras that happened to share its micro-batch."""
    await world.armed_window()
    ingest = world.container.ingest
    original = ingest._raise_alert

    def explode_for_cam_1(item, candidates):  # type: ignore[no-untyped-def]
        if item.observation.camera_id == "cam-1":
            raise RuntimeError("boom")
        return original(item, candidates)

    monkeypatch.setattr(ingest, "_raise_alert", explode_for_cam_1)
    cam1, cam2 = await asyncio.gather(
        world.stream("cam-1", [[observation(1, world.people[0])]]),
        world.stream("cam-2", [[observation(2, world.people[1], camera="cam-2")]]),
    )
    assert cam1[0].results[0].outcome == ipb.OUTCOME_REJECTED
    assert cam1[0].results[0].reject_code == "internal"
    assert cam2[0].results[0].outcome == ipb.OUTCOME_ALERT
    assert stored_alert_ids(world) == {cam2[0].results[0].alert_id}


async def test_undecodable_message_is_invalid_argument_and_the_server_goes_on(world: World):
    await world.armed_window()
    raw = world.channel.stream_stream(
        "/lfr.v1.CameraIngest/Stream",
        request_serializer=lambda b: b,
        response_deserializer=ipb.ObservationResults.FromString,
    )
    call = raw(metadata=world.md("cam-1"))
    await call.write(b"\x0a\xff\xff\xff\xff\x0f garbage")  # field 1, length far past the end
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details()
    [answer] = await world.stream("cam-1", [[observation(3, world.people[0])]])
    assert answer.results[0].outcome == ipb.OUTCOME_ALERT


async def test_overflowing_timestamp_is_refused_alone(world: World):
    await world.armed_window()
    overflow = observation(1, world.people[0])
    overflow.captured_at.seconds = 2**62  # far past datetime's range
    nanos = observation(2, world.people[0])
    nanos.captured_at.nanos = -5
    [answer] = await world.stream("cam-1", [[overflow, nanos, observation(3, world.people[1])]])
    assert [r.outcome for r in answer.results] == [
        ipb.OUTCOME_REJECTED,
        ipb.OUTCOME_REJECTED,
        ipb.OUTCOME_ALERT,
    ]
    assert all(r.reason for r in answer.results[:2])


async def test_overflowing_window_times_are_invalid_argument(world: World):
    await world.build_watchlist()
    request = world.window_request()
    request.ends_at.seconds = 2**62
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.deployments.CreateWindow(request, metadata=world.md("sam"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ends_at" in caught.value.details()
