"""The packaged migrations build exactly the schema the code uses, and `lfr db` drives them."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from typer.testing import CliRunner

from lfr.adapters.storage import open_store
from lfr.adapters.storage.sql import SqlStore
from lfr.adapters.storage.sql import alerts as sql_alerts
from lfr.adapters.storage.sql.engine import create_store_engine
from lfr.adapters.storage.sql.migrate import alembic_config, current_revisions, head_revision, upgrade
from lfr.adapters.storage.sql.schema import metadata
from lfr.cli.main import app
from lfr.domain.alert import Adjudication, TrackIdentity
from lfr.domain.errors import Conflict
from lfr.domain.evaluation import EvaluationSummary
from tests.databases import temporary_postgres_database
from tests.integration.builders import T0, alert, evaluation


def schema_diff(url: str) -> list[object]:
    engine = create_store_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrated_sqlite_schema_equals_the_metadata(sqlite_url: str) -> None:
    assert schema_diff(sqlite_url) == []


@pytest.mark.postgres
def test_migrated_postgres_schema_equals_the_metadata(postgres_url: str) -> None:
    with temporary_postgres_database() as url:
        assert schema_diff(url) == []


def test_the_comparison_would_notice_a_missing_migration(sqlite_url: str) -> None:
    engine = create_store_engine(sqlite_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP INDEX ix_alerts_raised_at")
            connection.exec_driver_sql("ALTER TABLE principals DROP COLUMN password_hash")
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    kinds = {(d[0], getattr(d[-1], "name", None)) for d in diff if isinstance(d, tuple)}
    assert ("add_index", "ix_alerts_raised_at") in kinds
    assert ("add_column", "password_hash") in kinds


def test_open_store_creates_the_directory_migrates_and_is_idempotent(sqlite_url: str) -> None:
    assert not Path(sqlite_url.removeprefix("sqlite:///")).parent.exists()
    for _ in range(2):
        store = open_store(sqlite_url)
        assert isinstance(store, SqlStore)
        assert current_revisions(store.engine) == (head_revision(),)
        store.close()


def test_sqlite_connections_are_durable_and_enforce_foreign_keys(sqlite_url: str) -> None:
    store = SqlStore.open(sqlite_url)
    try:
        with store.engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 10_000}
        assert "alembic_version" in inspect(store.engine).get_table_names()
    finally:
        store.close()


@pytest.mark.postgres
def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    """Separate processes, as replicas are: the database-side migration lock makes them take turns."""
    with temporary_postgres_database() as url:
        opener = "import sys; from lfr.adapters.storage import open_store; open_store(sys.argv[1]).close()"
        replicas = [subprocess.Popen([sys.executable, "-c", opener, url]) for _ in range(2)]
        assert [replica.wait(timeout=60) for replica in replicas] == [0, 0]
        engine = create_store_engine(url)
        try:
            assert current_revisions(engine) == (head_revision(),)
        finally:
            engine.dispose()


def test_threads_opening_one_store_together_all_succeed(sqlite_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_store(sqlite_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


def test_db_cli_reports_then_upgrades_the_configured_store(tmp_path: Path) -> None:
    database = tmp_path / "cli" / "lfr.db"
    config = tmp_path / "lfr.yaml"
    config.write_text(f"store:\n  url: sqlite:///{database}\n")
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current", "--config", str(config)], env={"LFR_STORE_URL": ""})
    assert before.exit_code == 2, before.output
    assert "current: none" in before.output
    upgraded = runner.invoke(app, ["db", "upgrade", "--config", str(config)], env={"LFR_STORE_URL": ""})
    assert upgraded.exit_code == 0, upgraded.output
    after = runner.invoke(app, ["db", "current", "--config", str(config)], env={"LFR_STORE_URL": ""})
    assert after.exit_code == 0, after.output
    assert f"current: {head_revision()}" in after.output


def test_db_cli_takes_the_store_url_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = CliRunner().invoke(app, ["db", "upgrade"], env={"LFR_STORE_URL": url})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").exists()


def test_db_cli_fails_cleanly_when_the_database_is_unreachable() -> None:
    result = CliRunner().invoke(
        app, ["db", "upgrade"], env={"LFR_STORE_URL": "postgresql://postgres@127.0.0.1:1/nothing"}
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def alerts_before_0003(url: str) -> list[str]:
    """Migrates to 0002, stores an alert the old way, then upgrades to head; returns the alert ids."""
    engine = create_store_engine(url)
    try:
        upgrade(engine, "0002")
        added_later = {"source_ref", "revision", "amended_by", "amended_at", "amendment_reason"}
        added_later |= {"sightings", "first_seen_at", "last_seen_at"}  # 0012
        added_later |= {"node_session"}  # 0013
        old_row = {k: v for k, v in sql_alerts._to_row(alert("a-old")).items() if k not in added_later}
        del old_row["sequence"]
        with engine.begin() as connection:
            connection.execute(insert(metadata.tables["alerts"]).values(old_row))
        upgrade(engine)
    finally:
        engine.dispose()
    store = SqlStore.open(url)
    try:
        with store() as uow:
            old = uow.alerts.get("a-old")
            assert old.source_ref is None
            assert (old.sightings, old.first_seen_at, old.last_seen_at) == (1, None, None)
            assert old.revision == old.sequence  # 0008 numbers existing alerts in their order
            new = uow.alerts.add(alert("a-new", source_ref="node-a:1"))
            assert new.revision == old.revision + 1 == uow.alerts.last_revision()
            with pytest.raises(Conflict):
                uow.alerts.add(alert("a-dup", source_ref="node-a:1"))
            uow.commit()
            return [a.id for a in uow.alerts.find()]
    finally:
        store.close()


def test_alerts_stored_before_0003_keep_working_and_new_ones_are_unique_by_source(sqlite_url: str) -> None:
    assert alerts_before_0003(sqlite_url) == ["a-old", "a-new"]


@pytest.mark.postgres
def test_alerts_stored_before_0003_keep_working_on_postgres(postgres_url: str) -> None:
    with temporary_postgres_database() as url:
        assert alerts_before_0003(url) == ["a-old", "a-new"]


def test_0003_downgrades_and_upgrades_again(sqlite_url: str) -> None:
    engine = create_store_engine(sqlite_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0002")
        assert current_revisions(engine) == ("0002",)
        assert "source_ref" not in {c["name"] for c in inspect(engine).get_columns("alerts")}
        upgrade(engine)
        assert current_revisions(engine) == (head_revision(),)
    finally:
        engine.dispose()


def evaluations_before_0007(url: str) -> list[EvaluationSummary]:
    """Migrates to 0003, stores an evaluation the old way (no report), then upgrades to head."""
    engine = create_store_engine(url)
    try:
        upgrade(engine, "0003")
        old = evaluation("e-old", "model-a", T0)
        with engine.begin() as connection:
            connection.execute(
                insert(metadata.tables["evaluations"]).values(
                    id=old.id,
                    model_id=old.model_id,
                    dataset_fingerprint=old.dataset_fingerprint,
                    recommended_threshold=old.recommended_threshold,
                    passed=old.passed,
                    report_sha256=old.report_sha256,
                    recorded_by=old.recorded_by,
                    recorded_at=old.recorded_at,
                )
            )
        upgrade(engine)
    finally:
        engine.dispose()
    store = SqlStore.open(url)
    try:
        with store() as uow:
            return uow.evaluations.for_model("model-a")
    finally:
        store.close()


def test_evaluations_recorded_before_0007_are_flat_and_without_a_report(sqlite_url: str) -> None:
    (old,) = evaluations_before_0007(sqlite_url)
    assert (old.index_type, old.report_json) == ("flat", None)


@pytest.mark.postgres
def test_evaluations_recorded_before_0007_on_postgres(postgres_url: str) -> None:
    with temporary_postgres_database() as url:
        (old,) = evaluations_before_0007(url)
    assert (old.index_type, old.report_json) == ("flat", None)


def duplicates_before_0013(url: str) -> None:
    """Migrates to 0012, stores two alerts of one track (as racing replicas could), then upgrades: both
    are kept, the oldest is the track's alert from then on, and no third can be added."""
    engine = create_store_engine(url)
    try:
        upgrade(engine, "0012")
        old = [
            alert("a-old-1", source_ref="node-a:1", track_id="t-1"),
            alert("a-old-dup", source_ref="node-a:2", track_id="t-1"),
            alert("a-old-other-session", source_ref="node-b:1", track_id="t-1"),
            alert("a-old-no-track-1", source_ref="node-a:3", track_id=""),
            alert("a-old-no-track-2", source_ref="node-a:4", track_id=""),
        ]
        with engine.begin() as connection:
            for each in old:
                row = sql_alerts._to_row(each)
                del row["sequence"], row["node_session"]
                connection.execute(insert(metadata.tables["alerts"]).values(row))
        upgrade(engine)
        with engine.connect() as connection:
            sessions = dict(connection.execute(text("SELECT id, node_session FROM alerts")).all())
        assert sessions == {
            "a-old-1": "node-a",
            "a-old-dup": None,  # kept as it was, outside the constraint
            "a-old-other-session": "node-b",
            "a-old-no-track-1": None,
            "a-old-no-track-2": None,
        }
    finally:
        engine.dispose()
    store = SqlStore.open(url)
    try:
        with store() as uow:
            found = uow.alerts.find_for_track(TrackIdentity("win-1", "cam-1", "node-a", "t-1", "s-1"))
            assert found is not None
            assert found.id == "a-old-1"
            with pytest.raises(Conflict):
                uow.alerts.add(alert("a-new", source_ref="node-a:5", track_id="t-1"))
            duplicate = uow.alerts.get("a-old-dup")
            uow.alerts.update(duplicate.adjudicate(Adjudication.FALSE_ALERT, "officer-a", T0))
            uow.commit()
        with store() as uow:
            assert [a.id for a in uow.alerts.find()] == [a.id for a in old]
            assert uow.alerts.get("a-old-dup").outcome is Adjudication.FALSE_ALERT
    finally:
        store.close()


def test_alerts_duplicated_before_0013_are_kept_and_the_oldest_is_the_tracks_alert(sqlite_url: str) -> None:
    duplicates_before_0013(sqlite_url)


@pytest.mark.postgres
def test_alerts_duplicated_before_0013_on_postgres(postgres_url: str) -> None:
    with temporary_postgres_database() as url:
        duplicates_before_0013(url)


def test_0013_downgrades_and_upgrades_again(sqlite_url: str) -> None:
    engine = create_store_engine(sqlite_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0012")
        assert current_revisions(engine) == ("0012",)
        assert "node_session" not in {c["name"] for c in inspect(engine).get_columns("alerts")}
        upgrade(engine)
        assert current_revisions(engine) == (head_revision(),)
    finally:
        engine.dispose()
