"""An observation re-sent to another matcher replica, or to a restarted matcher, raises no second alert.

Each replica (or each run of the matcher) remembers recent answers only in its own memory; the store is
what they share. Two real gRPC servers over one SQLite file or one PostgreSQL database stand for two
replicas, and a new container over the same SQLite file stands for a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import grpc
import numpy as np

from lfr.adapters.grpc.convert import MAX_NODE_SESSION
from lfr.bootstrap import Container, build_container, running_matcher
from lfr.domain.alert import Alert
from lfr.domain.audit import verify_chain
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc, ingest_pb2_grpc
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import (
    DIM,
    SUBJECTS,
    World,
    auth,
    make_accounts,
    matcher_config,
    observation,
    unit,
)


@dataclass
class Replica:
    container: Container
    channel: grpc.aio.Channel
    pushed: list[str]  # alerts this replica announced to the feed (gRPC streams, tablet feeds)

    async def send(self, token: str, session: str, batch: list[ipb.Observation]) -> ipb.ObservationResults:
        stub: ingest_pb2_grpc.CameraIngestAsyncStub = ingest_pb2_grpc.CameraIngestStub(self.channel)  # type: ignore[assignment]
        call = stub.Stream(metadata=(("authorization", f"Bearer {token}"),))
        await call.write(ipb.ObservationBatch(observations=batch, node_session=session))
        answer: ipb.ObservationResults = await call.read()
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        return answer

    async def refresh_gate(self) -> None:
        await asyncio.to_thread(self.container.refresh_gate)

    async def pushed_ids(self) -> list[str]:
        ids = list(self.pushed)
        self.pushed.clear()
        return ids


@asynccontextmanager
async def replica(store_url: str) -> AsyncIterator[Replica]:
    container = build_container(matcher_config(store_url))
    pushed: list[str] = []
    announce = container.feed.publish

    def recording(alert: Alert) -> None:
        pushed.append(alert.id)
        announce(alert)

    container.feed.publish = recording  # type: ignore[method-assign]
    try:
        async with (
            running_matcher(container) as running,
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
        ):
            yield Replica(container, channel, pushed)
    finally:
        container.close()


async def armed_world(first: Replica, tokens: dict[str, str]) -> World:
    """A sealed watchlist and an armed window, made through the first replica."""
    rng = np.random.default_rng(23)
    people = [unit(rng.normal(size=DIM)) for _ in range(SUBJECTS)]
    world = World(first.container, 0, tokens, people, rng, first.channel, None)  # type: ignore[arg-type]
    await world.armed_window()
    return world


def stored(container: Container) -> tuple[list[str], list[str]]:
    """(every alert id, the alert id of every alert.raised audit record), checking the chain on the way."""
    with container.store() as uow:
        alerts = [a.id for a in uow.alerts.find()]
        records = list(uow.audit.records())
        assert verify_chain(records, uow.audit.head()).ok
    return alerts, [r.subject_id for r in records if r.action == "alert.raised"]


@asynccontextmanager
async def two_replicas(store_url: str) -> AsyncIterator[tuple[Replica, Replica, World]]:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(store_url))
        b = await stack.enter_async_context(replica(store_url))
        tokens = make_accounts(a.container)
        world = await armed_world(a, tokens)
        await b.refresh_gate()  # as its periodic refresh would, a little later
        yield a, b, world


async def test_an_observation_resent_to_another_replica_gets_the_same_alert(store_url: str):
    async with two_replicas(store_url) as (a, b, world):
        token = world.tokens["cam-1"]
        batch = [observation(1, world.people[3]), observation(2, world.stranger())]
        first = await a.send(token, "node-a", batch)
        again = await b.send(token, "node-a", batch)
        assert [r.outcome for r in first.results] == [ipb.OUTCOME_ALERT, ipb.OUTCOME_NO_MATCH]
        assert list(again.results) == list(first.results)
        alert_id = first.results[0].alert_id
        assert stored(a.container) == ([alert_id], [alert_id])
        assert await a.pushed_ids() == [alert_id]
        assert await b.pushed_ids() == []
        # Another seq of the same node is another face: the other replica raises its alert.
        other = await b.send(token, "node-a", [observation(3, world.people[3])])
        assert other.results[0].outcome == ipb.OUTCOME_ALERT
        assert other.results[0].alert_id != alert_id
        assert await b.pushed_ids() == [other.results[0].alert_id]


async def test_one_observation_sent_to_two_replicas_at_once_raises_one_alert(store_url: str):
    async with two_replicas(store_url) as (a, b, world):
        token = world.tokens["cam-1"]
        batches = [[observation(seq, world.people[seq])] for seq in range(1, 5)]
        answers = await asyncio.gather(*(r.send(token, "node-a", batch) for batch in batches for r in (a, b)))
        ids = [answer.results[0].alert_id for answer in answers]
        assert all(answer.results[0].outcome == ipb.OUTCOME_ALERT for answer in answers)
        assert ids[0::2] == ids[1::2]  # each observation got one alert id from both replicas
        assert len(set(ids)) == len(batches)
        alerts, raised = stored(a.container)
        assert sorted(alerts) == sorted(raised) == sorted(set(ids))
        assert sorted(await a.pushed_ids() + await b.pushed_ids()) == sorted(set(ids))


async def test_an_observation_resent_after_a_matcher_restart_gets_the_same_alert(sqlite_url: str):
    async with replica(sqlite_url) as before:
        tokens = make_accounts(before.container)
        world = await armed_world(before, tokens)
        batch = [observation(1, world.people[5])]
        first = await before.send(tokens["cam-1"], "node-a", batch)
        assert first.results[0].outcome == ipb.OUTCOME_ALERT
    async with replica(sqlite_url) as after:
        again = await after.send(tokens["cam-1"], "node-a", batch)
        alert_id = first.results[0].alert_id
        assert list(again.results) == list(first.results)
        assert stored(after.container) == ([alert_id], [alert_id])
        assert await after.pushed_ids() == []


async def test_a_node_session_too_long_to_store_is_refused_clearly(sqlite_url: str):
    async with replica(sqlite_url) as only:
        tokens = make_accounts(only.container)
        world = await armed_world(only, tokens)
        answer = await only.send(
            tokens["cam-1"], "n" * (MAX_NODE_SESSION + 1), [observation(1, world.people[0])]
        )
        [result] = answer.results
        assert result.outcome == ipb.OUTCOME_REJECTED
        assert result.reject_code == "malformed"
        assert "node_session" in result.reason
        assert stored(only.container) == ([], [])
        fits = await only.send(tokens["cam-1"], "n" * MAX_NODE_SESSION, [observation(2, world.people[0])])
        assert fits.results[0].outcome == ipb.OUTCOME_ALERT


async def test_a_subscriber_on_one_replica_receives_alerts_raised_on_another(sqlite_url: str):
    async with two_replicas(sqlite_url) as (a, b, world):
        stub = control_pb2_grpc.AlertsStub(b.channel)
        stream = stub.Subscribe(pb.SubscribeRequest(), metadata=auth(world.tokens["sam"]))
        first = await a.send(world.tokens["cam-1"], "node-a", [observation(1, world.people[2])])
        alert_id = first.results[0].alert_id
        # B raised nothing, so nothing reached it live: its subscription must find A's alert in the store.
        received = await asyncio.wait_for(stream.read(), timeout=5)
        assert received.id == alert_id
        # A later alert raised on B itself follows in sequence order, with none skipped or repeated.
        second = await b.send(world.tokens["cam-1"], "node-a", [observation(2, world.people[4])])
        following = await asyncio.wait_for(stream.read(), timeout=5)
        assert following.id == second.results[0].alert_id
        assert following.sequence == received.sequence + 1
        stream.cancel()
