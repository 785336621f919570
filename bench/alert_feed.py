"""The alert feed across two replicas over PostgreSQL: how fast a new alert and a decision reach every
subscriber, and what subscribers cost the store while nothing happens.

Setup: one throwaway PostgreSQL database; two replicas (`running_matcher` with the tablet extension, as
`lfr serve` composes them) in this process; N subscribers split evenly across the replicas, half tablet
SSE feeds (httpx) and half gRPC Subscribe streams. Alerts are raised on replica A (IngestService, real
FAISS); each is then decided on replica B (AlertService, as the tablet route does). Latency is from just
before the raising call (or the deciding call) to the event's arrival at each subscriber; every clock is
this process's perf_counter. Subscribers, servers and the pump share one event loop and 2 CPU cores, so
the figures include client-side parsing.

Idle cost: SQL statements executed on both replicas' engines during a quiet period with every subscriber
connected, next to what the previous design executed by construction (each subscriber re-read the store
every second: 2 statements per subscriber per second).

    .venv/bin/python -m bench.alert_feed [--subscribers 100] [--alerts 20] [--idle-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import defaultdict
from contextlib import AsyncExitStack
from typing import Any

import grpc
import httpx
import numpy as np
from sqlalchemy import event

from lfr.adapters.passwords import Argon2Hasher
from lfr.bootstrap import Container, build_container, running_matcher, serving_tablet
from lfr.domain.alert import Adjudication
from lfr.domain.observation import Observation, Outcome
from lfr.services.passwords import PasswordService
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc
from tests.databases import temporary_postgres_database
from tests.integration.conftest import DIM, MODEL, World, make_accounts, matcher_config, unit
from tests.support import tiny_jpeg
from tests.tablet_support import PASSWORD, csrf_from

Arrivals = dict[tuple[str, str], list[float]]  # (alert id, "raised" | "decided") -> arrival times


async def sse_subscriber(
    base_url: str, cookies: httpx.Cookies, arrivals: Arrivals, ready: asyncio.Event
) -> None:
    async with (
        httpx.AsyncClient(
            base_url=base_url, cookies=cookies, timeout=httpx.Timeout(10.0, read=None)
        ) as client,
        client.stream("GET", "/api/alerts/stream") as response,
    ):
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
                if kind == "hello":
                    ready.set()
            elif line.startswith("data: ") and kind in ("alert", "update"):
                now = time.perf_counter()
                alert_id = line[6:].split('"id":"', 1)[1].split('"', 1)[0]
                arrivals[(alert_id, "raised" if kind == "alert" else "decided")].append(now)


async def grpc_subscriber(port: int, token: str, arrivals: Arrivals, ready: asyncio.Event) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub: Any = control_pb2_grpc.AlertsStub(channel)
        call = stub.Subscribe(pb.SubscribeRequest(), metadata=(("authorization", f"Bearer {token}"),))
        ready.set()  # the stream is open once the first read is pending
        async for alert in call:
            arrivals[(alert.id, "raised" if alert.version == 1 else "decided")].append(time.perf_counter())


async def signed_in_cookies(base_url: str) -> httpx.Cookies:
    async with httpx.AsyncClient(base_url=base_url) as client:
        token = csrf_from((await client.get("/login")).text)
        await client.post("/login", data={"username": "olly", "password": PASSWORD, "csrf_token": token})
        return client.cookies


def count_statements(containers: list[Container]) -> list[int]:
    counter = [0]

    def counted(*_: object) -> None:
        counter[0] += 1

    for container in containers:
        event.listen(container.store.engine, "before_cursor_execute", counted)  # type: ignore[attr-defined]
    return counter


def percentiles(values: list[float]) -> str:
    ms = np.array(values) * 1000
    return f"{np.percentile(ms, 50):7.1f} {np.percentile(ms, 99):7.1f} {ms.max():7.1f}"


async def run(subscribers: int, alerts: int, idle_seconds: float, interval: float) -> None:
    os.environ.setdefault("LFR_TABLET_SESSION_SECRET", "b" * 32)  # both replicas' tablets, one secret
    with temporary_postgres_database() as url:
        config = matcher_config(url, **{"tablet.listen": "127.0.0.1:0"})
        async with AsyncExitStack() as stack:
            a, b = build_container(config), build_container(config)
            stack.callback(b.close)
            stack.callback(a.close)
            tokens = make_accounts(a)
            PasswordService(a.store, a.clock, Argon2Hasher.fast_for_tests()).set_password(
                "olly", PASSWORD, "bench"
            )
            running_a = await stack.enter_async_context(running_matcher(a, extensions=[serving_tablet]))
            running_b = await stack.enter_async_context(running_matcher(b, extensions=[serving_tablet]))
            channel = await stack.enter_async_context(
                grpc.aio.insecure_channel(f"127.0.0.1:{running_a.port}")
            )
            rng = np.random.default_rng(3)
            people = [unit(rng.normal(size=DIM)) for _ in range(4)]
            world = World(a, running_a.port, tokens, people, rng, channel, running_a)
            await world.armed_window()
            await asyncio.sleep(0.5)  # B heard of the window by NOTIFY
            replicas = [(running_a, a), (running_b, b)]
            cookies = [await signed_in_cookies(f"http://127.0.0.1:{c.tablet_port}") for _, c in replicas]

            arrivals: Arrivals = defaultdict(list)
            tasks, readies = [], []
            for i in range(subscribers):
                (running, container), ready = replicas[i % 2], asyncio.Event()
                if (i // 2) % 2 == 0:
                    coro = sse_subscriber(
                        f"http://127.0.0.1:{container.tablet_port}", cookies[i % 2], arrivals, ready
                    )
                else:
                    coro = grpc_subscriber(running.port, tokens["olly"], arrivals, ready)
                tasks.append(asyncio.create_task(coro))
                readies.append(ready)
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
            while a.feed.followers() + b.feed.followers() < subscribers:
                await asyncio.sleep(0.1)
            await asyncio.sleep(3.0)  # every follower has caught up from the store by now

            statements = count_statements([a, b])
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.sleep(idle_seconds)
            idle_statements = statements[0]
            idle_cpu = (time.process_time() - cpu) / (time.perf_counter() - wall)

            raised_at: dict[str, float] = {}
            for i in range(alerts):
                obs = Observation(
                    "cam-1",
                    a.clock.now(),
                    f"t{i}",
                    MODEL,
                    np.array(people[i % 4]),
                    bytearray(tiny_jpeg(b"p")),
                )
                started = time.perf_counter()
                [result] = await asyncio.to_thread(a.ingest.process, [obs])
                assert result.outcome is Outcome.ALERT
                assert result.alert_id is not None
                raised_at[result.alert_id] = started
                await asyncio.sleep(interval)
            olly = b.principals.get("olly")
            decided_at: dict[str, float] = {}
            for alert_id in raised_at:
                started = time.perf_counter()
                await asyncio.to_thread(b.alerts.adjudicate, alert_id, Adjudication.FALSE_ALERT, olly)
                decided_at[alert_id] = started
                await asyncio.sleep(interval)
            await asyncio.sleep(2.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    raise_ms = [t - raised_at[i] for i in raised_at for t in arrivals[(i, "raised")]]
    decide_ms = [t - decided_at[i] for i in decided_at for t in arrivals[(i, "decided")]]
    expected = alerts * subscribers
    print(
        f"two replicas over PostgreSQL, {subscribers} subscribers ({subscribers // 2} per replica, "
        f"half SSE, half gRPC), {alerts} alerts raised on A and decided on B, {interval * 1000:.0f} ms apart"
    )
    print(f"{'':28s} {'delivered':>11s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s}")
    print(f"{'raise -> every subscriber':28s} {len(raise_ms):5d}/{expected:<5d} {percentiles(raise_ms)}")
    print(f"{'decision -> every subscriber':28s} {len(decide_ms):5d}/{expected:<5d} {percentiles(decide_ms)}")
    print(
        f"idle {idle_seconds:.0f} s, all subscribers connected: {idle_statements} SQL statements on both "
        f"replicas ({idle_statements / idle_seconds:.1f}/s); previous design (each subscriber re-read the "
        f"store every second, 2 statements each): {2 * subscribers}/s"
    )
    print(f"idle CPU of this process (both replicas, all clients): {idle_cpu * 100:.1f}% of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--interval-ms", type=float, default=200.0)
    args = parser.parse_args()
    asyncio.run(run(args.subscribers, args.alerts, args.idle_seconds, args.interval_ms / 1000))


if __name__ == "__main__":
    main()
