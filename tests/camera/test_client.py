"""The streaming client against a real grpc.aio server on 127.0.0.1 (a tiny test servicer that answers
like the matcher): auth metadata, results by outcome, bounded buffer while down, reconnect after a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from lfr.adapters.camera.client import MatcherClient, Outgoing, StreamPolicy, backoff_delay
from lfr.adapters.camera.metrics import CameraMetrics
from lfr.domain.observation import FaceQuality
from lfr.v1 import ingest_pb2, ingest_pb2_grpc

FAST = StreamPolicy(buffer_max=8, batch_max=4, max_in_flight=2, backoff_initial_s=0.05, backoff_max_s=0.2)


class FakeMatcher(ingest_pb2_grpc.CameraIngestServicer):
    """Alerts on track "wanted", rejects track "bad", no match otherwise; remembers what it saw."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.tokens: set[str] = set()
        self.sessions: set[str] = set()
        self.unread: list[int] = []  # per message: answers sent before it that the client had not read
        self.messages: list[tuple[list[int], list[str]]] = []  # per message: its seqs and ended tracks
        self.packed: list[bool] = []  # per message: whether its embeddings came in embeddings_f32le
        self.embeddings: list[bytes] = []  # per observation, wherever the message carried it

    async def Stream(
        self, request_iterator: AsyncIterator[ingest_pb2.ObservationBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.ObservationResults]:
        self.tokens.update(v for k, v in context.invocation_metadata() if k == "authorization")
        answered = 0
        async for batch in request_iterator:
            self.unread.append(answered - batch.answers_read)
            answered += 1
            self.sessions.add(batch.node_session)
            self.messages.append(([o.seq for o in batch.observations], list(batch.ended_track_ids)))
            results = ingest_pb2.ObservationResults()
            self.packed.append(bool(batch.embeddings_f32le))
            if batch.embeddings_f32le:
                assert len(batch.embeddings_f32le) == sum(4 * o.dimension for o in batch.observations)
                assert not any(o.embedding_f32le for o in batch.observations)
                size = 4 * batch.observations[0].dimension
                packed = batch.embeddings_f32le
                self.embeddings.extend(packed[i : i + size] for i in range(0, len(packed), size))
            else:
                self.embeddings.extend(o.embedding_f32le for o in batch.observations)
            for o in batch.observations:
                self.seqs.append(o.seq)
                assert len(self.embeddings[len(self.seqs) - 1]) == 4 * o.dimension
                outcome = {"wanted": ingest_pb2.OUTCOME_ALERT, "bad": ingest_pb2.OUTCOME_REJECTED}.get(
                    o.track_id, ingest_pb2.OUTCOME_NO_MATCH
                )
                results.results.append(ingest_pb2.ObservationResult(seq=o.seq, outcome=outcome))
            yield results


async def start_matcher(servicer: FakeMatcher, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    ingest_pb2_grpc.add_CameraIngestServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


def observation(track: str = "t1") -> Outgoing:
    vector = np.random.default_rng().standard_normal(8).astype(np.float32)
    return Outgoing(track, datetime.now(UTC), vector, bytearray(b"\xff\xd8\xff jpeg \xff\xd9"), FaceQuality())


def client_for(port: int, registry: CollectorRegistry, policy: StreamPolicy = FAST) -> MatcherClient:
    metrics = CameraMetrics(registry, "cam-1")
    return MatcherClient(f"127.0.0.1:{port}", "secret-token", "cam-1", "model-x", 8, metrics, policy)


def results(registry: CollectorRegistry, outcome: str) -> float:
    return registry.get_sample_value("lfr_camera_results_total", {"camera": "cam-1", "outcome": outcome}) or 0


async def wait_until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_results_are_counted_by_outcome_and_answered_buffers_wiped() -> None:
    servicer = FakeMatcher()
    server, port = await start_matcher(servicer)
    registry = CollectorRegistry()
    client = client_for(port, registry)
    running = asyncio.create_task(client.run())
    sent = [observation(t) for t in ("a", "wanted", "b", "bad", "c")]
    for item in sent:
        client.submit(item)
    assert await client.drain(5)
    client.stop()
    await running
    await server.stop(0)
    assert sorted(servicer.seqs) == [1, 2, 3, 4, 5]
    assert servicer.tokens == {"Bearer secret-token"}
    assert (results(registry, "alert"), results(registry, "rejected"), results(registry, "no_match")) == (
        1,
        1,
        3,
    )
    assert all(not item.vector.any() and not any(item.crop_jpeg) for item in sent)


async def test_matcher_down_at_start_keeps_retrying_with_a_bounded_buffer() -> None:
    probe, port = await start_matcher(FakeMatcher())
    await probe.stop(0)  # a port nobody listens on now
    registry = CollectorRegistry()
    client = client_for(port, registry)
    running = asyncio.create_task(client.run())
    items = [observation() for _ in range(20)]
    for item in items:
        client.submit(item)
    await wait_until(lambda: client.attempts >= 3)
    assert client.pending == FAST.buffer_max
    assert client.dropped == 12
    assert registry.get_sample_value("lfr_camera_observations_dropped_total", {"camera": "cam-1"}) == 12
    assert all(not item.vector.any() for item in items[:12])  # dropped oldest first, wiped

    servicer = FakeMatcher()
    server, _ = await start_matcher(servicer, port)
    assert await client.drain(5)
    assert servicer.seqs == list(range(13, 21))
    client.stop()
    await running
    await server.stop(0)


async def test_stream_resumes_after_the_matcher_restarts_mid_stream() -> None:
    first = FakeMatcher()
    server, port = await start_matcher(first)
    registry = CollectorRegistry()
    client = client_for(
        port, registry, StreamPolicy(buffer_max=100, backoff_initial_s=0.05, backoff_max_s=0.1)
    )
    running = asyncio.create_task(client.run())
    for _ in range(5):
        client.submit(observation())
    assert await client.drain(5)
    await wait_until(lambda: client.connected)
    await server.stop(0)
    await wait_until(lambda: not client.connected)
    for _ in range(5):
        client.submit(observation())  # while the matcher is away
    second = FakeMatcher()
    server, _ = await start_matcher(second, port)
    assert await client.drain(5)
    for _ in range(3):
        client.submit(observation())
    assert await client.drain(5)
    client.stop()
    await running
    await server.stop(0)
    assert first.seqs == [1, 2, 3, 4, 5]
    assert second.seqs == list(range(6, 14))
    # One session id across reconnects, so the matcher recognises re-sent seqs; another process gets another.
    assert first.sessions == second.sessions == {client.node_session}
    assert len(client.node_session) == 32
    assert client_for(port, CollectorRegistry()).node_session != client.node_session
    assert results(registry, "no_match") == 13
    assert (registry.get_sample_value("lfr_camera_reconnects_total", {"camera": "cam-1"}) or 0) >= 1


def test_backoff_grows_to_the_cap_with_bounded_jitter() -> None:
    policy = StreamPolicy(backoff_initial_s=0.1, backoff_max_s=2.0, backoff_multiplier=2.0, jitter=0.2)
    rng = random.Random(7)
    delays = [backoff_delay(attempt, policy, rng) for attempt in range(10)]
    assert 0.08 <= delays[0] <= 0.12
    assert 0.16 <= delays[1] <= 0.24
    assert all(d <= 2.0 for d in delays)
    assert delays[-1] >= 1.6
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jittered, not lockstep


@pytest.mark.parametrize("stop_while", ["connected", "disconnected"])
async def test_stop_wipes_whatever_is_still_buffered(stop_while: str) -> None:
    servicer = FakeMatcher()
    server, port = await start_matcher(servicer)
    if stop_while == "disconnected":
        await server.stop(0)
    registry = CollectorRegistry()
    client = client_for(port, registry)
    running = asyncio.create_task(client.run())
    items = [observation() for _ in range(6)]
    for item in items:
        client.submit(item)
    client.stop()
    await asyncio.wait_for(running, 5)
    client.wipe_all()
    await server.stop(0)
    assert client.pending == 0
    assert all(not item.vector.any() and not any(item.crop_jpeg) for item in items)


async def test_the_client_reports_the_answers_it_has_read() -> None:
    """The matcher cuts off a stream whose caller leaves answers unread (answers_read): the client must
    report its reads, so that it is never behind by more than its own in-flight window."""
    servicer = FakeMatcher()
    server, port = await start_matcher(servicer)
    policy = StreamPolicy(buffer_max=64, batch_max=1, max_in_flight=2, backoff_initial_s=0.05)
    client = client_for(port, CollectorRegistry(), policy)
    running = asyncio.create_task(client.run())
    for i in range(30):
        client.submit(observation(f"t{i}"))
    assert await client.drain(5)
    client.stop()
    await running
    await server.stop(0)
    assert len(servicer.unread) == 30
    assert max(servicer.unread) <= policy.max_in_flight
    assert min(servicer.unread) >= 0  # never claims more than it was sent


class UnstorableMatcher(FakeMatcher):
    """Answers every observation store_error (a hit it could not store) until `window_over`, then
    not_armed; remembers how often each seq was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.window_over = False

    async def Stream(
        self, request_iterator: AsyncIterator[ingest_pb2.ObservationBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.ObservationResults]:
        async for batch in request_iterator:
            results = ingest_pb2.ObservationResults()
            for o in batch.observations:
                self.seqs.append(o.seq)
                if self.window_over:
                    results.results.append(
                        ingest_pb2.ObservationResult(seq=o.seq, outcome=ingest_pb2.OUTCOME_NOT_ARMED)
                    )
                else:
                    results.results.append(
                        ingest_pb2.ObservationResult(
                            seq=o.seq, outcome=ingest_pb2.OUTCOME_REJECTED, reject_code="store_error"
                        )
                    )
            yield results


async def test_unstored_hits_are_kept_bounded_resent_and_wiped_when_the_window_ends() -> None:
    servicer = UnstorableMatcher()
    server, port = await start_matcher(servicer)
    registry = CollectorRegistry()
    policy = StreamPolicy(buffer_max=8, batch_max=1, max_in_flight=1, hits_max=2, retry_hits_every_s=0.05)
    client = client_for(port, registry, policy)
    running = asyncio.create_task(client.run())
    sent = [observation(f"hit{i}") for i in range(3)]
    for item in sent:
        client.submit(item)
    await wait_until(lambda: servicer.seqs.count(2) >= 3 and servicer.seqs.count(3) >= 3)
    assert client.unacknowledged_hits == 2  # the oldest of three dropped: hits_max
    sample = registry.get_sample_value
    assert sample("lfr_camera_hits_dropped_total", {"camera": "cam-1"}) == 1
    assert not sent[0].vector.any()  # the dropped one is wiped
    assert sent[2].vector.any()  # a kept one is not
    servicer.window_over = True
    await wait_until(lambda: client.unacknowledged_hits == 0)
    assert all(not item.vector.any() and not any(item.crop_jpeg) for item in sent)
    assert sample("lfr_camera_hits_unacknowledged", {"camera": "cam-1"}) == 0
    client.stop()
    await running
    await server.stop(0)


async def test_ended_tracks_ride_with_the_message_that_carries_the_last_queued_faces() -> None:
    servicer = FakeMatcher()
    server, port = await start_matcher(servicer)
    client = client_for(port, CollectorRegistry())
    for track in ("a", "a", "b"):
        client.submit(observation(track))
    client.tracks_ended(["a"])  # after its last face was queued
    running = asyncio.create_task(client.run())
    assert await client.drain(5)
    client.submit(observation("c"))
    client.tracks_ended(["b", "c"])
    assert await client.drain(5)
    client.stop()
    await running
    await server.stop(0)
    carried = [(seqs, ended) for seqs, ended in servicer.messages if ended]
    assert carried == [([1, 2, 3], ["a"]), ([4], ["b", "c"])] or [e for _, e in carried] == [
        ["a"],
        ["b", "c"],
    ]
    # never before the faces they follow
    last_seq_by_track = {"a": 2, "b": 3, "c": 4}
    for seqs, ended in servicer.messages:
        for track in ended:
            assert max(seqs) >= last_seq_by_track[track]


@pytest.mark.parametrize("packed", [True, False])
async def test_embeddings_go_packed_in_the_message_or_one_per_observation_for_an_older_matcher(
    packed: bool,
) -> None:
    matcher = FakeMatcher()
    server, port = await start_matcher(matcher)
    client = client_for(port, CollectorRegistry(), dataclasses.replace(FAST, packed_embeddings=packed))
    sent = [observation() for _ in range(6)]
    expected = [o.vector.astype("<f4").tobytes() for o in sent]
    running = asyncio.create_task(client.run())
    for item in sent:
        client.submit(item)
    assert await client.drain(5)
    client.stop()
    await running
    await server.stop(0)
    assert matcher.embeddings == expected
    assert set(matcher.packed) == {packed}
