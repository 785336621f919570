"""Observations re-sent after a broken stream are answered from memory: one face, one alert."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from lfr.adapters.grpc.resends import Answers, RecentResults
from lfr.config import LfrConfig
from lfr.domain.observation import ObservationResult, Outcome
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import World, matcher_config, observation

BATCH_WAIT_S = 0.05


@pytest.fixture
def config() -> LfrConfig:
    # The matcher gathers each batch this long, which leaves time to break a stream mid-batch.
    return matcher_config(**{"matching.batch_wait_ms": BATCH_WAIT_S * 1000})


async def send(world: World, session: str, batch: list[ipb.Observation]) -> ipb.ObservationResults:
    call = world.ingest.Stream(metadata=world.md("cam-1"))
    await call.write(ipb.ObservationBatch(observations=batch, node_session=session))
    answer: ipb.ObservationResults = await call.read()
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    return answer


def stored_alert_ids(world: World) -> list[str]:
    with world.container.store() as uow:
        return [a.id for a in uow.alerts.find()]


async def test_resent_observation_gets_the_same_alert_and_raises_no_second_one(world: World):
    await world.armed_window()
    batch = [observation(1, world.people[2]), observation(2, world.stranger())]
    first = await send(world, "node-a", batch)
    again = await send(world, "node-a", batch)
    assert [r.outcome for r in first.results] == [ipb.OUTCOME_ALERT, ipb.OUTCOME_NO_MATCH]
    assert list(again.results) == list(first.results)
    assert stored_alert_ids(world) == [first.results[0].alert_id]
    world.container.flush_counters()
    with world.container.store() as uow:
        totals = uow.counters.totals()
    faces = sum(n for (_, _, outcome), n in totals.items() if outcome != "tracks")
    people = sum(n for (_, _, outcome), n in totals.items() if outcome == "tracks")
    assert (faces, people) == (2, 2)  # the re-sent faces were not counted again, nor their people


async def test_a_new_node_session_with_the_same_seq_is_matched_afresh(world: World):
    await world.armed_window()
    old = await send(world, "node-a", [observation(1, world.people[2])])
    new = await send(world, "node-b", [observation(1, world.people[4])])
    unnamed = await send(world, "", [observation(1, world.people[4])])  # no session: no memory
    ids = [a.results[0].alert_id for a in (old, new, unnamed)]
    assert len(set(ids)) == 3
    assert sorted(stored_alert_ids(world)) == sorted(ids)


async def test_resend_of_a_batch_cut_off_before_its_answer_raises_one_alert(world: World):
    await world.armed_window()
    batch = [observation(5, world.people[1])]
    broken = world.ingest.Stream(metadata=world.md("cam-1"))
    await broken.write(ipb.ObservationBatch(observations=batch, node_session="node-a"))
    await asyncio.sleep(BATCH_WAIT_S / 3)  # read and waiting in the micro-batcher
    broken.cancel()  # the stream breaks before the answer is read, as in a network cut
    answer = await send(world, "node-a", batch)
    assert answer.results[0].outcome == ipb.OUTCOME_ALERT
    await asyncio.sleep(2 * BATCH_WAIT_S)  # anything the broken stream's batch still did has happened by now
    assert stored_alert_ids(world) == [answer.results[0].alert_id]


async def test_memory_of_recent_results_is_bounded_in_size_and_age():
    now = [0.0]
    recent = RecentResults(max_entries=3, max_age_seconds=10, monotonic=lambda: now[0])
    loop = asyncio.get_running_loop()

    def done(alert: str) -> asyncio.Future[Answers]:
        future: asyncio.Future[Answers] = loop.create_future()
        future.set_result([None, ObservationResult(Outcome.ALERT, alert_id=alert)])
        return future

    for seq in range(1, 6):
        recent.remember(("cam-1", "s", seq), done(f"a{seq}"), 1)  # its message's second answer
        now[0] += 1
    recent.expire()  # the servicer's, once a message's observations are remembered
    assert len(recent) == 3
    assert recent.get(("cam-1", "s", 2)) is None  # oldest dropped first
    kept = recent.get(("cam-1", "s", 5))
    assert kept is not None
    assert kept.result().alert_id == "a5"
    now[0] += 8.5  # seq 3 was remembered 10.5 s ago, seq 5 8.5 s ago
    recent.expire()
    assert recent.get(("cam-1", "s", 3)) is None
    assert recent.get(("cam-1", "s", 5)) is not None
    now[0] += 2
    recent.expire()
    assert recent.get(("cam-1", "s", 5)) is None
    assert len(recent) == 0


async def test_a_track_the_node_says_ended_is_forgotten_at_once(world: World):
    """Issue 10: the matcher keeps a track's fused evidence in memory only until the node says the track
    ended (or 10 s without a face); the notice comes after the track's last faces are answered."""
    await world.armed_window()
    evidence = world.container.ingest.track_evidence
    faces = [observation(seq, world.stranger()) for seq in (1, 2, 3)]
    for face in faces:
        face.track_id = "walker"
    faces[2].track_id = "other"
    await send(world, "node-a", faces)
    assert len(evidence) == 2
    held = [t.total for t in evidence._tracks.values()]
    call = world.ingest.Stream(metadata=world.md("cam-1"))
    last = observation(4, world.stranger())
    last.track_id = "walker"
    # Its last face and the notice in one message: the face is matched first, then the track goes.
    await call.write(
        ipb.ObservationBatch(observations=[last], node_session="node-a", ended_track_ids=["walker"])
    )
    answer = await call.read()
    await call.done_writing()
    assert answer.results[0].outcome == ipb.OUTCOME_NO_MATCH
    for _ in range(50):
        if len(evidence) == 1:
            break
        await asyncio.sleep(0.02)
    assert [k[3] for k in evidence._tracks] == ["other"]
    assert not held[0].any()  # zeroed, not just dropped
    assert held[1].any()
    # Another session's notice cannot make this one's track be forgotten.
    call = world.ingest.Stream(metadata=world.md("cam-1"))
    await call.write(ipb.ObservationBatch(node_session="node-b", ended_track_ids=["other"]))
    await call.read()
    await call.done_writing()
    await asyncio.sleep(0.1)
    assert [k[3] for k in evidence._tracks] == ["other"]


async def test_a_seq_twice_in_one_message_is_matched_once_and_both_get_its_answer(world: World):
    await world.armed_window()
    face = observation(5, world.people[3])
    answer = await send(world, "node-a", [face, observation(6, world.stranger()), face])
    first, _, second = answer.results
    assert first.outcome == ipb.OUTCOME_ALERT
    assert second == first
    assert stored_alert_ids(world) == [first.alert_id]


async def test_a_message_whose_batch_failed_is_matched_afresh_when_resent(world: World, monkeypatch):
    """Nothing was decided for it, so the memory must not answer the re-send (its refusals still are)."""
    await world.armed_window()
    ingest = world.container.ingest

    def failing(batch, authenticated_camera=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("a fault the service did not foresee")

    wrong_camera = observation(9, world.stranger())
    wrong_camera.camera_id = "cam-2"
    batch = [observation(8, world.people[1]), wrong_camera]
    with monkeypatch.context() as patched:
        patched.setattr(ingest, "_process", failing)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await send(world, "node-a", batch)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    again = await send(world, "node-a", batch)
    assert again.results[0].outcome == ipb.OUTCOME_ALERT
    assert again.results[1].reject_code == "camera_mismatch"  # refused before matching: from memory
    assert stored_alert_ids(world) == [again.results[0].alert_id]
