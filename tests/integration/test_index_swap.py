"""Indexes are built off the hot path: a search never waits for a build, a finished index is published whole,
and while the armed windows' indexes are built at start the gRPC port is open with health NOT_SERVING."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lfr.bootstrap import Container, build_container, running_matcher
from lfr.config import load_config
from lfr.domain.principal import PrincipalKind, Role
from lfr.domain.watchlist import Subject
from lfr.domain.window import DeploymentWindow, WindowSpec
from lfr.services.indexes import IndexNotReady

DIM = 32


def armed_world(listen: str = "127.0.0.1:0") -> tuple[Container, DeploymentWindow]:
    config = load_config(
        None,
        {
            "store.url": "memory://",
            "metrics.enabled": False,
            "grpc.listen": listen,
            "policy.equity_gate": "off",
            "policy.separation_of_duties": False,
        },
    )
    container = build_container(config)
    sup = container.principals.create("sup", PrincipalKind.USER, [Role.SUPERVISOR, Role.ADMIN], "t")
    container.principals.create("cam-1", PrincipalKind.CAMERA, [], "t")
    wl = container.watchlists.create("w", "m", DIM, sup)
    rng = np.random.default_rng(0)
    with container.store() as uow:
        for i in range(50):
            v = rng.standard_normal((1, DIM)).astype(np.float32)
            uow.watchlists.add_subject(
                Subject(f"sub_{i:03d}", wl.id, f"r{i}", "n", "c", "r", "s"), v / np.linalg.norm(v)
            )
        uow.commit()
    container.watchlists.seal(wl.id, sup)
    now = datetime.now(UTC)
    spec = WindowSpec(
        "p", "b", "l", frozenset({"cam-1"}), wl.id, 0.6, now - timedelta(minutes=1), now + timedelta(hours=1)
    )
    window = container.deployments.create(spec, sup)
    window = container.deployments.authorise(window.id, sup)
    container.indexes.retain_only([])  # authorising built it at once; these tests watch it being built
    return container, window


class HeldFactory:
    """Wraps the real factory; every build waits until released."""

    def __init__(self, real):
        self.real, self.release, self.started = real, threading.Event(), threading.Event()

    def __call__(self, subject_of_row, vectors):
        self.started.set()
        assert self.release.wait(30)
        return self.real(subject_of_row, vectors)


def hold_builds(container: Container) -> HeldFactory:
    held = HeldFactory(container.indexes._factory)
    container.indexes._factory = held
    return held


def test_a_search_does_not_wait_long_for_a_build_in_progress_and_gets_the_whole_index_after():
    container, window = armed_world()
    held = hold_builds(container)
    builder = threading.Thread(target=container.indexes.prepare, args=(window,))
    builder.start()
    assert held.started.wait(10)
    with pytest.raises(IndexNotReady):
        container.indexes.for_window(window)
    assert not container.indexes.is_ready(window)
    held.release.set()
    builder.join(10)
    index = container.indexes.for_window(window)
    assert index.size == 50
    container.close()


def test_a_face_arriving_just_after_arming_waits_for_a_short_build_instead_of_being_refused():
    # A window's index is built in the background when it arms; CI once saw the first face after arming
    # refused ("watchlist unavailable") because it came while that build of 3 subjects was running.
    container, window = armed_world()
    held = hold_builds(container)
    builder = threading.Thread(target=container.indexes.prepare, args=(window,))
    builder.start()
    assert held.started.wait(10)
    threading.Timer(0.2, held.release.set).start()
    index = container.indexes.for_window(window)
    assert index.size == 50
    builder.join(10)
    container.close()


def test_a_watchlist_dropped_during_its_build_is_not_published():
    container, window = armed_world()
    held = hold_builds(container)
    builder = threading.Thread(target=container.indexes.prepare, args=(window,))
    builder.start()
    assert held.started.wait(10)
    container.indexes.retain_only([])  # e.g. the watchlist was destroyed meanwhile
    held.release.set()
    builder.join(10)
    assert not container.indexes.is_ready(window)
    container.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_health_is_not_serving_while_the_indexes_build_at_start():
    port = free_port()
    container, window = armed_world(f"127.0.0.1:{port}")
    held = hold_builds(container)
    ready = asyncio.Event()

    async def serve() -> None:
        async with running_matcher(container):
            ready.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(serve())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="lfr.v1.CameraIngest")
            while not held.started.is_set():
                await asyncio.sleep(0.02)
            for _ in range(100):  # the port opens just before the build starts
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await health.Check(request, timeout=1, wait_for_ready=True)
                    break
                await asyncio.sleep(0.05)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not ready.is_set()
            held.release.set()
            await asyncio.wait_for(ready.wait(), 10)
            reply = await health.Check(request, timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            assert container.indexes.is_ready(window)
    finally:
        held.release.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        container.close()


async def test_a_start_whose_first_build_fails_closes_the_port_it_opened():
    port = free_port()
    container, _ = armed_world(f"127.0.0.1:{port}")

    def broken() -> None:
        raise RuntimeError("the store fell over")

    container.refresh_gate = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="fell over"):
        async with running_matcher(container):
            pass
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    container.close()
