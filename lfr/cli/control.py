"""gRPC client commands for people: `lfr window`, `lfr watchlist`, `lfr alerts`, `lfr audit`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from google.protobuf.json_format import MessageToDict
from rich.markup import escape
from rich.table import Table

from lfr.adapters.grpc import convert
from lfr.cli.common import (
    Client,
    connected,
    console,
    errors,
    fail,
)
from lfr.domain.audit import verify_chain
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc

window_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Deployment windows.")
watchlist_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Watchlists.")
alerts_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Alerts.")
audit_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The audit log.")


def _when(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not an ISO 8601 date-time (e.g. 2026-11-21T10:00+00:00)", 2)
    if parsed.tzinfo is None:
        fail(f"{text!r} has no timezone; add one (e.g. +00:00)", 2)
    return parsed


def _show(message: object) -> None:
    console.print_json(json.dumps(MessageToDict(message, preserving_proto_field_name=True)))  # type: ignore[arg-type]


# --- windows --------------------------------------------------------------------------------------------


@window_app.command("create")
@connected
def window_create(
    c: Client,
    purpose: Annotated[str, typer.Option(help="why this deployment is necessary")],
    legal_basis: Annotated[str, typer.Option(help="the legal basis relied on")],
    location: Annotated[str, typer.Option()],
    camera: Annotated[list[str], typer.Option("--camera", help="camera id; repeat for several")],
    watchlist: Annotated[str, typer.Option(help="id of a sealed watchlist")],
    threshold: Annotated[float, typer.Option(help="alert when similarity >= this, in [0, 1]")],
    end: Annotated[str | None, typer.Option(help="ISO end time; default start + --minutes")] = None,
    start: Annotated[str | None, typer.Option(help="ISO start time; default now")] = None,
    minutes: Annotated[float, typer.Option(help="length when --end is not given")] = 60,
    assign: Annotated[list[str] | None, typer.Option("--assign", help="officer who sees alerts")] = None,
) -> None:
    """Request a deployment window (pending until a supervisor authorises it)."""
    starts = _when(start, datetime.now(UTC))
    ends = _when(end, starts + timedelta(minutes=minutes))
    request = pb.CreateWindowRequest(
        purpose=purpose,
        legal_basis=legal_basis,
        location=location,
        camera_ids=camera,
        watchlist_id=watchlist,
        threshold=threshold,
        starts_at=convert.timestamp(starts),
        ends_at=convert.timestamp(ends),
        assigned_users=assign or [],
    )
    window = control_pb2_grpc.DeploymentsStub(c.channel).CreateWindow(request, metadata=c.metadata)
    console.print(f"created window [bold]{window.id}[/] (pending authorisation)")


@window_app.command("authorise")
@connected
def window_authorise(
    c: Client,
    window_id: str,
) -> None:
    """Authorise a pending window (supervisors only)."""
    window = control_pb2_grpc.DeploymentsStub(c.channel).AuthoriseWindow(
        pb.WindowRef(window_id=window_id), metadata=c.metadata
    )
    console.print(f"window {window.id} authorised by {window.authorised_by}; armed now: {window.armed}")
    if window.HasField("equity_verdict"):
        _print_verdict(window.equity_verdict)


@window_app.command("verdict")
@connected
def window_verdict(c: Client, window_id: str) -> None:
    """What the equity gate says about a window now, with its reasons (before or after authorising)."""
    _print_verdict(
        control_pb2_grpc.EvaluationsStub(c.channel).GetEquityVerdict(
            pb.WindowRef(window_id=window_id), metadata=c.metadata
        )
    )


def _print_verdict(verdict: pb.EquityVerdict) -> None:
    passed = verdict.outcome == "passed"
    style = "green" if passed else ("bold yellow" if verdict.gate != "refuse" else "bold red")
    label = "equity gate" if passed else "WARNING: equity gate"
    evaluation = f" (evaluation {verdict.evaluation_id})" if verdict.evaluation_id else ""
    console.print(
        f"[{style}]{label} ({escape(verdict.gate or 'unknown')}): {escape(verdict.outcome)}[/]{evaluation}",
        highlight=False,
    )
    for reason in verdict.reasons:
        console.print(f"  - {reason}", highlight=False, soft_wrap=True, markup=False)


@window_app.command("close")
@connected
def window_close(
    c: Client,
    window_id: str,
    reason: Annotated[str, typer.Option(help="why the deployment ends")],
) -> None:
    """Close a window early; the matcher disarms within a second."""
    window = control_pb2_grpc.DeploymentsStub(c.channel).CloseWindow(
        pb.CloseWindowRequest(window_id=window_id, reason=reason), metadata=c.metadata
    )
    console.print(f"window {window.id} closed")


@window_app.command("list")
@connected
def window_list(c: Client) -> None:
    """Windows you may see."""
    found = control_pb2_grpc.DeploymentsStub(c.channel).ListWindows(
        pb.ListWindowsRequest(), metadata=c.metadata
    )
    table = Table("id", "state", "armed", "location", "cameras", "starts", "ends")
    for w in found.windows:
        table.add_row(
            w.id,
            pb.WindowState.Name(w.state).removeprefix("WINDOW_STATE_").lower(),
            "yes" if w.armed else "no",
            w.location,
            ",".join(w.camera_ids),
            w.starts_at.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds"),
            w.ends_at.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds"),
        )
    console.print(table)


@window_app.command("show")
@connected
def window_show(
    c: Client,
    window_id: str,
) -> None:
    """Show one window: its cameras, schedule, threshold, state and who authorised it."""
    _show(
        control_pb2_grpc.DeploymentsStub(c.channel).GetWindow(
            pb.WindowRef(window_id=window_id), metadata=c.metadata
        )
    )


# --- watchlists -----------------------------------------------------------------------------------------


@watchlist_app.command("create")
@connected
def watchlist_create(
    c: Client,
    name: str,
    model: Annotated[str, typer.Option(help="id of the model the embeddings come from")],
    dimension: Annotated[int, typer.Option()] = 512,
) -> None:
    """Create a draft watchlist for embeddings of one model (enrol with `lfr enrol`, then seal)."""
    created = control_pb2_grpc.WatchlistsStub(c.channel).CreateWatchlist(
        pb.CreateWatchlistRequest(name=name, model_id=model, dimension=dimension), metadata=c.metadata
    )
    console.print(f"created watchlist [bold]{created.id}[/] (draft)")


@watchlist_app.command("add-embeddings")
@connected
def watchlist_add_embeddings(
    c: Client,
    watchlist_id: str,
    embeddings: Annotated[Path, typer.Argument(help=".npy file: (n, d) float32 embeddings of ONE person")],
    reference: Annotated[str, typer.Option(help="the force's reference for this person")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    category: Annotated[str, typer.Option()] = "",
    reason: Annotated[str, typer.Option(help="why this person is listed")] = "",
    image_source: Annotated[str, typer.Option(help="provenance of the reference image")] = "",
    reference_image: Annotated[Path | None, typer.Option(help="JPEG shown beside alerts")] = None,
) -> None:
    """Enrol one subject from embeddings made by the watchlist's model."""
    try:
        rows = np.atleast_2d(np.load(embeddings, allow_pickle=False)).astype(np.float32)
    except (OSError, ValueError) as exc:
        fail(f"cannot read {embeddings}: {exc}", 2)
    image = reference_image.read_bytes() if reference_image else b""
    stub = control_pb2_grpc.WatchlistsStub(c.channel)
    watchlist = stub.GetWatchlist(pb.WatchlistRef(watchlist_id=watchlist_id), metadata=c.metadata)
    subject = stub.AddSubject(
        pb.AddSubjectRequest(
            watchlist_id=watchlist_id,
            reference=reference,
            display_name=name,
            category=category,
            reason=reason,
            image_source=image_source,
            reference_image_jpeg=image,
            model_id=watchlist.model_id,
            dimension=int(rows.shape[1]),
            embeddings_f32le=[convert.embedding_to_bytes(row) for row in rows],
        ),
        metadata=c.metadata,
    )
    console.print(f"added subject {subject.id} ({rows.shape[0]} embeddings)")


@watchlist_app.command("seal")
@connected
def watchlist_seal(
    c: Client,
    watchlist_id: str,
) -> None:
    """Seal a draft watchlist: no more changes; a window can then use it."""
    sealed = control_pb2_grpc.WatchlistsStub(c.channel).SealWatchlist(
        pb.WatchlistRef(watchlist_id=watchlist_id), metadata=c.metadata
    )
    people = "subject" if sealed.subject_count == 1 else "subjects"
    console.print(f"sealed {sealed.id}: {sealed.subject_count} {people}, hash {sealed.content_hash}")


@watchlist_app.command("destroy")
@connected
def watchlist_destroy(
    c: Client,
    watchlist_id: str,
    reason: Annotated[str, typer.Option()],
) -> None:
    """Destroy a watchlist now: subjects, images and embeddings erased, the reason audited."""
    control_pb2_grpc.WatchlistsStub(c.channel).DestroyWatchlist(
        pb.DestroyWatchlistRequest(watchlist_id=watchlist_id, reason=reason), metadata=c.metadata
    )
    console.print(f"destroyed {watchlist_id}: subjects, images and embeddings erased")


@watchlist_app.command("list")
@connected
def watchlist_list(c: Client) -> None:
    """Watchlists you may see, with their state and content hash."""
    found = control_pb2_grpc.WatchlistsStub(c.channel).ListWatchlists(pb.Empty(), metadata=c.metadata)
    table = Table("id", "name", "state", "subjects", "model", "hash")
    for w in found.watchlists:
        state = pb.WatchlistState.Name(w.state).removeprefix("WATCHLIST_STATE_").lower()
        table.add_row(w.id, w.name, state, str(w.subject_count), w.model_id, w.content_hash[:16])
    console.print(table)


# --- alerts ---------------------------------------------------------------------------------------------


def _alert_line(a: pb.Alert) -> str:
    state = pb.AlertState.Name(a.state).removeprefix("ALERT_STATE_").lower()
    raised = a.raised_at.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")
    return (
        f"#{a.sequence} {a.id} {raised} camera={a.camera_id} subject={a.subject_id} "
        f"score={a.score:.3f} (threshold {a.threshold:.2f}) {state}"
    )


@alerts_app.command("list")
@connected
def alerts_list(
    c: Client,
    window: Annotated[str, typer.Option(help="only this window")] = "",
    after: Annotated[int, typer.Option(help="only alerts after this sequence")] = 0,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """Alerts you may see, oldest first (one line each, no crops)."""
    found = control_pb2_grpc.AlertsStub(c.channel).ListAlerts(
        pb.ListAlertsRequest(window_id=window, after_sequence=after, limit=limit), metadata=c.metadata
    )
    for a in found.alerts:
        console.print(_alert_line(a), highlight=False)


@alerts_app.command("show")
@connected
def alerts_show(
    c: Client,
    alert_id: str,
    crop_out: Annotated[Path | None, typer.Option(help="write the face crop to this file")] = None,
) -> None:
    """Show one alert, crop included. Audited as a consultation."""
    alert = control_pb2_grpc.AlertsStub(c.channel).GetAlert(
        pb.AlertRef(alert_id=alert_id), metadata=c.metadata
    )
    if crop_out is not None:
        crop_out.write_bytes(alert.crop_jpeg)
    alert.ClearField("crop_jpeg")
    _show(alert)


_OUTCOMES = {
    "confirmed": pb.ADJUDICATION_CONFIRMED,
    "false_alert": pb.ADJUDICATION_FALSE_ALERT,
    "not_engaged": pb.ADJUDICATION_NOT_ENGAGED,
}


@alerts_app.command("adjudicate")
@connected
def alerts_adjudicate(
    c: Client,
    alert_id: str,
    outcome: Annotated[str, typer.Argument(help="confirmed, false_alert or not_engaged")],
    notes: Annotated[str, typer.Option()] = "",
    expected_version: Annotated[int, typer.Option(help="refuse if the alert changed since")] = 0,
) -> None:
    """Record an officer's decision on an alert (a machine never decides)."""
    if outcome not in _OUTCOMES:
        fail(f"outcome must be one of {', '.join(_OUTCOMES)}", 2)
    decided = control_pb2_grpc.AlertsStub(c.channel).Adjudicate(
        pb.AdjudicateRequest(
            alert_id=alert_id, outcome=_OUTCOMES[outcome], notes=notes, expected_version=expected_version
        ),
        metadata=c.metadata,
    )
    console.print(_alert_line(decided), highlight=False)


@alerts_app.command("watch")
@connected
def alerts_watch(
    c: Client,
    window: Annotated[str, typer.Option(help="only this window")] = "",
    after: Annotated[int, typer.Option(help="catch up from after this sequence")] = 0,
) -> None:
    """Print alerts as they become durable (catch-up first); Ctrl-C to stop."""
    stream = control_pb2_grpc.AlertsStub(c.channel).Subscribe(
        pb.SubscribeRequest(window_id=window, after_sequence=after), metadata=c.metadata
    )
    try:
        for alert in stream:
            console.print(_alert_line(alert), highlight=False)
    except KeyboardInterrupt:
        stream.cancel()


# --- audit ----------------------------------------------------------------------------------------------


@audit_app.command("verify")
@connected
def audit_verify(c: Client) -> None:
    """Ask the matcher to verify the hash chain against its head and every signed, anchored checkpoint."""
    verdict = control_pb2_grpc.AuditStub(c.channel).Verify(pb.Empty(), metadata=c.metadata)
    if not verdict.ok:
        fail(f"audit chain BROKEN at record {verdict.first_bad_seq}: {verdict.reason}")
    console.print(
        f"audit chain intact: {verdict.records_checked} records verified, "
        f"{verdict.checkpoints_checked} signed checkpoints matched"
    )
    if verdict.anchored_seq < verdict.records_checked:
        errors.print(
            f"records {verdict.anchored_seq + 1} to {verdict.records_checked} are not yet covered by a "
            "signed checkpoint (one is made every minute while serving); until then only their hashes vouch "
            "for them" + ("" if verdict.checkpoints_checked else ": NO signed checkpoint at all")
        )


@audit_app.command("export")
@connected
def audit_export(
    c: Client,
    out: Annotated[Path | None, typer.Option(help="JSON lines file; default stdout")] = None,
    from_seq: Annotated[int, typer.Option("--from", help="first record")] = 1,
) -> None:
    """Export signed checkpoints and records as JSON lines; check offline with `lfr audit verify-export`."""
    from lfr.adapters.audit_export import checkpoint_from_proto, export_lines

    stub = control_pb2_grpc.AuditStub(c.channel)
    request = pb.ExportRequest(from_seq=from_seq)
    # Checkpoints first: the matcher seals the head now, and the records are then cut at that seal.
    checkpoints = [checkpoint_from_proto(cp) for cp in stub.ExportCheckpoints(request, metadata=c.metadata)]
    sealed = max((cp.seq for cp in checkpoints), default=None)
    records = [r for r in stub.Export(request, metadata=c.metadata) if sealed is None or r.seq <= sealed]
    lines = export_lines(records, checkpoints)
    if out is None:
        for line in lines:
            print(line)
    else:
        out.write_text("".join(line + "\n" for line in lines))
    if from_seq <= 1:
        verdict = verify_chain(convert.audit_record_from_proto(r) for r in records)
        state = "verifies" if verdict.ok else f"is BROKEN at record {verdict.first_bad_seq}: {verdict.reason}"
        errors.print(f"exported {len(records)} records and {len(checkpoints)} checkpoints; the chain {state}")
    if not checkpoints:
        errors.print("the matcher signs no checkpoints: this export cannot be verified against a key")


@audit_app.command("verify-export")
def audit_verify_export(
    file: Annotated[Path, typer.Argument(help="a file written by `lfr audit export`")],
    public_key: Annotated[
        list[Path],
        typer.Option("--public-key", help="trusted PEM public key (file or folder); repeat for several"),
    ],
) -> None:
    """Verify an export offline with only the matcher's public key(s): forged, edited or cut exports fail."""
    from lfr.adapters.audit_export import verify_export
    from lfr.adapters.signing import Ed25519Keyring
    from lfr.domain.errors import InvalidInput

    try:
        keyring = Ed25519Keyring.from_files(public_key)
        lines = file.read_text().splitlines()
    except InvalidInput as exc:
        fail(str(exc), 2)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}", 2)
    verdict = verify_export(lines, keyring)
    if not verdict.ok:
        fail(f"export BROKEN at record {verdict.first_bad_seq}: {verdict.reason}")
    console.print(
        f"export verifies: {verdict.records_checked} records, the last sealed by a signed checkpoint "
        f"({verdict.checkpoints_checked} checkpoints matched; keys {', '.join(keyring.key_ids)})"
    )


@audit_app.command("keygen")
def audit_keygen(
    private_key_file: Annotated[Path, typer.Argument(help="where to write the private key (PEM, mode 0600)")],
) -> None:
    """Create an Ed25519 key pair for signing audit checkpoints: FILE and FILE.pub."""
    from lfr.adapters.signing import public_key_path, write_key_pair
    from lfr.domain.errors import InvalidInput

    try:
        signer = write_key_pair(private_key_file)
    except InvalidInput as exc:
        fail(str(exc), 2)
    console.print(
        f"key id {signer.key_id}: private key {private_key_file}, "
        f"public key {public_key_path(private_key_file)}"
    )
