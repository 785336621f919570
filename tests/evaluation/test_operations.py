"""The operational report from a real deployment run through lfr's services over the memory store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from evaluation.operations import operations_report
from lfr.adapters.faiss_index import faiss_flat_index
from lfr.adapters.jpeg import JpegCropValidator
from lfr.adapters.storage.memory import MemoryStore
from lfr.cli.main import app
from lfr.domain.alert import Adjudication
from lfr.domain.clock import ManualClock
from lfr.domain.observation import Observation, Outcome
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.domain.window import WindowSpec
from lfr.services.alerts import AlertService
from lfr.services.arming import ArmingMonitor
from lfr.services.deployments import DeploymentService
from lfr.services.indexes import IndexCache
from lfr.services.ingest import IngestService
from lfr.services.watchlists import SubjectSpec, WatchlistService
from tests.support import NullMetrics, RecordingPublisher, tiny_jpeg

DIM, MODEL = 16, "model-a"
START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SUPERVISOR = Principal("sup", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))


def unit(v):
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture
def deployment():
    """One 2-hour window on cam-1: 3 listed people seen (alerts), 7 strangers, adjudicated 1/1/1."""
    rng = np.random.default_rng(3)
    store, clock = MemoryStore(), ManualClock(START)
    watchlists = WatchlistService(store, clock)
    wl = watchlists.create("ops", MODEL, DIM, SUPERVISOR)
    people = [unit(rng.normal(size=DIM)) for _ in range(3)]
    subjects = [
        watchlists.add_subject(wl.id, SubjectSpec(f"ref-{i}", f"P{i}", "wanted", "warrant", "custody"),
                               p[None, :], MODEL, SUPERVISOR)
        for i, p in enumerate(people)
    ]  # fmt: skip
    wl = watchlists.seal(wl.id, SUPERVISOR)
    monitor = ArmingMonitor(store, clock)
    deployments = DeploymentService(store, clock, on_change=monitor.refresh)
    window = deployments.create(
        WindowSpec(
            "find", "PACE", "High St", frozenset({"cam-1"}), wl.id, 0.9, START, START + timedelta(hours=2)
        ),
        SUPERVISOR,
    )
    deployments.authorise(window.id, SUPERVISOR)
    indexes = IndexCache(store, faiss_flat_index)
    ingest = IngestService(
        store, clock, monitor.gate, indexes, RecordingPublisher(), JpegCropValidator(), NullMetrics()
    )
    clock.advance(timedelta(minutes=30))
    monitor.refresh()  # keeps the gate fresh (it goes stale after 5 s without a refresh)

    def observe(v, track):
        return Observation(
            "cam-1", clock.now(), track, MODEL, np.array(v, np.float32), bytearray(tiny_jpeg())
        )

    strangers = [unit(rng.normal(size=DIM)) for _ in range(7)]
    results = ingest.process([observe(v, f"t{i}") for i, v in enumerate([*people, *strangers])])
    assert [r.outcome for r in results].count(Outcome.ALERT) == 3
    ingest.flush_counters()
    alerts = AlertService(store, clock)
    officer = Principal("sup", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))
    for result, outcome in zip(results[:3], Adjudication, strict=True):
        alerts.adjudicate(result.alert_id, outcome, officer)
    clock.advance(timedelta(hours=2))
    monitor.refresh()  # the window ended at 12:00; this refresh (12:30) records the disarm
    return {"store": store, "window": window, "subjects": subjects}


def test_operations_report_counts_time_faces_alerts_and_outcomes(deployment):
    with deployment["store"]() as uow:
        report = operations_report(uow, None, None)
    (window,) = report.windows
    assert window.window_id == deployment["window"].id
    assert window.location == "High St"
    # armed on authorisation at 10:00; the disarm is audited at 12:30 but matching stopped at the 12:00 end
    assert window.armed == timedelta(hours=2)
    assert window.faces_seen == 10
    assert window.people_seen == 10  # each passed once, in a track of its own
    assert (window.alerts, window.confirmed, window.false_alerts, window.not_engaged) == (3, 1, 1, 1)
    assert window.false_alert_rate == pytest.approx(1 / 10)
    assert report.total.faces_seen == 10
    assert report.as_dict()["total"]["people_seen"] == 10
    assert report.as_dict()["total"]["false_alert_one_in"] == pytest.approx(10)


def test_only_confirmed_subjects_are_named_and_only_on_request(deployment):
    with deployment["store"]() as uow:
        report = operations_report(uow, None, None)
    assert "confirmed_subjects" not in report.as_dict()["total"]
    named = report.as_dict(show_subjects=True)["total"]["confirmed_subjects"]
    assert named == [deployment["subjects"][0].id]  # Adjudication order: confirmed went to person 0


def test_a_period_before_the_deployment_is_empty(deployment):
    with deployment["store"]() as uow:
        report = operations_report(uow, START - timedelta(days=2), START - timedelta(days=1))
    assert report.windows == []
    assert report.total.faces_seen == 0


def test_operations_cli_prints_json(monkeypatch):
    monkeypatch.setenv("LFR_STORE_URL", "memory://")
    result = CliRunner().invoke(
        app, ["eval", "operations", "--from", "2026-01-01", "--to", "2027-01-01", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["total"]["alerts"] == 0
    result = CliRunner().invoke(app, ["eval", "operations", "--from", "yesterday"])
    assert result.exit_code == 2
