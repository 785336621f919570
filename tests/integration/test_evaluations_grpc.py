"""Recording an evaluation and the equity gate's verdict over real gRPC on SQLite, from the API and the CLI:
an audited act of an auditor or admin with the report's SHA-256; refusals audited and explained; the
supervisor sees the verdict."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from lfr.cli.main import app
from lfr.config import LfrConfig
from lfr.domain.evaluation import canonical_report, report_sha256
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc
from tests.evaluation.gate_reports import report
from tests.evaluation.test_gate_evidence import SMALL
from tests.integration.conftest import MODEL, World, matcher_config, rpc_error

# Covers the world's window (threshold 0.8, 12 people) with enough searches per group.
COVERING = report(model_id=MODEL, sizes=(100,), thresholds=(0.6, 0.7, 0.8), recommended=0.6)


@pytest.fixture
def config(request: pytest.FixtureRequest, sqlite_url: str) -> LfrConfig:
    return matcher_config(sqlite_url, **{"policy.equity_gate": getattr(request, "param", "refuse")})


def evaluations(world: World) -> control_pb2_grpc.EvaluationsAsyncStub:
    return control_pb2_grpc.EvaluationsStub(world.channel)  # type: ignore[return-value]


def request_for(document: dict[str, object], sha256: str | None = None) -> pb.RecordEvaluationRequest:
    return pb.RecordEvaluationRequest(
        report_json=json.dumps(document, indent=1), report_sha256=sha256 or report_sha256(document)
    )


async def pending(world: World) -> pb.Window:
    await world.build_watchlist()
    return await world.deployments.CreateWindow(world.window_request(), metadata=world.md("sam"))


async def audit_records(world: World) -> list[pb.AuditRecord]:
    return [r async for r in world.audit.Export(pb.ExportRequest(), metadata=world.md("aud"))]


async def test_an_auditor_records_an_evaluation_and_the_act_is_audited_under_their_name(world: World):
    recorded = await evaluations(world).RecordEvaluation(request_for(COVERING), metadata=world.md("aud"))
    assert (recorded.model_id, recorded.index_type, list(recorded.watchlist_sizes)) == (MODEL, "flat", [100])
    assert recorded.recorded_by == "aud"
    assert recorded.report_sha256 == report_sha256(COVERING)
    (audited,) = [r for r in await audit_records(world) if r.action == "evaluation.recorded"]
    assert audited.actor == "aud"
    assert audited.subject_id == recorded.id
    assert json.loads(audited.details_json)["report_sha256"] == report_sha256(COVERING)
    with world.container.store() as uow:
        (kept,) = uow.evaluations.for_model(MODEL)
    assert kept.report_json == canonical_report(COVERING)


async def test_a_supervisor_or_officer_may_not_record_and_an_admin_may(world: World):
    for who in ("olly", "cam-1"):
        error = await rpc_error(
            evaluations(world).RecordEvaluation(request_for(COVERING), metadata=world.md(who))
        )
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    error = await rpc_error(
        evaluations(world).RecordEvaluation(request_for(COVERING), metadata=world.md("sue"))
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "auditor" in (error.details() or "")
    unauthenticated = await rpc_error(evaluations(world).RecordEvaluation(request_for(COVERING)))
    assert unauthenticated.code() is grpc.StatusCode.UNAUTHENTICATED
    recorded = await evaluations(world).RecordEvaluation(request_for(COVERING), metadata=world.md("sam"))
    assert recorded.recorded_by == "sam"


async def test_a_report_edited_after_it_was_hashed_is_refused_and_nothing_is_kept(world: World):
    taken = report_sha256(COVERING)
    edited = json.loads(json.dumps(COVERING))
    edited["watchlists"][0]["thresholds"][2]["significant_differential"] = False
    edited["watchlists"][0]["recommended_threshold"] = 0.5
    error = await rpc_error(
        evaluations(world).RecordEvaluation(request_for(edited, taken), metadata=world.md("aud"))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "SHA-256 mismatch" in (error.details() or "")
    assert "evaluation.recorded" not in [r.action for r in await audit_records(world)]


async def test_refuse_without_an_evaluation_explains_how_to_record_one_and_audits_the_refusal(world: World):
    window = await pending(world)
    error = await rpc_error(
        world.deployments.AuthoriseWindow(pb.WindowRef(window_id=window.id), metadata=world.md("sue"))
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "insufficient evidence" in (error.details() or "")
    assert "record an evaluation first" in (error.details() or "")
    assert "lfr eval record" in (error.details() or "")
    (refusal,) = [r for r in await audit_records(world) if r.action == "window.authorisation_refused"]
    assert (refusal.actor, refusal.subject_id) == ("sue", window.id)
    verify = await world.audit.Verify(pb.Empty(), metadata=world.md("aud"))
    assert verify.ok


async def test_with_sufficient_evidence_the_supervisor_sees_the_passing_verdict(world: World):
    window = await pending(world)
    await evaluations(world).RecordEvaluation(request_for(COVERING), metadata=world.md("aud"))
    before = await evaluations(world).GetEquityVerdict(
        pb.WindowRef(window_id=window.id), metadata=world.md("sam")
    )
    assert (before.outcome, before.gate) == ("passed", "refuse")
    authorised = await world.deployments.AuthoriseWindow(
        pb.WindowRef(window_id=window.id), metadata=world.md("sue")
    )
    assert authorised.state == pb.WINDOW_STATE_AUTHORISED
    assert authorised.equity_verdict.outcome == "passed"
    assert authorised.equity_verdict.evaluation_id == before.evaluation_id
    assert any("12 listed people" in reason for reason in authorised.equity_verdict.reasons)
    officer = await rpc_error(
        evaluations(world).GetEquityVerdict(pb.WindowRef(window_id=window.id), metadata=world.md("olly"))
    )
    assert officer.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("config", ["warn"], indirect=True)
async def test_under_warn_the_reply_carries_the_warning(world: World):
    window = await pending(world)
    authorised = await world.deployments.AuthoriseWindow(
        pb.WindowRef(window_id=window.id), metadata=world.md("sue")
    )
    assert authorised.state == pb.WINDOW_STATE_AUTHORISED
    assert (authorised.equity_verdict.gate, authorised.equity_verdict.outcome) == (
        "warn",
        "insufficient evidence",
    )
    assert "no recorded demographic evaluation" in authorised.equity_verdict.reasons[0]
    assert "policy.warning" in [r.action for r in await audit_records(world)]


# --- the CLI, against the same real server ------------------------------------------------------------


def cli(world: World, *args: str, token: str = "aud") -> tuple[int, str]:
    result = CliRunner().invoke(
        app, [*args, "--server", f"127.0.0.1:{world.port}", "--token", world.tokens[token]]
    )
    return result.exit_code, result.output


async def test_eval_run_prints_the_hash_that_eval_record_needs_and_an_edit_is_refused(
    world: World, tmp_path: Path
):
    config_file = tmp_path / "small.yaml"
    config_file.write_text(SMALL + f"output_dir: {tmp_path / 'out'}\n")
    ran = await asyncio.to_thread(CliRunner().invoke, app, ["eval", "run", str(config_file)])
    assert ran.exit_code == 0, ran.output
    (sha256,) = re.findall(r"report SHA-256: ([0-9a-f]{64})", ran.output)
    report_file = tmp_path / "out" / "report.json"
    assert sha256 == report_sha256(json.loads(report_file.read_text()))

    edited = tmp_path / "edited.json"
    edited.write_text(report_file.read_text().replace('"passed": true', '"passed": false', 1))
    code, output = await asyncio.to_thread(cli, world, "eval", "record", str(edited), "--sha256", sha256)
    assert code != 0
    assert "SHA-256 mismatch" in output

    code, output = await asyncio.to_thread(cli, world, "eval", "record", str(report_file), "--sha256", sha256)
    assert code == 0, output
    assert "recorded evaluation eval" in output
    assert "by aud" in output

    code, output = await asyncio.to_thread(
        cli, world, "eval", "record", str(report_file), "--sha256", sha256, "--actor", "someone"
    )
    assert code != 0  # no free-text actor: who records is whose token it is
    assert "No such option" in output


async def test_window_authorise_shows_the_refusal_and_window_verdict_its_reasons(world: World):
    window = await pending(world)
    code, output = await asyncio.to_thread(cli, world, "window", "authorise", window.id, token="sue")
    assert code != 0
    assert "insufficient evidence" in output
    assert "lfr eval record" in output
    code, output = await asyncio.to_thread(cli, world, "window", "verdict", window.id, token="sam")
    assert code == 0, output
    assert "WARNING: equity gate (refuse): insufficient evidence" in output


@pytest.mark.parametrize("config", ["warn"], indirect=True)
async def test_window_authorise_under_warn_prints_the_warning_not_only_armed(world: World):
    window = await pending(world)
    code, output = await asyncio.to_thread(cli, world, "window", "authorise", window.id, token="sue")
    assert code == 0, output
    assert "armed now: True" in output
    assert "WARNING: equity gate (warn): insufficient evidence" in output
    assert "no recorded demographic evaluation" in output
