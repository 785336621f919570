"""The real end-to-end demo: one matcher, one camera node, one clip, in one process on loopback.

Steps, printed as they happen: load the face models; cut the cast and render the clip; start the matcher
(SQLite in the work folder) with the officers' tablet; enrol the watchlist over gRPC and seal it; create
and authorise a deployment window that opens a few seconds into the clip and closes before its end; run
lfr's camera node over the clip, printing alerts as the Alerts.Subscribe stream delivers them; then show
what the store kept, verify the audit chain and search every byte of the work folder for the faces that
did not match.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import secrets
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from prometheus_client import CollectorRegistry
from rich.console import Console

from lfr.adapters.camera.config import CameraNodeConfig
from lfr.adapters.embedder import InsightFaceEmbedder, ModelSettings
from lfr.adapters.enrolment import Pick, embed_subjects
from lfr.adapters.envelope import write_kek
from lfr.adapters.grpc import convert
from lfr.adapters.passwords import Argon2Hasher
from lfr.adapters.signing import write_key_pair
from lfr.adapters.watchlist_upload import upload_report
from lfr.bootstrap import Container, build_camera_node, build_container, running_matcher, serving_tablet
from lfr.config import LfrConfig, load_config
from lfr.demo.cast import Cast, default_cast, user_cast
from lfr.demo.clip import ClipPlan, plan_clip, render_clip
from lfr.demo.outcomes import AlertSeen, DemoSummary, Ledger, find_problems
from lfr.demo.portraits import DemoInputError, portrait_from_file
from lfr.demo.report import clock, heading, print_summary, timestamp
from lfr.demo.scan import Fingerprints, ScanReport, embedding_needles, scan_folder, stored_needle
from lfr.domain.principal import PrincipalKind, Role
from lfr.services.passwords import PasswordService
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc

CAMERA = "cam-demo-1"
SUPERVISOR = "sgt-demo"
AUTHORISER = "insp-demo"  # separation of duties: the window's creator may not authorise it
OFFICER = "pc-demo"
AUDITOR = "auditor-demo"
START_DELAY_S = 1.0  # between creating the window and the clip's first frame


@dataclass(frozen=True, slots=True)
class DemoOptions:
    workdir: Path
    images: Path | None = None
    csv: Path | None = None
    threshold: float = 0.5
    fps: float = 10.0
    tablet_listen: str = "127.0.0.1:0"
    keep_running: bool = False
    models: ModelSettings = field(default_factory=lambda: ModelSettings(intra_op_threads=1))


def quiet_model_libraries() -> None:
    """insightface and onnxruntime talk on stdout/stderr; the demo's reader needs none of it."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\.")


def load_embedder(settings: ModelSettings) -> InsightFaceEmbedder:
    quiet_model_libraries()
    with contextlib.redirect_stdout(io.StringIO()):
        return InsightFaceEmbedder(settings)


async def run_demo(options: DemoOptions, console: Console) -> DemoSummary:
    began = time.monotonic()
    summary = DemoSummary(threshold=options.threshold)
    workdir = options.workdir
    workdir.mkdir(parents=True, exist_ok=True)

    heading(console, "1. Face models and the people in the clip")
    given = None
    if options.images is not None and options.csv is not None:
        given = user_cast(options.images, options.csv)  # before the slow model load: fail fast
    if options.models.resolved_root() is None:
        console.print(
            f"models     loading {options.models.resolved_pack()} from ~/.insightface; insightface downloads "
            "it on first use (set LFR_MODEL_ROOT and LFR_MODEL_PACK to use a local pack)"
        )
    embedder = await asyncio.to_thread(load_embedder, options.models)
    summary.model_id = embedder.model_id
    console.print(
        f"models     {options.models.resolved_pack()} loaded: recogniser {embedder.model_id[:40]}..."
    )
    cast = given or default_cast(embedder, workdir / "cast")
    summary.passers_by = len(cast.unlisted)
    plan = plan_clip(cast, options.fps)
    portrait_of = functools.cache(functools.partial(portrait_from_file, embedder))
    clip_path = workdir / "clip.avi"
    await asyncio.to_thread(render_clip, plan, portrait_of, clip_path)
    summary.clip = {"seconds": round(plan.duration_s, 1), "frames": plan.frames, "fps": plan.fps}
    console.print(
        f"people     {len(cast.listed)} to enrol on the watchlist, {len(cast.unlisted)} passers-by "
        f"(from {cast.origin})"
    )
    console.print(
        f"clip       {plan.duration_s:.0f} s, {plan.frames} frames at {plan.fps:g} fps, "
        f"{len(plan.segments)} scenes in which they walk past ({clip_path.name})"
    )
    summary.seconds["preparation"] = round(time.monotonic() - began, 1)

    config = local_matcher_config(
        workdir,
        {
            "tablet.listen": options.tablet_listen,
            "tablet.session_secret_file": private_file(
                workdir / "tablet-session-secret", secrets.token_urlsafe(48)
            ),
        },
    )
    container = build_container(config)
    try:
        tokens, passwords = await asyncio.to_thread(demo_accounts, container)
        async with running_matcher(container, extensions=[serving_tablet]) as running:
            address = f"127.0.0.1:{running.port}"
            tablet = f"http://127.0.0.1:{container.tablet_port}/"
            heading(console, "2. Matcher and officers' tablet")
            console.print(f"matcher    gRPC on {address}, store {workdir / 'lfr.db'} (embedded SQLite)")
            console.print(f"tablet     {tablet}", highlight=False)
            for line in sign_in_lines(passwords):
                console.print(f"           {line}", highlight=False)
            async with grpc.aio.insecure_channel(address) as channel:
                session = DemoSession(options, console, container, channel, address, tokens, summary)
                await _scenario(session, embedder, cast, plan)
                summary.seconds["total"] = round(time.monotonic() - began, 1)
                print_summary(console, summary)
                if options.keep_running:
                    await _wait_for_interrupt(console, tablet, passwords)
    finally:
        container.close()
    return summary


def local_matcher_config(workdir: Path, overrides: dict[str, Any]) -> LfrConfig:
    """`lfr serve`'s configuration for a matcher on loopback with its store (embedded SQLite) and keys in
    `workdir`; `overrides` adds to it (the demo's tablet). bench.street_clip runs the same matcher."""
    # The demo's own keys, made here rather than by `lfr serve`'s first start (which warns): the audit
    # trail's signing key and the key that encrypts the crops it keeps (removed with the work folder).
    signing_key, image_key = workdir / "audit-signing.pem", workdir / "image-kek.hex"
    if not signing_key.exists():
        write_key_pair(signing_key)
    if not image_key.exists():
        write_kek(image_key)
    return load_config(
        None,
        {
            "store.url": f"sqlite:///{workdir / 'lfr.db'}",
            "audit.signing_key_file": str(signing_key),
            "audit.anchor_file": str(workdir / "audit-anchor.jsonl"),
            "encryption.key_file": str(image_key),
            "grpc.listen": "127.0.0.1:0",
            "metrics.enabled": False,
            # The demo enrols a handful of generated people, and no evaluation of them could be evidence
            # of anything; recording a made-up one would put a false record in the audit trail. So the
            # demo runs the equity gate in `warn` (real deployments: `refuse`, the default) and prints
            # the gate's verdict and reasons when its window is authorised.
            "policy.equity_gate": "warn",
            "matching.gate_refresh_seconds": 0.2,
            "matching.counter_flush_seconds": 0.5,
            **overrides,
        },
    )


ROLE_NOTES = {
    SUPERVISOR: "supervisor, admin",
    AUTHORISER: "supervisor who authorises",
    OFFICER: "officer",
    AUDITOR: "auditor",
}


def sign_in_lines(passwords: dict[str, str]) -> list[str]:
    """One line per demo person: name, password and what the account may do."""
    return [
        f"sign in as {name} / password {secret}  ({ROLE_NOTES.get(name, '')})"
        for name, secret in passwords.items()
    ]


def demo_accounts(container: Container) -> tuple[dict[str, str], dict[str, str]]:
    """Tokens for every demo account, and a tablet password for every person among them."""
    accounts = {
        SUPERVISOR: (PrincipalKind.USER, {Role.SUPERVISOR, Role.ADMIN}),
        AUTHORISER: (PrincipalKind.USER, {Role.SUPERVISOR}),
        OFFICER: (PrincipalKind.USER, {Role.OFFICER}),
        AUDITOR: (PrincipalKind.USER, {Role.AUDITOR}),
        CAMERA: (PrincipalKind.CAMERA, set()),
    }
    tokens = {}
    for name, (kind, roles) in accounts.items():
        container.principals.create(name, kind, roles, "demo")
        tokens[name] = container.principals.issue_token(name, "demo")
    service = PasswordService(container.store, container.clock, Argon2Hasher())
    passwords = {}
    for name, (kind, _roles) in accounts.items():
        if kind is PrincipalKind.USER:
            passwords[name] = f"demo-{secrets.token_hex(4)}"
            service.set_password(name, passwords[name], "demo")
    return tokens, passwords


@dataclass(slots=True)
class DemoSession:
    """What every step of the scenario needs: where to print, the matcher, and the accounts' tokens."""

    options: DemoOptions
    console: Console
    container: Container
    channel: grpc.aio.Channel
    address: str
    tokens: dict[str, str]
    summary: DemoSummary

    def auth(self, account: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.tokens[account]}"),)


@dataclass(frozen=True, slots=True)
class EnrolledWatchlist:
    id: str
    references: dict[str, str]  # subject id -> reference
    names: dict[str, str]  # reference -> name
    enrolled: Fingerprints  # of the enrolled embeddings: the deletion scan must find these


@dataclass(frozen=True, slots=True)
class DemoWindow:
    id: str
    clip_starts: datetime
    starts: datetime
    ends: datetime


async def _scenario(session: DemoSession, embedder: InsightFaceEmbedder, cast: Cast, plan: ClipPlan) -> None:
    watchlist = await enrol_cast(session, embedder, cast)
    window = await authorise_window(session, watchlist, plan)
    ledger = await _watch(session, embedder, watchlist, window, plan)
    await _account_for(session, ledger, watchlist, len(cast.listed))


async def enrol_cast(session: DemoSession, embedder: InsightFaceEmbedder, cast: Cast) -> EnrolledWatchlist:
    console, summary = session.console, session.summary
    heading(console, "3. Watchlist")
    report = await asyncio.to_thread(embed_subjects, embedder, cast.enrolment, cast.images_dir, Pick.CENTRAL)
    for problem in report.problems:
        raise DemoInputError(f"{cast.images_dir / problem.image}: {problem.reason}")
    enrolled = Fingerprints(
        embeddings=[
            embedding_needles(row.astype("<f4").tobytes(), report.dimension)
            for subject in report.subjects
            for row in np.atleast_2d(subject.embeddings)
        ]
    )
    with grpc.insecure_channel(session.address) as sync_channel:
        uploaded = await asyncio.to_thread(
            upload_report,
            sync_channel,
            session.tokens[SUPERVISOR],
            report,
            watchlist_name="demo watchlist",
            seal=True,
        )
    report.wipe()
    names = {p.key: p.name for p in cast.listed}
    rows = {row.reference: row for row in cast.enrolment}
    summary.watchlist = [
        {
            "reference": ref,
            "name": names[ref],
            "subject_id": sid,
            "category": rows[ref].category,
            "reason": rows[ref].reason,
        }
        for ref, sid in uploaded.added.items()
    ]
    for entry in summary.watchlist:
        console.print(
            f"enrolled   {entry['reference']}  {entry['name']}  ({entry['category']}: {entry['reason']})",
            highlight=False,
        )
    console.print(
        f"sealed     watchlist {uploaded.watchlist_id} ({len(uploaded.added)} people), content hash "
        f"{(uploaded.sealed_hash or '')[:16]}..."
    )
    references = {subject_id: reference for reference, subject_id in uploaded.added.items()}
    return EnrolledWatchlist(uploaded.watchlist_id, references, names, enrolled)


async def authorise_window(session: DemoSession, watchlist: EnrolledWatchlist, plan: ClipPlan) -> DemoWindow:
    """A window that opens and closes in the clip's quiet stretches, timed from its first frame."""
    console, threshold = session.console, session.options.threshold
    heading(console, "4. Deployment window")
    deployments = control_pb2_grpc.DeploymentsStub(session.channel)
    clip_starts = datetime.now(UTC) + timedelta(seconds=START_DELAY_S)
    starts = clip_starts + timedelta(seconds=plan.arm_at_s)
    ends = clip_starts + timedelta(seconds=plan.disarm_at_s)
    window = await deployments.CreateWindow(
        pb.CreateWindowRequest(
            purpose="lfr demo: find the watchlisted demo people",
            legal_basis="demonstration only (no real deployment)",
            location="Demo Street",
            camera_ids=[CAMERA],
            watchlist_id=watchlist.id,
            threshold=threshold,
            starts_at=convert.timestamp(starts),
            ends_at=convert.timestamp(ends),
            assigned_users=[OFFICER],
        ),
        metadata=session.auth(SUPERVISOR),
    )
    authorised = await deployments.AuthoriseWindow(
        pb.WindowRef(window_id=window.id), metadata=session.auth(AUTHORISER)
    )
    session.summary.window = {"id": window.id, "starts_at": starts.isoformat(), "ends_at": ends.isoformat()}
    console.print(
        f"window     {window.id} authorised by {AUTHORISER}: camera {CAMERA}, threshold {threshold}"
    )
    verdict = authorised.equity_verdict
    console.print(
        f"[bold yellow]equity     gate {verdict.gate}: {verdict.outcome}[/] (a real deployment, under the "
        "default `policy.equity_gate: refuse`, would not be authorised without a recorded evaluation)",
        highlight=False,
    )
    for reason in verdict.reasons:
        console.print(f"           - {reason}", highlight=False)
    console.print(
        f"           armed from {timestamp(starts)} to {timestamp(ends)} (the clip starts "
        f"{plan.arm_at_s:.1f} s earlier and runs on {plan.duration_s - plan.disarm_at_s:.1f} s after)"
    )
    return DemoWindow(window.id, clip_starts, starts, ends)


async def _watch(
    session: DemoSession,
    embedder: InsightFaceEmbedder,
    watchlist: EnrolledWatchlist,
    window: DemoWindow,
    plan: ClipPlan,
) -> Ledger:
    """Runs lfr's camera node over the clip while an officer's Alerts.Subscribe stream prints alerts."""
    console, summary, workdir = session.console, session.summary, session.options.workdir
    heading(console, f"5. Camera {CAMERA} watching the clip (lfr's camera node)")
    ledger = Ledger(console, window.starts, window.ends)
    node_config = CameraNodeConfig.model_validate(
        {
            "camera_id": CAMERA,
            "matcher": {
                "address": session.address,
                "token_file": private_file(workdir / "camera-token", session.tokens[CAMERA]),
            },
            "source": {"uri": str(workdir / "clip.avi"), "fps": plan.fps, "realtime": True},
            # Short tracks: a face is sent within half a second of its person leaving the scene.
            "tracker": {"min_interval_ms": 600, "max_age_ms": 500},
            "metrics": {"enabled": False},
        }
    )
    registry = CollectorRegistry()
    node = build_camera_node(
        node_config, registry, embedder=embedder, serve=False, on_sent=ledger.sent, on_result=ledger.answered
    )
    alerts: list[AlertSeen] = []
    subscription = control_pb2_grpc.AlertsStub(session.channel).Subscribe(
        pb.SubscribeRequest(window_id=window.id), metadata=session.auth(OFFICER)
    )
    printer = asyncio.create_task(_print_alerts(console, subscription, alerts, watchlist, plan, window))
    announcer = asyncio.create_task(_announce(console, window, len(watchlist.references)))
    await asyncio.sleep(max(0.0, (window.clip_starts - datetime.now(UTC)).total_seconds()))
    console.print(f"[dim]{timestamp(datetime.now(UTC))}  clip starts: window not yet armed[/]")
    node_summary = await node.run()
    for _ in range(50):  # the stream may be a moment behind the camera's answers
        if len(alerts) >= len(ledger.armed_alert_ids):  # one card per alert id
            break
        await asyncio.sleep(0.05)
    printer.cancel()
    announcer.cancel()
    subscription.cancel()
    await asyncio.gather(printer, announcer, return_exceptions=True)
    summary.camera = {
        "frames": node_summary.frames,
        "frames_dropped": node_summary.dropped_frames,
        "faces_detected": int(
            registry.get_sample_value("lfr_camera_faces_detected_total", {"camera": CAMERA}) or 0
        ),
        "faces_below_quality_gate": sum(
            int(sample.value)
            for metric in registry.collect()
            if metric.name == "lfr_camera_faces_gated"
            for sample in metric.samples
            if sample.name.endswith("_total")
        ),
        "faces_sent": node_summary.sent,
        "unanswered": node_summary.unanswered,
    }
    summary.outcomes = {phase: dict(counts) for phase, counts in ledger.outcomes.items()}
    summary.alerts = alerts
    return ledger


async def _account_for(
    session: DemoSession, ledger: Ledger, watchlist: EnrolledWatchlist, listed: int
) -> None:
    """What the store kept, whether the audit chain holds, and whether any non-match left a trace."""
    container, summary = session.container, session.summary
    await asyncio.to_thread(container.flush_counters)
    with container.store() as uow:
        totals = uow.counters.totals()
        stored_alerts = uow.alerts.find(limit=10_000)
    summary.stored = {
        "alerts": len(stored_alerts),
        "counters": [
            {"window": window_id, "camera": camera, "outcome": outcome, "count": n}
            for (window_id, camera, outcome), n in sorted(totals.items())
        ],
    }
    audit = control_pb2_grpc.AuditStub(session.channel)
    verdict = await audit.Verify(pb.Empty(), metadata=session.auth(AUDITOR))
    summary.audit = {"ok": verdict.ok, "records": verdict.records_checked}
    scan = await asyncio.to_thread(
        scan_folder,
        session.options.workdir,
        ledger.forgotten,
        Fingerprints(crops=_stored_crops(container), embeddings=watchlist.enrolled.embeddings),
        ledger.alert_crops,
    )
    summary.deletion_scan = _scan_summary(scan, ledger)
    summary.problems = find_problems(summary, len(ledger.armed_alert_ids), listed)
    summary.ok = not summary.problems


def private_file(path: Path, content: str) -> str:
    """A secret the demo's processes share through the work folder (removed with it)."""
    path.touch(0o600)
    path.write_text(content)
    return str(path)


async def _announce(console: Console, window: DemoWindow, subjects: int) -> None:
    await asyncio.sleep(max(0.0, (window.starts - datetime.now(UTC)).total_seconds()))
    console.print(
        f"[bold green]{timestamp(window.starts)}  window armed: matching against {subjects} watchlisted "
        "people[/]"
    )
    await asyncio.sleep(max(0.0, (window.ends - datetime.now(UTC)).total_seconds()))
    console.print(f"[bold]{timestamp(window.ends)}  window closed: camera faces are no longer matched[/]")


async def _print_alerts(
    console: Console,
    subscription: grpc.aio.UnaryStreamCall,  # type: ignore[type-arg]
    alerts: list[AlertSeen],
    watchlist: EnrolledWatchlist,
    plan: ClipPlan,
    window: DemoWindow,
) -> None:
    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
        async for alert in subscription:
            reference = watchlist.references.get(alert.subject_id, alert.subject_id)
            raised = alert.raised_at.ToDatetime(tzinfo=UTC)
            captured = alert.captured_at.ToDatetime(tzinfo=UTC)
            clip_seconds = (captured - window.clip_starts).total_seconds()
            seen = AlertSeen(
                alert.id,
                reference,
                watchlist.names.get(reference, "?"),
                round(alert.score, 4),
                alert.threshold,
                alert.camera_id,
                raised.isoformat(),
                round(clip_seconds, 2),
                window.starts <= raised < window.ends,
                reference in plan.present_at(clip_seconds),
            )
            earlier = next((i for i, a in enumerate(alerts) if a.alert_id == seen.alert_id), None)
            if earlier is not None:
                # The same card again (issue 10): a later face of the track, or a decision; one entry each.
                alerts[earlier] = seen
                console.print(
                    f"[red]{clock(datetime.now(UTC))}  alert {seen.name} ({reference}) updated: best score "
                    f"{seen.score:.2f} (another face of the same passage)[/]",
                    highlight=False,
                )
                continue
            alerts.append(seen)
            console.print(
                f"[bold red]{clock(raised)}  ALERT {seen.name} ({reference}): score {seen.score:.2f}"
                f" >= threshold {seen.threshold:.2f}, camera {seen.camera} -> officers notified[/]",
                highlight=False,
            )


def _stored_crops(container: Container) -> list[bytes]:
    """Fingerprints of the alert crops as the database holds them: encrypted."""
    from sqlalchemy import text

    from lfr.adapters.storage.sql import SqlStore

    assert isinstance(container.store, SqlStore)
    with container.store.engine.connect() as sql:
        return [stored_needle(bytes(r[0])) for r in sql.execute(text("SELECT crop_jpeg FROM alerts"))]


def _scan_summary(scan: ScanReport, ledger: Ledger) -> dict[str, Any]:
    return {
        "files": [name for name, _ in scan.files],
        "bytes": scan.total_bytes,
        "non_matching_faces": len(ledger.forgotten.crops),
        "crops_found": scan.forgotten.crops,
        "embeddings_found": scan.forgotten.embeddings,
        "found_in": list(scan.forgotten.where),
        "alert_crops": len(ledger.alert_crops.crops),
        "alert_crops_found": scan.kept.crops,
        "alert_crops_in_clear": scan.in_clear.crops,
        "enrolled_embeddings_found": scan.kept.embeddings,
    }


async def _wait_for_interrupt(console: Console, tablet: str, passwords: dict[str, str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    console.print()
    console.print(
        f"Matcher and tablet keep running: open {tablet} and sign in as {OFFICER} to adjudicate the "
        f"alerts, or as {SUPERVISOR} for the supervisor view. Press Ctrl-C to stop.",
        highlight=False,
    )
    for line in sign_in_lines(passwords):
        console.print(f"  {line}", highlight=False)
    try:
        await stop.wait()
        console.print("stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def demo_logging(log_file: Path) -> Iterator[None]:
    """lfr's log goes to a file in the work folder (which the deletion check searches too); only
    warnings reach the terminal. uvicorn configures its own loggers when the tablet starts: a filter
    on them survives that and keeps its start-up chatter off the demo's output."""
    from lfr.bootstrap import configure_logging

    configure_logging("INFO", str(log_file))
    root = logging.getLogger()
    terminal = logging.StreamHandler()
    terminal.setLevel(logging.WARNING)
    terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(terminal)
    quiet = logging.Filter()
    quiet.filter = lambda record: record.levelno >= logging.WARNING  # type: ignore[method-assign]
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.addFilter(quiet)
    try:
        yield
    finally:
        uvicorn.removeFilter(quiet)
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
