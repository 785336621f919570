"""The ingest use case end to end over the in-memory store and real FAISS: no server needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lfr.adapters.faiss_index import faiss_flat_index
from lfr.adapters.jpeg import JpegCropValidator
from lfr.adapters.storage.memory import MemoryStore
from lfr.domain.audit import verify_chain
from lfr.domain.clock import ManualClock
from lfr.domain.observation import Observation, Outcome, RejectCode
from lfr.domain.ports import UnitOfWorkFactory
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.domain.window import WindowSpec
from lfr.services.arming import ArmingMonitor
from lfr.services.deployments import DeploymentService
from lfr.services.indexes import IndexCache
from lfr.services.ingest import IngestService
from lfr.services.watchlists import SubjectSpec, WatchlistService
from tests.support import NullMetrics, RecordingPublisher, tiny_jpeg

DIM = 16
MODEL = "model-a"
START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SUPERVISOR = Principal("sup", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture
def store():
    """The in-memory store here; tests/integration/test_services_on_sql.py reruns these tests on SQLite."""
    return MemoryStore()


@pytest.fixture
def world(store):
    rng = np.random.default_rng(7)
    clock = ManualClock(START)
    watchlists = WatchlistService(store, clock)
    wl = watchlists.create("test", MODEL, DIM, SUPERVISOR)
    people = [unit(rng.normal(size=DIM)) for _ in range(3)]
    subjects = [
        watchlists.add_subject(
            wl.id,
            SubjectSpec(f"ref-{i}", f"P{i}", "wanted", "warrant", "custody"),
            np.stack([p, unit(p + 0.05 * rng.normal(size=DIM))]),
            MODEL,
            SUPERVISOR,
        )
        for i, p in enumerate(people)
    ]
    wl = watchlists.seal(wl.id, SUPERVISOR)
    monitor = ArmingMonitor(store, clock)
    deployments = DeploymentService(store, clock, on_change=monitor.refresh)
    window = deployments.create(
        WindowSpec(
            "find wanted people",
            "PACE s.1",
            "High St",
            frozenset({"cam-1"}),
            wl.id,
            0.8,
            START + timedelta(minutes=10),
            START + timedelta(hours=2),
        ),
        SUPERVISOR,
    )
    publisher = RecordingPublisher()
    ingest = IngestService(
        store,
        clock,
        monitor.gate,
        IndexCache(store, faiss_flat_index),
        publisher,
        JpegCropValidator(),
        NullMetrics(),
        # Observations here are all captured at START while the clock moves on; the captured-at
        # tolerance is tested in tests/integration/test_ingest_identity.py.
        captured_at_max_age=timedelta(days=1),
    )
    return {
        "store": store,
        "clock": clock,
        "deployments": deployments,
        "window": window,
        "monitor": monitor,
        "ingest": ingest,
        "people": people,
        "subjects": subjects,
        "publisher": publisher,
        "rng": rng,
    }


def observe(
    vector: np.ndarray, camera: str = "cam-1", model: str = MODEL, source_ref: str | None = None
) -> Observation:
    return Observation(
        camera,
        START,
        "t1",
        model,
        np.array(vector, dtype=np.float32),
        bytearray(tiny_jpeg()),
        source_ref=source_ref,
    )


def test_matches_only_inside_an_authorised_window(world):
    ingest, clock, person = world["ingest"], world["clock"], world["people"][1]
    world["monitor"].refresh()
    assert ingest.process([observe(person)])[0].outcome is Outcome.NOT_ARMED  # not authorised yet
    world["deployments"].authorise(world["window"].id, SUPERVISOR)
    assert ingest.process([observe(person)])[0].outcome is Outcome.NOT_ARMED  # not started yet
    clock.advance(timedelta(minutes=15))
    world["monitor"].refresh()
    result = ingest.process([observe(person)])[0]
    assert result.outcome is Outcome.ALERT
    assert world["publisher"].alerts[0].id == result.alert_id
    assert world["publisher"].alerts[0].subject_id == world["subjects"][1].id
    clock.advance(timedelta(hours=2))
    assert ingest.process([observe(person)])[0].outcome is Outcome.NOT_ARMED  # expired


def test_non_match_is_wiped_and_only_counted(world):
    ingest = world["ingest"]
    world["deployments"].authorise(world["window"].id, SUPERVISOR)
    world["clock"].advance(timedelta(minutes=15))
    world["monitor"].refresh()
    stranger = observe(unit(world["rng"].normal(size=DIM)))
    vector, crop = stranger.vector, stranger.crop_jpeg
    assert ingest.process([stranger])[0].outcome is Outcome.NO_MATCH
    assert not vector.any()
    assert not any(crop)
    ingest.flush_counters()
    with world["store"]() as uow:
        assert uow.counters.totals(world["window"].id) == {(world["window"].id, "cam-1", "no_match"): 1}
        assert uow.alerts.find() == []


def test_bad_observations_are_rejected_one_by_one(world):
    ingest = world["ingest"]
    world["deployments"].authorise(world["window"].id, SUPERVISOR)
    world["clock"].advance(timedelta(minutes=15))
    world["monitor"].refresh()
    nan = world["people"][0].copy()
    nan[3] = np.nan
    batch = [
        observe(nan),
        observe(np.zeros(DIM)),
        observe(np.ones(DIM + 1)),
        observe(world["people"][0], model="other"),
        observe(world["people"][0]),
    ]
    batch[-1].crop_jpeg = bytearray(b"\xff\xd8\xff not a jpeg \xff\xd9")
    batch.append(observe(world["people"][0]))
    results = ingest.process(batch)
    assert [r.reject_code for r in results[:5]] == [
        RejectCode.BAD_EMBEDDING,
        RejectCode.BAD_EMBEDDING,
        RejectCode.BAD_EMBEDDING,
        RejectCode.WRONG_MODEL,
        RejectCode.BAD_CROP,
    ]
    assert results[5].outcome is Outcome.ALERT


def test_malformed_crops_are_rejected_even_for_strangers(world):
    ingest = world["ingest"]
    world["deployments"].authorise(world["window"].id, SUPERVISOR)
    world["clock"].advance(timedelta(minutes=15))
    world["monitor"].refresh()
    stranger = unit(world["rng"].normal(size=DIM))
    truncated, oversized, empty = observe(stranger), observe(stranger), observe(stranger)
    truncated.crop_jpeg = truncated.crop_jpeg[:-10]
    oversized.crop_jpeg = bytearray(b"\xff\xd8\xff" + b"\x00" * 70_000 + b"\xff\xd9")
    empty.crop_jpeg = bytearray()
    results = ingest.process([truncated, oversized, empty])
    assert [r.reject_code for r in results] == [RejectCode.BAD_CROP] * 3
    assert "complete JPEG" in results[0].reason
    assert "limit" in results[1].reason


def test_audit_chain_records_window_lifecycle_and_alert(world):
    world["deployments"].authorise(world["window"].id, SUPERVISOR)
    world["clock"].advance(timedelta(minutes=15))
    world["monitor"].refresh()
    world["ingest"].process([observe(world["people"][2])])
    world["deployments"].close(world["window"].id, SUPERVISOR, "done")
    with world["store"]() as uow:
        records = list(uow.audit.records())
        head = uow.audit.head()
    actions = [r.action for r in records]
    assert actions[-6:] == [
        "window.authorised",
        "window.armed",
        "alert.raised",
        "window.closed",
        "window.disarmed",
        "observations.erased",
    ]
    assert verify_chain(records, head).ok


def replica(world, publisher: RecordingPublisher) -> IngestService:
    """Another matcher process over the same store (or this one restarted): it shares nothing in memory."""
    store: UnitOfWorkFactory = world["store"]
    monitor = ArmingMonitor(store, world["clock"])
    monitor.refresh()
    return IngestService(
        store,
        world["clock"],
        monitor.gate,
        IndexCache(store, faiss_flat_index),
        publisher,
        JpegCropValidator(),
        NullMetrics(),
        captured_at_max_age=timedelta(days=1),
    )


def armed(world) -> None:
    world["deployments"].authorise(world["window"].id, SUPERVISOR)
    world["clock"].advance(timedelta(minutes=15))
    world["monitor"].refresh()


def test_a_resent_observation_gets_its_stored_alert_and_nobody_is_told_twice(world):
    armed(world)
    other_publisher = RecordingPublisher()
    other = replica(world, other_publisher)
    person = world["people"][1]
    [first] = world["ingest"].process([observe(person, source_ref="node-a:7")])
    resent = observe(person, source_ref="node-a:7")
    vector, crop = resent.vector, resent.crop_jpeg
    [again] = other.process([resent])
    assert first.outcome is Outcome.ALERT
    assert again == first
    assert not vector.any()
    assert not any(crop)
    assert [a.id for a in world["publisher"].alerts] == [first.alert_id]
    assert other_publisher.alerts == []
    with world["store"]() as uow:
        assert [a.id for a in uow.alerts.find()] == [first.alert_id]
        assert uow.alerts.get(first.alert_id).source_ref == "node-a:7"
        raised = [r for r in uow.audit.records() if r.action == "alert.raised"]
        assert [r.subject_id for r in raised] == [first.alert_id]
        assert verify_chain(list(uow.audit.records()), uow.audit.head()).ok
    other.flush_counters()
    with world["store"]() as uow:
        assert uow.counters.totals() == {}  # the same face, counted where it was first matched


def test_a_source_repeated_within_one_batch_raises_one_alert(world):
    armed(world)
    person = world["people"][0]
    results = world["ingest"].process([observe(person, source_ref="node-a:1") for _ in range(2)])
    assert [r.outcome for r in results] == [Outcome.ALERT, Outcome.ALERT]
    assert results[0].alert_id == results[1].alert_id
    assert len(world["publisher"].alerts) == 1


def test_other_sources_and_observations_without_one_each_raise_their_own_alert(world):
    armed(world)
    person = world["people"][2]
    batch = [
        observe(person, source_ref="node-a:1"),
        observe(person, source_ref="node-a:2"),
        observe(person, source_ref="node-b:1"),
        observe(person),
        observe(person),
    ]
    results = world["ingest"].process(batch)
    assert [r.outcome for r in results] == [Outcome.ALERT] * 5
    ids = [r.alert_id for r in results]
    assert len(set(ids)) == 5
    assert [a.id for a in world["publisher"].alerts] == ids
