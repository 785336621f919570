"""`lfr eval operations` on a real SQLite store: two deployments driven through lfr's services (armed,
matched, adjudicated, disarmed at the end or closed early), then the report read back through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from evaluation.operations import operations_report
from lfr.adapters.faiss_index import faiss_flat_index
from lfr.adapters.jpeg import JpegCropValidator
from lfr.adapters.storage import open_store
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

DIM, MODEL = 32, "model-a"
DAY = datetime(2026, 11, 21, tzinfo=UTC)
SUPERVISOR = Principal("sup", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))


def unit(v):
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture
def deployments_on_sqlite(sqlite_url):
    """High St, cam-1, 10:00-12:00: 10 faces, 3 alerts (confirmed, false, not engaged); disarmed at its end.
    Station Rd, cam-2, 13:00-17:00, closed early at 14:30: 20 faces, 2 alerts (1 false, 1 pending).
    Between them, 5 faces reach the matcher while nothing is armed: they must count nowhere."""
    rng = np.random.default_rng(11)
    store, clock = open_store(sqlite_url), ManualClock(DAY.replace(hour=9))
    watchlists = WatchlistService(store, clock)
    wl = watchlists.create("ops", MODEL, DIM, SUPERVISOR)
    people = [unit(rng.normal(size=DIM)) for _ in range(5)]
    for i, person in enumerate(people):
        spec = SubjectSpec(f"ref-{i}", f"P{i}", "wanted", "warrant", "custody")
        watchlists.add_subject(wl.id, spec, person[None, :], MODEL, SUPERVISOR)
    wl = watchlists.seal(wl.id, SUPERVISOR)
    monitor = ArmingMonitor(store, clock)
    deployments = DeploymentService(store, clock, on_change=monitor.refresh)
    ingest = IngestService(
        store,
        clock,
        monitor.gate,
        IndexCache(store, faiss_flat_index),
        RecordingPublisher(),
        JpegCropValidator(),
        NullMetrics(),
    )
    alerts = AlertService(store, clock)

    def window(location, camera, start_hour, end_hour):
        spec = WindowSpec(
            "find wanted people", "PACE", location, frozenset({camera}), wl.id, 0.9,
            DAY.replace(hour=start_hour), DAY.replace(hour=end_hour),
        )  # fmt: skip
        created = deployments.create(spec, SUPERVISOR)
        return deployments.authorise(created.id, SUPERVISOR)

    def seen(camera, listed, strangers):
        vectors = [*listed, *(unit(rng.normal(size=DIM)) for _ in range(strangers))]
        batch = [
            Observation(camera, clock.now(), f"t{i}", MODEL, v.copy(), bytearray(tiny_jpeg()))
            for i, v in enumerate(vectors)
        ]
        results = ingest.process(batch)
        ingest.flush_counters()
        return results

    clock.set(DAY.replace(hour=10))
    high_st = window("High St", "cam-1", 10, 12)  # authorised at its start: armed now
    clock.advance(timedelta(minutes=40))
    monitor.refresh()
    results = seen("cam-1", people[:3], 7)
    assert [r.outcome for r in results].count(Outcome.ALERT) == 3
    for result, outcome in zip(results[:3], Adjudication, strict=True):
        alerts.adjudicate(result.alert_id, outcome, SUPERVISOR)
    clock.set(DAY.replace(hour=12, minute=30))
    monitor.refresh()  # disarm audited at 12:30; matching stopped at the window's 12:00 end
    assert {r.outcome for r in seen("cam-1", people[:1], 4)} == {Outcome.NOT_ARMED}

    clock.set(DAY.replace(hour=12, minute=45))
    station_rd = window("Station Rd", "cam-2", 13, 17)  # authorised early: armed only from 13:00
    clock.set(DAY.replace(hour=13))
    monitor.refresh()
    clock.advance(timedelta(minutes=20))
    monitor.refresh()
    results = seen("cam-2", people[3:5], 18)
    assert [r.outcome for r in results].count(Outcome.ALERT) == 2
    alerts.adjudicate(results[0].alert_id, Adjudication.FALSE_ALERT, SUPERVISOR)
    clock.set(DAY.replace(hour=14, minute=30))
    deployments.close(station_rd.id, SUPERVISOR, "crowd dispersed")
    yield {"store": store, "url": sqlite_url, "high_st": high_st.id, "station_rd": station_rd.id}
    store.close()


def test_per_window_figures_come_from_the_sql_audit_log_and_counters(deployments_on_sqlite):
    with deployments_on_sqlite["store"]() as uow:
        report = operations_report(uow, DAY, DAY + timedelta(days=1))
    by_id = {w.window_id: w for w in report.windows}
    high_st = by_id[deployments_on_sqlite["high_st"]]
    station_rd = by_id[deployments_on_sqlite["station_rd"]]
    assert (high_st.location, high_st.armed, high_st.faces_seen) == ("High St", timedelta(hours=2), 10)
    outcomes = (high_st.confirmed, high_st.false_alerts, high_st.not_engaged, high_st.pending)
    assert (high_st.alerts, outcomes) == (3, (1, 1, 1, 0))
    assert (station_rd.location, station_rd.armed, station_rd.faces_seen) == (
        "Station Rd", timedelta(hours=1, minutes=30), 20,
    )  # fmt: skip
    assert (station_rd.alerts, station_rd.false_alerts, station_rd.pending) == (2, 1, 1)
    assert report.total.faces_seen == 30  # the 5 faces seen while disarmed count nowhere
    assert report.total.armed == timedelta(hours=3, minutes=30)


def test_the_cli_reports_one_in_x_per_window_and_in_total_from_sqlite(deployments_on_sqlite, monkeypatch):
    deployments_on_sqlite["store"].close()  # the CLI opens the file itself, as an operator would
    monkeypatch.setenv("LFR_STORE_URL", deployments_on_sqlite["url"])
    runner = CliRunner()
    result = runner.invoke(
        app, ["eval", "operations", "--from", "2026-11-21", "--to", "2026-11-22", "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    rows = {w["location"]: w for w in document["windows"]}
    assert rows["High St"]["false_alert_one_in"] == pytest.approx(10)
    assert rows["Station Rd"]["false_alert_one_in"] == pytest.approx(20)
    assert rows["Station Rd"]["armed_hours"] == pytest.approx(1.5)
    assert document["total"]["false_alert_one_in"] == pytest.approx(15)
    assert "confirmed_subjects" not in document["total"]
    from evaluation.cli import console

    monkeypatch.setattr(console, "width", 200)  # a wide terminal: one line per window
    table = runner.invoke(app, ["eval", "operations", "--from", "2026-11-21", "--to", "2026-11-22"])
    assert table.exit_code == 0, table.output
    lines = {line.split("│")[2].strip(): line for line in table.output.splitlines() if line.count("│") > 5}
    assert "1 in 10" in lines["High St"]
    assert "1 in 20" in lines["Station Rd"]
    assert "1 in 15" in lines[""]  # the total row
    # a day with no deployment reports nothing
    empty = runner.invoke(app, ["eval", "operations", "--from", "2026-11-22", "--to", "2026-11-23", "--json"])
    assert json.loads(empty.output)["windows"] == []
