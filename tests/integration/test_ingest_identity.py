"""Camera identity and time: captured_at far from the matcher's clock is refused (counted); a camera cannot
send as another, nor reuse another camera's node session; a seq already used in a node session is refused
once the memory of recent answers no longer covers it, while re-sends after a reconnect (from that memory)
and re-sends of hits the store could not keep still work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from lfr.config import LfrConfig, MatchingSettings
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import World, matcher_config, observation, stamp


@pytest.fixture
def config() -> LfrConfig:
    # A memory of recent answers that forgets almost at once, so replays reach the seq check.
    return matcher_config(**{"grpc.resend_memory_entries": 1})


async def send(
    world: World, camera: str, session: str, batch: list[ipb.Observation]
) -> ipb.ObservationResults:
    call = world.ingest.Stream(metadata=world.md(camera))
    await call.write(ipb.ObservationBatch(observations=batch, node_session=session))
    answer: ipb.ObservationResults = await call.read()
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    return answer


def at(when: datetime, o: ipb.Observation) -> ipb.Observation:
    o.captured_at.CopyFrom(stamp(when))
    return o


def rejected(world: World, code: str) -> float:
    return world.container.registry.get_sample_value("lfr_rejected_total", {"reason": code}) or 0


async def test_captured_at_outside_the_tolerance_is_refused_and_counted(world: World):
    await world.armed_window()
    settings = MatchingSettings()
    now = datetime.now(UTC)
    answer = await send(
        world,
        "cam-1",
        "",
        [
            at(datetime(1990, 1, 1, tzinfo=UTC), observation(1, world.people[0])),
            at(datetime(2100, 1, 1, tzinfo=UTC), observation(2, world.people[0])),
            at(now - timedelta(seconds=settings.captured_at_max_age_s + 30), observation(3, world.people[0])),
            at(
                now + timedelta(seconds=settings.captured_at_max_ahead_s + 30),
                observation(4, world.people[0]),
            ),
            at(now - timedelta(seconds=5), observation(5, world.people[0])),
        ],
    )
    outcomes = [(r.outcome, r.reject_code) for r in answer.results]
    assert outcomes[:4] == [(ipb.OUTCOME_REJECTED, "bad_time")] * 4
    assert outcomes[4][0] == ipb.OUTCOME_ALERT
    assert all("captured_at" in r.reason for r in answer.results[:4])
    assert rejected(world, "bad_time") == 4
    with world.container.store() as uow:
        assert len(uow.alerts.find()) == 1


async def test_a_camera_cannot_send_as_another_nor_use_its_node_session(world: World):
    await world.armed_window()
    first = await send(world, "cam-1", "node-a", [observation(1, world.people[0])])
    assert first.results[0].outcome == ipb.OUTCOME_ALERT
    # cam-2 replays cam-1's observation as it was ...
    as_is = await send(world, "cam-2", "node-a", [observation(2, world.people[0], camera="cam-1")])
    assert as_is.results[0].reject_code == "camera_mismatch"
    # ... or relabelled as its own, but under cam-1's node session.
    relabelled = await send(world, "cam-2", "node-a", [observation(3, world.people[0], camera="cam-2")])
    assert relabelled.results[0].reject_code == "camera_mismatch"
    assert "session" in relabelled.results[0].reason
    with world.container.store() as uow:
        assert [a.camera_id for a in uow.alerts.find()] == ["cam-1"]


async def test_a_replayed_seq_is_refused_beyond_the_memory_of_recent_answers(world: World):
    await world.armed_window()
    first = await send(world, "cam-1", "node-a", [observation(1, world.people[0])])
    await send(world, "cam-1", "node-a", [observation(2, world.stranger())])  # evicts seq 1 from memory
    replay = await send(world, "cam-1", "node-a", [observation(1, world.people[3])])
    assert replay.results[0].outcome == ipb.OUTCOME_REJECTED
    assert replay.results[0].reject_code == "replayed"
    # A seq this replica never saw in the session (the node sent it elsewhere) is not a replay.
    gap = await send(
        world, "cam-1", "node-a", [observation(5, world.stranger()), observation(4, world.people[3])]
    )
    assert [r.outcome for r in gap.results] == [ipb.OUTCOME_NO_MATCH, ipb.OUTCOME_ALERT]
    with world.container.store() as uow:
        assert {a.id for a in uow.alerts.find()} == {first.results[0].alert_id, gap.results[1].alert_id}


async def test_a_hit_the_store_could_not_keep_may_be_resent_under_its_seq(world: World, monkeypatch):
    await world.armed_window()
    durability = world.container.ingest.durability
    refused = await _with_store_failing(world, monkeypatch)
    assert refused.results[0].reject_code == "store_error"
    assert durability.try_resume()
    again = await send(world, "cam-1", "node-a", [observation(7, world.people[1])])
    assert again.results[0].outcome == ipb.OUTCOME_ALERT


async def _with_store_failing(world: World, monkeypatch) -> ipb.ObservationResults:  # type: ignore[no-untyped-def]
    from lfr.domain.errors import StoreUnavailable

    store = world.container.ingest._uow

    def failing():  # type: ignore[no-untyped-def]
        raise StoreUnavailable("disk full")

    monkeypatch.setattr(world.container.ingest, "_uow", failing)
    try:
        return await send(world, "cam-1", "node-a", [observation(7, world.people[1])])
    finally:
        monkeypatch.setattr(world.container.ingest, "_uow", store)
