"""A PostgreSQL that hangs (a TCP proxy on 127.0.0.1 in front of the real server stops forwarding, keeping
the connections open) must not stop ingest: store calls give up after store.statement_timeout_s (client
deadline) or store.connect_timeout_s, the matcher fails closed (a hit is never answered ALERT unless
stored), health turns NOT_SERVING within seconds, other cameras keep being answered, and everything
recovers by itself when the network does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2
from sqlalchemy.engine import make_url

from lfr.adapters.storage.sql.unit_of_work import SqlStore
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import (
    World,
    matcher_config,
    observation,
    running_world,
    serving_status,
)
from tests.tcp_proxy import FreezableProxy

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def proxied_url(postgres_store_url: str) -> Iterator[tuple[str, FreezableProxy]]:
    SqlStore.open(postgres_store_url).close()  # migrated directly, before the proxy is in the way
    url = make_url(postgres_store_url)
    proxy = FreezableProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    finally:
        proxy.close()


@pytest.fixture
async def world_via(proxied_url: tuple[str, FreezableProxy]) -> AsyncIterator[World]:
    url, _ = proxied_url
    config = matcher_config(
        url,
        **{
            "matching.gate_refresh_seconds": 0.2,
            "matching.gate_max_staleness_seconds": 3,
            "store.statement_timeout_s": 1.5,
            "store.connect_timeout_s": 2,
        },
    )
    async with running_world(config, seed=9) as world:
        yield world


async def wait_for_health(world: World, status: int, within: float) -> float:
    started = time.monotonic()
    while await serving_status(world) != status:
        assert time.monotonic() - started < within, f"health did not become {status} within {within} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_a_hanging_postgres_fails_closed_within_seconds_and_recovers(world_via, proxied_url):
    world: World = world_via
    _, proxy = proxied_url
    await world.armed_window()
    [before] = await world.stream("cam-1", [[observation(1, world.people[0])]])
    assert before.results[0].outcome == ipb.OUTCOME_ALERT
    await wait_for_health(world, SERVING, 10)

    proxy.freeze()
    try:
        await while_frozen(world)
    finally:
        proxy.thaw()
    await wait_for_health(world, SERVING, 30)
    [after] = await world.stream("cam-1", [[observation(4, world.people[1])]])
    assert after.results[0].outcome == ipb.OUTCOME_ALERT
    with world.container.store() as uow:
        stored = {a.id for a in uow.alerts.find()}
    assert stored == {before.results[0].alert_id, after.results[0].alert_id}


async def while_frozen(world: World) -> None:
    started = time.monotonic()
    # A hit during the hang is answered (not held for ever), and not as an alert: nothing was stored.
    [during] = await asyncio.wait_for(world.stream("cam-1", [[observation(2, world.people[1])]]), 20)
    answered_in = time.monotonic() - started
    assert during.results[0].outcome != ipb.OUTCOME_ALERT
    not_serving_in = await wait_for_health(world, NOT_SERVING, 20)
    # Another camera is answered promptly meanwhile: refused, since nothing can be matched safely, or,
    # if its token is no longer in the matcher's short cache, UNAVAILABLE (the store cannot vouch for it).
    t = time.monotonic()
    outcome = await asyncio.wait_for(other_camera(world), 20)
    assert outcome in (ipb.OUTCOME_NOT_ARMED, ipb.OUTCOME_REJECTED, grpc.StatusCode.UNAVAILABLE)
    other_in = time.monotonic() - t
    print(
        f"hang: hit answered in {answered_in:.1f} s, NOT_SERVING after {not_serving_in:.1f} s more, "
        f"other camera answered in {other_in:.2f} s"
    )


async def other_camera(world: World) -> object:
    try:
        [other] = await world.stream("cam-2", [[observation(3, world.people[2], camera="cam-2")]])
    except grpc.aio.AioRpcError as error:
        return error.code()
    return other.results[0].outcome


def test_configured_timeouts_reach_both_databases(postgres_store_url: str, tmp_path):
    from sqlalchemy import text

    from lfr.config import StoreSettings

    settings = StoreSettings(url=postgres_store_url, statement_timeout_s=1.5, sqlite_busy_timeout_s=2)
    store = SqlStore.open(postgres_store_url, timeouts=settings.timeouts())
    try:
        with store.engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "1500ms"
    finally:
        store.close()
    sqlite = SqlStore.open(f"sqlite:///{tmp_path / 'x.db'}", timeouts=settings.timeouts())
    try:
        with sqlite.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2000
    finally:
        sqlite.close()
