"""Supervisors see which cameras stream to the matcher now, over a real gRPC stream and the real tablet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import numpy as np
import pytest

from lfr.adapters.grpc.streams import CameraStreams
from lfr.adapters.passwords import Argon2Hasher
from lfr.bootstrap import build_container, running_matcher, serving_tablet
from lfr.domain.clock import ManualClock
from lfr.services.deployment_overview import StreamState
from lfr.services.passwords import PasswordService
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import DIM, SUBJECTS, World, make_accounts, matcher_config, observation, unit
from tests.tablet_support import csrf_from

PASSWORD = "correct horse battery"


@pytest.fixture
async def live() -> AsyncIterator[tuple[World, ManualClock, httpx.AsyncClient]]:
    clock = ManualClock(datetime.now(UTC))
    config = matcher_config(**{"tablet.listen": "127.0.0.1:0"})
    container = build_container(config, clock=clock)
    tokens = make_accounts(container)
    PasswordService(container.store, clock, Argon2Hasher()).set_password("sam", PASSWORD, "test-setup")
    rng = np.random.default_rng(5)
    people = [unit(rng.normal(size=DIM)) for _ in range(SUBJECTS)]
    async with (
        running_matcher(container, extensions=[serving_tablet]) as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{container.tablet_port}") as tablet,
    ):
        token = csrf_from((await tablet.get("/login")).text)
        signed_in = await tablet.post(
            "/login", data={"username": "sam", "password": PASSWORD, "csrf_token": token}
        )
        assert signed_in.status_code == 303
        yield World(container, running.port, tokens, people, rng, channel, running), clock, tablet
    container.close()


async def cameras(tablet: httpx.AsyncClient) -> tuple[dict[str, dict[str, object]], datetime]:
    overview = (await tablet.get("/api/deployments/overview")).json()
    [window] = overview["windows"]
    return {c["camera_id"]: c for c in window["cameras"]}, datetime.fromisoformat(overview["server_now"])


def streams_open(world: World, camera: str) -> float | None:
    return world.container.registry.get_sample_value("lfr_camera_streams_open", {"camera": camera})


async def test_overview_shows_a_camera_connected_while_it_streams_and_when_it_was_last_seen(live):
    world, clock, tablet = live
    await world.armed_window()
    before, _ = await cameras(tablet)
    assert [(c["connected"], c["last_seen"]) for c in before.values()] == [(False, None), (False, None)]

    call = world.ingest.Stream(metadata=world.md("cam-1"))
    await call.write(ipb.ObservationBatch(observations=[observation(1, world.stranger())]))
    assert (await call.read()).results[0].outcome == ipb.OUTCOME_NO_MATCH
    streaming, _ = await cameras(tablet)
    assert (streaming["cam-1"]["connected"], streaming["cam-2"]["connected"]) == (True, False)
    assert datetime.fromisoformat(streaming["cam-1"]["last_seen"]) == clock.now()
    assert streams_open(world, "cam-1") == 1
    last_heard = clock.now()

    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    clock.advance(timedelta(seconds=42))
    after, server_now = await cameras(tablet)
    assert after["cam-1"]["connected"] is False
    assert datetime.fromisoformat(after["cam-1"]["last_seen"]) == last_heard
    assert server_now - last_heard == timedelta(seconds=42)  # "disconnected (last seen 42 s ago)"
    assert streams_open(world, "cam-1") == 0
    assert after["cam-2"]["last_seen"] is None


def test_a_camera_with_two_streams_stays_connected_until_both_close():
    clock = ManualClock(datetime(2024, 5, 1, 12, tzinfo=UTC))
    counts: list[tuple[str, int]] = []
    streams = CameraStreams(clock, on_count=lambda camera, n: counts.append((camera, n)))
    streams.opened("cam-1")
    streams.opened("cam-1")
    streams.closed("cam-1")
    assert streams.snapshot()["cam-1"].connected is True
    clock.advance(timedelta(seconds=5))
    streams.seen("cam-1")
    streams.closed("cam-1")
    assert streams.snapshot()["cam-1"] == StreamState(False, clock.now())
    assert counts == [("cam-1", 1), ("cam-1", 2), ("cam-1", 1), ("cam-1", 0)]
