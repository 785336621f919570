"""Signed checkpoints through a real matcher over SQLite and the real `lfr audit` commands: the matcher
signs while serving and at shutdown, and an export verifies offline with only its public key, while
forged, edited, cut and extended exports do not."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from lfr.adapters.signing import FileAnchor, write_key_pair
from lfr.bootstrap import build_container, running_matcher
from lfr.cli.main import app
from lfr.config import LfrConfig
from lfr.domain.audit import GENESIS_HASH, AuditAction, AuditEvent, record_hash
from lfr.v1 import control_pb2 as pb
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import World, matcher_config, observation


@pytest.fixture
def config(tmp_path: Path) -> LfrConfig:
    # No audit settings: the embedded defaults (key and anchor beside the database) are what is tested.
    return matcher_config(f"sqlite:///{tmp_path / 'store' / 'lfr.db'}", **{"audit.checkpoint_seconds": 0.2})


def public_key(tmp_path: Path) -> Path:
    return tmp_path / "store" / "audit" / "signing-key.pem.pub"


async def lfr(*args: str) -> Result:
    # In a thread: the CLI's blocking gRPC calls are served by the matcher in this event loop.
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def busy_deployment(world: World) -> None:
    await world.armed_window()
    answers = await world.stream("cam-1", [[observation(1, world.people[0])]])
    alert_id = answers[0].results[0].alert_id
    assert answers[0].results[0].outcome == ipb.OUTCOME_ALERT
    await world.alerts.GetAlert(pb.AlertRef(alert_id=alert_id), metadata=world.md("olly"))


async def exported(world: World, out: Path) -> None:
    server = ("--server", f"127.0.0.1:{world.port}", "--token", world.tokens["aud"])
    result = await lfr("audit", "export", "--out", str(out), *server)
    assert result.exit_code == 0, result.output


def verify_export(out: Path, key: Path) -> Result:
    return CliRunner().invoke(app, ["audit", "verify-export", str(out), "--public-key", str(key)])


def lines_of(out: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return [r for r in rows if "checkpoint" in r], [r for r in rows if "checkpoint" not in r]


def write(out: Path, checkpoints: list[dict[str, object]], records: list[dict[str, object]]) -> None:
    out.write_text("".join(json.dumps(r) + "\n" for r in [*checkpoints, *records]))


async def test_the_matcher_signs_while_serving_and_verify_reports_it(world: World, tmp_path: Path):
    await busy_deployment(world)
    anchor = FileAnchor(tmp_path / "store" / "audit" / "anchor.jsonl")
    with world.container.store() as uow:
        head = uow.audit.head()
    assert head is not None
    for _ in range(50):  # the 0.2 s checkpoint duty catches up with the head
        if any(c.seq == head.seq for c in anchor.checkpoints()):
            break
        await asyncio.sleep(0.1)
    assert any(c.seq == head.seq for c in anchor.checkpoints())
    result = await lfr(
        "audit", "verify", "--server", f"127.0.0.1:{world.port}", "--token", world.tokens["aud"]
    )
    assert result.exit_code == 0, result.output
    assert f"{head.seq} records verified" in result.output
    assert "signed checkpoints matched" in result.output


async def test_an_export_verifies_offline_with_only_the_public_key(world: World, tmp_path: Path):
    await busy_deployment(world)
    out = tmp_path / "export.jsonl"
    await exported(world, out)
    checkpoints, records = lines_of(out)
    assert checkpoints
    assert records
    assert max(int(str(c["checkpoint"]["seq"])) for c in checkpoints) == int(str(records[-1]["seq"]))  # type: ignore[index]
    result = verify_export(out, public_key(tmp_path))
    assert result.exit_code == 0, result.output
    assert "export verifies" in result.output

    other = write_key_pair(tmp_path / "other.pem")
    assert other.key_id not in result.output
    wrong = verify_export(out, tmp_path / "other.pem.pub")
    assert wrong.exit_code == 1
    assert "not in the trusted keyring" in wrong.output


async def test_edited_forged_cut_and_extended_exports_fail(world: World, tmp_path: Path):
    await busy_deployment(world)
    out = tmp_path / "export.jsonl"
    await exported(world, out)
    checkpoints, records = lines_of(out)
    key = public_key(tmp_path)
    authorised = next(i for i, r in enumerate(records) if r["action"] == "window.authorised")

    edited = [dict(r) for r in records]
    edited[authorised]["actor"] = "chief-inspector"
    write(out, checkpoints, edited)
    result = verify_export(out, key)
    assert result.exit_code == 1
    assert f"BROKEN at record {authorised + 1}" in result.output

    # Forged: the edit with every hash recomputed, so the chain itself is consistent again.
    forged = rehashed(edited)
    write(out, checkpoints, forged)
    result = verify_export(out, key)
    assert result.exit_code == 1
    assert "were rewritten" in result.output
    write(out, [], forged)  # ... and without the checkpoints that give it away
    result = verify_export(out, key)
    assert result.exit_code == 1
    assert "no signed checkpoint" in result.output

    # Cut: the last records dropped (a file cut short, or a deliberate trim), checkpoints kept.
    write(out, checkpoints, records[:-2])
    result = verify_export(out, key)
    assert result.exit_code == 1
    assert "were removed" in result.output

    # Extended: a record appended after the seal, chained correctly.
    extra = dict(records[-1], seq=str(int(str(records[-1]["seq"])) + 1), actor="someone")
    write(out, checkpoints, rehashed([*records, extra]))
    result = verify_export(out, key)
    assert result.exit_code == 1
    assert "covered by no signed checkpoint" in result.output

    # A checkpoint whose signature was altered.
    tampered = [dict(c) for c in checkpoints]
    tampered[-1] = {"checkpoint": dict(tampered[-1]["checkpoint"], seq=1)}  # type: ignore[call-overload]
    write(out, tampered, records)
    result = verify_export(out, key)
    assert result.exit_code == 1
    assert "invalid signature" in result.output


def rehashed(records: list[dict[str, object]]) -> list[dict[str, object]]:
    previous, out = GENESIS_HASH, []
    for r in records:
        digest = record_hash(
            int(str(r["seq"])),
            datetime.fromisoformat(str(r["at_iso"])),
            str(r["actor"]),
            str(r["action"]),
            str(r["subject_kind"]),
            str(r["subject_id"]),
            str(r["details_json"]),
            previous,
        )
        out.append(dict(r, prev_hash=previous, hash=digest))
        previous = digest
    return out


async def test_the_matcher_checkpoints_at_shutdown(tmp_path: Path) -> None:
    """Records appended since the last minute's checkpoint are signed on the way out."""
    config = matcher_config(
        f"sqlite:///{tmp_path / 'store' / 'lfr.db'}", **{"audit.checkpoint_seconds": 3600}
    )
    container = build_container(config)
    anchor = FileAnchor(tmp_path / "store" / "audit" / "anchor.jsonl")
    try:
        async with running_matcher(container):
            with container.store() as uow:
                record = uow.audit.append(
                    AuditEvent(AuditAction.POLICY_WARNING, "test", "x", "y", datetime.now(UTC))
                )
                uow.commit()
            assert anchor.checkpoints() == []
        assert [c.seq for c in anchor.checkpoints()] == [record.seq]
        with container.store() as uow:
            assert [c.seq for c in uow.audit.checkpoints()] == [record.seq]
    finally:
        container.close()


async def test_lfr_audit_verify_names_a_dba_rewrite_of_a_serving_matcher(world: World, tmp_path: Path):
    """The issue's report, end to end: the authoriser of a window changed by SQL with every hash and the
    head recomputed, and the database's checkpoint copies deleted, while `lfr serve` runs."""
    from sqlalchemy import text

    from lfr.adapters.storage.sql import SqlStore
    from tests.integration.test_audit_dba_attacks import rewrite_as_dba

    await busy_deployment(world)
    world.container.checkpoint_audit()
    store = world.container.store
    assert isinstance(store, SqlStore)

    def reattribute(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        return [dict(r, actor="chief-inspector") if r["action"] == "window.authorised" else r for r in rows]

    with store() as uow:
        authorised = next(r.seq for r in uow.audit.records() if r.action == "window.authorised")
    rewrite_as_dba(store, reattribute)
    with store.engine.connect() as sql:
        assert sql.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar() == 0
    server = ("--server", f"127.0.0.1:{world.port}", "--token", world.tokens["aud"])
    result = await lfr("audit", "verify", *server)
    assert result.exit_code == 1
    # Named as a range between the checkpoints around the rewritten record (how many there are depends
    # on the timing of the matcher's own checkpoints).
    found = re.search(r"BROKEN at record (\d+): records (\d+) to (\d+) were rewritten", result.output)
    assert found is not None, result.output
    first, low, high = (int(g) for g in found.groups())
    assert first == low <= authorised <= high
