"""No silent loss of a hit: with the SQLite store's disk really full (a small tmpfs), a hit that cannot be
made durable is answered store_error (never ALERT), the matcher suspends matching (rejects with
store_unavailable), reports NOT_SERVING on gRPC health and counts it in Prometheus; the camera node keeps
the unacknowledged hit in memory and re-sends it; once the disk has room the matcher resumes by itself,
audits the outage, and the re-sent hit becomes an alert. Needs root (mounts a tmpfs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client import CollectorRegistry

from lfr.adapters.camera.client import MatcherClient, Outgoing, StreamPolicy
from lfr.adapters.camera.metrics import CameraMetrics
from lfr.domain.observation import FaceQuality
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import (
    DIM,
    MODEL,
    World,
    matcher_config,
    observation,
    running_world,
    serving_status,
)
from tests.support import tiny_jpeg

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fills the disk to the last byte; returns the filler, whose removal frees it again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


@pytest.fixture
async def world_on(small_disk: Path) -> AsyncIterator[World]:
    config = matcher_config(
        f"sqlite:///{small_disk / 'lfr.db'}",
        **{"matching.gate_refresh_seconds": 0.2, "matching.counter_flush_seconds": 0.5},
    )
    async with running_world(config, seed=5) as world:
        yield world


async def eventually(check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def outgoing(vector: np.ndarray, track: str) -> Outgoing:
    return Outgoing(track, datetime.now(UTC), vector.copy(), bytearray(tiny_jpeg()), FaceQuality())


def metric(world: World, name: str) -> float:
    return world.container.registry.get_sample_value(name) or 0.0


async def test_a_hit_that_cannot_be_stored_is_kept_by_the_node_and_stored_once_the_disk_has_room(
    world_on: World, small_disk: Path
):
    world = world_on
    await world.armed_window()
    told: list[ipb.ObservationResult] = []
    camera_registry = CollectorRegistry()
    client = MatcherClient(
        f"127.0.0.1:{world.port}",
        world.tokens["cam-1"],
        "cam-1",
        MODEL,
        DIM,
        CameraMetrics(camera_registry, "cam-1"),
        StreamPolicy(batch_max=4, max_in_flight=2, backoff_initial_s=0.05, backoff_max_s=0.5),
        on_result=told.append,
        retry_hits_every_s=0.3,
    )
    running = asyncio.create_task(client.run())
    try:
        client.submit(outgoing(world.people[0], "before"))
        assert await client.drain(10)
        assert told[-1].outcome == ipb.OUTCOME_ALERT

        db = sqlite3.connect(small_disk / "lfr.db")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # so the next write needs new space on the disk
        db.close()
        filler = fill(small_disk)

        client.submit(outgoing(world.people[1], "during"))
        await eventually(lambda: _async(any(r.reject_code == "store_error" for r in told)))
        assert [r.outcome for r in told if r.outcome == ipb.OUTCOME_ALERT] == [ipb.OUTCOME_ALERT]
        await eventually(lambda: _async_health(world, health_pb2.HealthCheckResponse.NOT_SERVING))
        assert metric(world, "lfr_alerts_not_durable_total") >= 1
        assert metric(world, "lfr_matcher_suspended") == 1
        # Suspended: nothing more is matched, and the node is told why.
        client.submit(outgoing(world.people[2], "suspended"))
        await eventually(lambda: _async(any(r.reject_code == "store_unavailable" for r in told)))
        assert client.unacknowledged_hits == 1  # the hit, kept in memory; not the passer-by
        assert camera_registry.get_sample_value("lfr_camera_hits_unacknowledged", {"camera": "cam-1"}) == 1

        filler.unlink()
        await eventually(lambda: _async_health(world, health_pb2.HealthCheckResponse.SERVING))
        await eventually(lambda: _async(client.unacknowledged_hits == 0))
        alerts = [r for r in told if r.outcome == ipb.OUTCOME_ALERT]
        assert len(alerts) == 2  # the hit kept through the outage is an alert now
        assert metric(world, "lfr_matcher_suspended") == 0
    finally:
        client.stop()
        await running
    with world.container.store() as uow:
        stored = {a.id for a in uow.alerts.find()}
        actions = [r.action for r in uow.audit.records()]
    assert stored == {r.alert_id for r in alerts}  # stored exactly what the camera was told
    assert "matcher.suspended" in actions
    assert "matcher.resumed" in actions


async def _async(value: bool) -> bool:
    return value


async def _async_health(world: World, status: int) -> bool:
    return await serving_status(world) == status


@pytest.fixture
async def pg_world(postgres_store_url: str) -> AsyncIterator[World]:
    async with running_world(matcher_config(postgres_store_url), seed=6) as world:
        yield world


@pytest.mark.parametrize("track", ["t" * 129, "nul\x00byte"], ids=["too-long", "nul"])
async def test_a_camera_cannot_make_the_store_fail_and_so_suspend_matching(pg_world: World, track: str):
    """Text the database would refuse (PostgreSQL: longer than the column, or a NUL character) is refused
    with the observation, before it reaches the store: otherwise any camera could suspend matching for all
    by sending a hit whose alert cannot be stored."""
    world = pg_world
    await world.armed_window()
    crafted = observation(1, world.people[0])
    crafted.track_id = track
    [answer] = await world.stream("cam-1", [[crafted, observation(2, world.people[1])]])
    assert answer.results[0].outcome == ipb.OUTCOME_REJECTED
    assert answer.results[0].reject_code == "malformed"
    assert answer.results[1].outcome == ipb.OUTCOME_ALERT
    assert not world.container.ingest.durability.suspended
