"""The ingest use case end to end over the in-memory store and real FAISS: no server needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lfr.adapters.faiss_index import faiss_flat_index
from lfr.adapters.jpeg import JpegCropValidator
from lfr.adapters.storage.memory import MemoryStore
from lfr.domain.alert import Adjudication
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
    vector: np.ndarray,
    camera: str = "cam-1",
    model: str = MODEL,
    source_ref: str | None = None,
    track: str = "t1",
    crop: bytes | None = None,
    at: datetime = START,
) -> Observation:
    return Observation(
        camera,
        at,
        track,
        model,
        np.array(vector, dtype=np.float32),
        bytearray(crop or tiny_jpeg()),
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
        assert uow.counters.totals(world["window"].id) == {
            (world["window"].id, "cam-1", "no_match"): 1,
            (world["window"].id, "cam-1", "tracks"): 1,  # one person seen: a count, nothing of them
        }
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
        observe(person, source_ref="node-a:1", track="ta-1"),
        observe(person, source_ref="node-a:2", track="ta-2"),
        observe(person, source_ref="node-b:1", track="tb-1"),
        observe(person, track="t1"),
        observe(person, track="t2"),
    ]
    results = world["ingest"].process(batch)
    assert [r.outcome for r in results] == [Outcome.ALERT] * 5
    ids = [r.alert_id for r in results]
    assert len(set(ids)) == 5
    assert [a.id for a in world["publisher"].alerts] == ids


def test_later_faces_of_a_track_update_its_one_alert(world):
    armed(world)
    person, rng = world["people"][1], world["rng"]

    def face(noise: float) -> np.ndarray:
        return unit(person + noise * rng.normal(size=DIM).astype(np.float32))

    faces = [
        observe(face(0.08), source_ref="n:1", crop=tiny_jpeg(b"first"), at=START + timedelta(seconds=1)),
        observe(face(0.0), source_ref="n:2", crop=tiny_jpeg(b"best"), at=START + timedelta(seconds=2)),
        observe(face(0.08), source_ref="n:3", crop=tiny_jpeg(b"later"), at=START + timedelta(seconds=4)),
    ]
    results = [world["ingest"].process([f])[0] for f in faces]
    assert [r.outcome for r in results] == [Outcome.ALERT] * 3
    assert len({r.alert_id for r in results}) == 1
    with world["store"]() as uow:
        (listed,) = uow.alerts.find()
        stored = uow.alerts.get(listed.id)  # listings carry no crop
        actions = [r.action for r in uow.audit.records() if r.action.startswith("alert.")]
        assert verify_chain(list(uow.audit.records()), uow.audit.head()).ok
    assert stored.sightings == 3
    assert (stored.first_seen_at, stored.last_seen_at) == (
        START + timedelta(seconds=1),
        START + timedelta(seconds=4),
    )
    assert b"best" in stored.crop_jpeg
    assert stored.captured_at == START + timedelta(seconds=2)
    assert stored.score > 0.99
    assert actions == ["alert.raised", "alert.seen_again", "alert.seen_again"]
    # Officers' tablets hear of each change to the one card, never of a second card.
    assert [a.id for a in world["publisher"].alerts] == [stored.id] * 3
    assert [a.sightings for a in world["publisher"].alerts] == [1, 2, 3]
    # each update carries a new store revision, which is what live feeds follow (as for decisions)
    revisions = [a.revision for a in world["publisher"].alerts]
    assert revisions == sorted(set(revisions))


def test_another_track_or_another_subject_raises_its_own_alert(world):
    armed(world)
    one, two = world["people"][0], world["people"][2]
    results = [
        world["ingest"].process([o])[0]
        for o in (observe(one, track="t1"), observe(one, track="t2"), observe(two, track="t1"))
    ]
    assert len({r.alert_id for r in results}) == 3


def test_a_decided_alert_keeps_its_evidence_and_no_second_alert_is_raised(world):
    armed(world)
    person = world["people"][0]
    [first] = world["ingest"].process([observe(person, source_ref="n:1", crop=tiny_jpeg(b"shown"))])
    officer = Principal("pc1", PrincipalKind.USER, frozenset({Role.OFFICER}))
    with world["store"]() as uow:
        alert = uow.alerts.get(first.alert_id)
        uow.alerts.update(alert.adjudicate(Adjudication.FALSE_ALERT, officer.name, START))
        uow.commit()
    later = observe(person, source_ref="n:2", crop=tiny_jpeg(b"not shown"))
    [again] = world["ingest"].process([later])
    assert again.outcome is Outcome.ALERT
    assert again.alert_id == first.alert_id
    assert not any(later.crop_jpeg)
    with world["store"]() as uow:
        (listed,) = uow.alerts.find()
        stored = uow.alerts.get(listed.id)  # listings carry no crop
    assert b"shown" in stored.crop_jpeg
    assert stored.sightings == 1
    assert len(world["publisher"].alerts) == 1


def test_a_resent_face_of_a_track_is_not_counted_twice(world):
    armed(world)
    person = world["people"][0]
    [first] = world["ingest"].process([observe(person, source_ref="n:1")])
    [again] = world["ingest"].process([observe(person, source_ref="n:1")])
    assert again.alert_id == first.alert_id
    with world["store"]() as uow:
        (stored,) = uow.alerts.find()
    assert stored.sightings == 1


def test_a_node_session_restarted_mid_track_raises_afresh_then_folds_again(world):
    armed(world)
    person = world["people"][0]
    ids = [
        world["ingest"].process([observe(person, source_ref=ref, track="t9")])[0].alert_id
        for ref in ("old-session:1", "new-session:1", "new-session:2", "old-session:2")
    ]
    assert ids[0] != ids[1]
    assert ids == [ids[0], ids[1], ids[1], ids[0]]


def template_of(world, subject: int) -> np.ndarray:
    """The subject's search template: the unit mean of its enrolled rows."""
    with world["store"]() as uow:
        rows, vectors = uow.watchlists.embeddings(world["window"].watchlist_id)
    mine = vectors[[r == world["subjects"][subject].id for r in rows]]
    return unit(mine.mean(axis=0))


def near(template: np.ndarray, cosine: float, rng: np.random.Generator, away: np.ndarray | None = None):
    """A unit vector at exactly `cosine` to `template`, off in a random (or the given) direction."""
    direction = away if away is not None else rng.normal(size=template.shape)
    direction = direction - (direction @ template) * template
    direction /= np.linalg.norm(direction)
    return unit(cosine * template + np.sqrt(1 - cosine**2) * direction)


def test_faces_of_one_track_that_agree_alert_where_each_alone_falls_short(world):
    armed(world)
    template, rng = template_of(world, 1), world["rng"]
    faces = [near(template, 0.75, rng) for _ in range(4)]  # threshold 0.8: no single face reaches it
    outcomes = [
        world["ingest"].process([observe(f, source_ref=f"n:{i}", track="walker")])[0]
        for i, f in enumerate(faces)
    ]
    assert [r.outcome for r in outcomes] == [Outcome.NO_MATCH] + [Outcome.ALERT] * 3
    assert len({r.alert_id for r in outcomes[1:]}) == 1
    with world["store"]() as uow:
        (alert,) = uow.alerts.find()
    assert alert.subject_id == world["subjects"][1].id
    assert alert.score > 0.8
    assert alert.sightings == 3
    # the same faces as separate passages (one face per track) raise nothing
    singles = [world["ingest"].process([observe(f, track=f"alone-{i}")])[0] for i, f in enumerate(faces)]
    assert {r.outcome for r in singles} == {Outcome.NO_MATCH}


def test_a_tracker_swap_cannot_average_two_strangers_into_a_listed_person(world):
    armed(world)
    template, rng = template_of(world, 1), world["rng"]
    away = rng.normal(size=template.shape)
    # Two people, each 0.6 like the subject, off in opposite directions: their mean IS the template.
    first, second = near(template, 0.6, rng, away), near(template, 0.6, rng, -away)
    assert float(unit(first + second) @ template) > 0.99
    results = [
        world["ingest"].process([observe(v, source_ref=f"n:{i}", track="swapped")])[0]
        for i, v in enumerate([first, second])
    ]
    assert [r.outcome for r in results] == [Outcome.NO_MATCH, Outcome.NO_MATCH]
    assert world["publisher"].alerts == []


def test_a_resent_or_late_face_is_added_to_its_track_once(world):
    armed(world)
    template, rng = template_of(world, 1), world["rng"]
    face = near(template, 0.75, rng)
    for _ in range(3):  # re-sent: the same source, the same face
        assert (
            world["ingest"].process([observe(face, source_ref="n:5", track="t")])[0].outcome
            is Outcome.NO_MATCH
        )
    key = (world["window"].id, "cam-1", "n", "t")
    assert world["ingest"].track_evidence.faces(key) == 1
    # an earlier face arriving after a later one still counts: order does not matter to a mean
    late = world["ingest"].process([observe(near(template, 0.75, rng), source_ref="n:2", track="t")])[0]
    assert late.outcome is Outcome.ALERT
    assert world["ingest"].track_evidence.faces(key) == 2


def test_a_new_node_session_mid_track_starts_fresh_evidence(world):
    armed(world)
    template, rng = template_of(world, 1), world["rng"]
    results = [
        world["ingest"].process([observe(near(template, 0.75, rng), source_ref=ref, track="t")])[0]
        for ref in ("old:1", "new:1")
    ]
    assert [r.outcome for r in results] == [Outcome.NO_MATCH, Outcome.NO_MATCH]


def test_a_window_closing_mid_track_wipes_the_track_and_nothing_alerts_after(world):
    armed(world)
    template, rng = template_of(world, 1), world["rng"]
    evidence = world["ingest"].track_evidence
    assert world["ingest"].process([observe(near(template, 0.75, rng), source_ref="n:1", track="t")])[
        0
    ].outcome is (Outcome.NO_MATCH)
    assert len(evidence) == 1
    (kept,) = evidence._tracks.values()
    total = kept.total
    assert total.any()
    world["clock"].advance(timedelta(hours=2))  # the window has ended
    late = world["ingest"].process([observe(near(template, 0.75, rng), source_ref="n:2", track="t")])[0]
    assert late.outcome is Outcome.NOT_ARMED
    assert len(evidence) == 0
    assert not total.any()  # overwritten, not just dropped
    assert world["publisher"].alerts == []


def test_people_seen_counts_tracks_not_faces(world):
    from lfr.services.deployment_overview import DeploymentOverviewService

    armed(world)
    rng = world["rng"]
    stranger = [unit(rng.normal(size=DIM)) for _ in range(3)]
    batch = [
        *(observe(stranger[0], source_ref=f"n:{i}", track="walker-1") for i in range(4)),
        *(observe(stranger[1], source_ref=f"n:{10 + i}", track="walker-2") for i in range(3)),
        observe(stranger[2], track=""),  # a node that names no track: counted as one person
        observe(world["people"][0], source_ref="n:20", track="walker-3"),
        observe(world["people"][0], source_ref="n:21", track="walker-3"),
    ]
    world["ingest"].process(batch)
    world["ingest"].flush_counters()
    (overview,) = DeploymentOverviewService(world["store"], world["clock"]).overview(SUPERVISOR)
    assert overview.faces_seen == 10
    assert overview.people_seen == 4
    assert overview.faces_discarded == 8  # both faces of the listed person's track answered "alert"
