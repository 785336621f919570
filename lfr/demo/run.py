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
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table

from lfr.adapters.camera.config import CameraNodeConfig
from lfr.adapters.embedder import InsightFaceEmbedder, ModelSettings
from lfr.adapters.enrolment import Pick, embed_subjects
from lfr.adapters.grpc import convert
from lfr.adapters.passwords import Argon2Hasher
from lfr.adapters.watchlist_upload import upload_report
from lfr.bootstrap import Container, build_camera_node, build_container, running_matcher, serving_tablet
from lfr.config import load_config
from lfr.demo.cast import Cast, default_cast, user_cast
from lfr.demo.clip import ClipPlan, Phase, plan_clip, render_clip
from lfr.demo.portraits import DemoInputError, portrait_from_file
from lfr.demo.scan import Fingerprints, ScanReport, crop_needle, embedding_needles, scan_folder
from lfr.domain.principal import PrincipalKind, Role
from lfr.services.passwords import PasswordService
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc, ingest_pb2

CAMERA = "cam-demo-1"
SUPERVISOR = "sgt-demo"
OFFICER = "pc-demo"
AUDITOR = "auditor-demo"
START_DELAY_S = 1.0  # between creating the window and the clip's first frame

_OUTCOMES = {
    ingest_pb2.OUTCOME_ALERT: "alert",
    ingest_pb2.OUTCOME_NO_MATCH: "no_match",
    ingest_pb2.OUTCOME_NOT_ARMED: "not_armed",
    ingest_pb2.OUTCOME_REJECTED: "rejected",
}
_SAID = {
    "no_match": "no match: answered and forgotten, nothing kept",
    "not_armed": "not armed: not even matched, nothing kept",
    "rejected": "rejected",
}


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


@dataclass(slots=True)
class AlertSeen:
    alert_id: str
    subject: str  # the listed person's reference
    name: str
    score: float
    threshold: float
    camera: str
    raised_at: str
    clip_seconds: float  # when the face was captured, seconds into the clip
    inside_window: bool
    person_on_screen: bool  # the alerted person was in the clip at that moment (the demo's ground truth)


@dataclass(slots=True)
class DemoSummary:
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    model_id: str = ""
    threshold: float = 0.0
    watchlist: list[dict[str, str]] = field(default_factory=list)
    passers_by: int = 0
    window: dict[str, str] = field(default_factory=dict)
    clip: dict[str, float] = field(default_factory=dict)
    camera: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    alerts: list[AlertSeen] = field(default_factory=list)
    stored: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    deletion_scan: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """The camera node's view of each face it sent: the matcher's answer, counted by the phase of the
    window it arrived in, and fingerprints of the face for the deletion check (see lfr.demo.scan)."""

    def __init__(self, console: Console, starts: datetime, ends: datetime) -> None:
        self._console = console
        self._starts, self._ends = starts, ends
        self._pending: dict[int, tuple[bytes, tuple[int, int]]] = {}
        self.outcomes: dict[str, Counter[str]] = {phase.value: Counter() for phase in Phase}
        self.forgotten = Fingerprints()
        self.alert_crops = Fingerprints()
        self._unprinted: Counter[str] = Counter()

    def phase(self, when: datetime) -> Phase:
        if when < self._starts:
            return Phase.BEFORE
        return Phase.ARMED if when < self._ends else Phase.AFTER

    def sent(self, observation: ingest_pb2.Observation) -> None:
        self._pending[observation.seq] = (
            crop_needle(observation.crop_jpeg),
            embedding_needles(observation.embedding_f32le, observation.dimension),
        )

    def answered(self, result: ingest_pb2.ObservationResult) -> None:
        now = datetime.now(UTC)
        outcome = _OUTCOMES.get(result.outcome, "unknown")
        self.outcomes[self.phase(now).value][outcome] += 1
        crop, embedding = self._pending.pop(result.seq, (b"", (0, 0)))
        if outcome == "alert":
            self.alert_crops.crops.append(crop)
            return  # the Alerts.Subscribe stream prints it
        self.forgotten.crops.append(crop)
        self.forgotten.embeddings.append(embedding)
        if not self._unprinted:
            # The answers to one batch arrive together: one line for all of them.
            asyncio.get_running_loop().call_soon(self._print_answers, now)
        self._unprinted[outcome] += 1

    def _print_answers(self, when: datetime) -> None:
        for outcome, n in sorted(self._unprinted.items()):
            faces = "1 face " if n == 1 else f"{n} faces"
            self._console.print(
                f"[dim]{_clock(when)}  {faces} -> {_SAID.get(outcome, outcome)}[/]", highlight=False
            )
        self._unprinted.clear()


def quiet_model_libraries() -> None:
    """insightface and onnxruntime talk on stdout/stderr; the demo's reader needs none of it."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\.")


def load_embedder(settings: ModelSettings) -> InsightFaceEmbedder:
    quiet_model_libraries()
    with contextlib.redirect_stdout(io.StringIO()):
        return InsightFaceEmbedder(settings)


def _timestamp(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S")


def _clock(when: datetime) -> str:
    """Local time to a tenth of a second."""
    return when.astimezone().strftime("%H:%M:%S.%f")[:-5]


def _heading(console: Console, text: str) -> None:
    console.print()
    console.print(f"[bold cyan]{text}[/]")


async def run_demo(options: DemoOptions, console: Console) -> DemoSummary:
    began = time.monotonic()
    summary = DemoSummary(threshold=options.threshold)
    workdir = options.workdir
    workdir.mkdir(parents=True, exist_ok=True)

    _heading(console, "1. Face models and the people in the clip")
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

    config = load_config(
        None,
        {
            "store.url": f"sqlite:///{workdir / 'lfr.db'}",
            "grpc.listen": "127.0.0.1:0",
            "metrics.enabled": False,
            "matching.gate_refresh_seconds": 0.2,
            "matching.counter_flush_seconds": 0.5,
            "tablet.listen": options.tablet_listen,
            "tablet.session_secret_file": _secret_file(workdir / "tablet-session-secret"),
        },
    )
    container = build_container(config)
    try:
        tokens, password = await asyncio.to_thread(_accounts, container)
        async with running_matcher(container, extensions=[serving_tablet]) as running:
            address = f"127.0.0.1:{running.port}"
            tablet = f"http://127.0.0.1:{container.extras['tablet_port']}/"
            _heading(console, "2. Matcher and officers' tablet")
            console.print(f"matcher    gRPC on {address}, store {workdir / 'lfr.db'} (embedded SQLite)")
            console.print(
                f"tablet     {tablet}  sign in as [bold]{OFFICER}[/] / password [bold]{password}[/]",
                highlight=False,
            )
            async with grpc.aio.insecure_channel(address) as channel:
                await _scenario(
                    options, console, container, channel, address, tokens, embedder, cast, plan, summary
                )
                summary.seconds["total"] = round(time.monotonic() - began, 1)
                _print_summary(console, summary)
                if options.keep_running:
                    await _wait_for_interrupt(console, tablet, password)
    finally:
        container.close()
    return summary


def _secret_file(path: Path) -> str:
    path.write_text(secrets.token_urlsafe(48))
    path.chmod(0o600)
    return str(path)


def _accounts(container: Container) -> tuple[dict[str, str], str]:
    accounts = {
        SUPERVISOR: (PrincipalKind.USER, {Role.SUPERVISOR, Role.ADMIN}),
        OFFICER: (PrincipalKind.USER, {Role.OFFICER}),
        AUDITOR: (PrincipalKind.USER, {Role.AUDITOR}),
        CAMERA: (PrincipalKind.CAMERA, set()),
    }
    tokens = {}
    for name, (kind, roles) in accounts.items():
        container.principals.create(name, kind, roles, "demo")
        tokens[name] = container.principals.issue_token(name, "demo")
    password = f"demo-{secrets.token_hex(4)}"
    PasswordService(container.store, container.clock, Argon2Hasher()).set_password(OFFICER, password, "demo")
    return tokens, password


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def _scenario(
    options: DemoOptions,
    console: Console,
    container: Container,
    channel: grpc.aio.Channel,
    address: str,
    tokens: dict[str, str],
    embedder: InsightFaceEmbedder,
    cast: Cast,
    plan: ClipPlan,
    summary: DemoSummary,
) -> None:
    _heading(console, "3. Watchlist")
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
    with grpc.insecure_channel(address) as sync_channel:
        uploaded = await asyncio.to_thread(
            upload_report,
            sync_channel,
            tokens[SUPERVISOR],
            report,
            watchlist_name="demo watchlist",
            seal=True,
        )
    report.wipe()
    names = {p.key: p.name for p in cast.listed}
    rows = {row.reference: row for row in cast.enrolment}
    subjects = {subject_id: reference for reference, subject_id in uploaded.added.items()}
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

    _heading(console, "4. Deployment window")
    deployments = control_pb2_grpc.DeploymentsStub(channel)
    clip_starts = datetime.now(UTC) + timedelta(seconds=START_DELAY_S)
    starts = clip_starts + timedelta(seconds=plan.arm_at_s)
    ends = clip_starts + timedelta(seconds=plan.disarm_at_s)
    window = await deployments.CreateWindow(
        pb.CreateWindowRequest(
            purpose="lfr demo: find the two fictional demo people",
            legal_basis="demonstration only (no real deployment)",
            location="Demo Street",
            camera_ids=[CAMERA],
            watchlist_id=uploaded.watchlist_id,
            threshold=options.threshold,
            starts_at=convert.timestamp(starts),
            ends_at=convert.timestamp(ends),
            assigned_users=[OFFICER],
        ),
        metadata=_auth(tokens[SUPERVISOR]),
    )
    await deployments.AuthoriseWindow(pb.WindowRef(window_id=window.id), metadata=_auth(tokens[SUPERVISOR]))
    summary.window = {"id": window.id, "starts_at": starts.isoformat(), "ends_at": ends.isoformat()}
    console.print(
        f"window     {window.id} authorised by {SUPERVISOR}: camera {CAMERA}, threshold {options.threshold}"
    )
    console.print(
        f"           armed {_timestamp(starts)} to {_timestamp(ends)}: the clip starts "
        f"{plan.arm_at_s:.1f} s before, and runs on {plan.duration_s - plan.disarm_at_s:.1f} s after"
    )

    _heading(console, f"5. Camera {CAMERA} watching the clip (lfr's camera node)")
    ledger = Ledger(console, starts, ends)
    token_file = workdir_file(options.workdir / "camera-token", tokens[CAMERA])
    node_config = CameraNodeConfig.model_validate(
        {
            "camera_id": CAMERA,
            "matcher": {"address": address, "token_file": token_file},
            "source": {"uri": str(options.workdir / "clip.avi"), "fps": plan.fps, "realtime": True},
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
    subscription = control_pb2_grpc.AlertsStub(channel).Subscribe(
        pb.SubscribeRequest(window_id=window.id), metadata=_auth(tokens[OFFICER])
    )
    printer = asyncio.create_task(
        _print_alerts(console, subscription, alerts, subjects, names, plan, clip_starts, starts, ends)
    )
    announcer = asyncio.create_task(_announce(console, starts, ends, len(uploaded.added)))
    await asyncio.sleep(max(0.0, (clip_starts - datetime.now(UTC)).total_seconds()))
    console.print(f"[dim]{_timestamp(datetime.now(UTC))}  clip starts: window not yet armed[/]")
    node_summary = await node.run()
    expected_alerts = ledger.outcomes[Phase.ARMED.value]["alert"]
    for _ in range(50):  # the stream may be a moment behind the camera's answers
        if len(alerts) >= sum(c["alert"] for c in ledger.outcomes.values()):
            break
        await asyncio.sleep(0.05)
    printer.cancel()
    announcer.cancel()
    subscription.cancel()
    await asyncio.gather(printer, announcer, return_exceptions=True)

    def count(name: str, **labels: str) -> int:
        return int(registry.get_sample_value(name, {"camera": CAMERA, **labels}) or 0)

    summary.camera = {
        "frames": node_summary.frames,
        "frames_dropped": node_summary.dropped_frames,
        "faces_detected": count("lfr_camera_faces_detected_total"),
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
    verdict = await control_pb2_grpc.AuditStub(channel).Verify(pb.Empty(), metadata=_auth(tokens[AUDITOR]))
    summary.audit = {"ok": verdict.ok, "records": verdict.records_checked}
    scan = await asyncio.to_thread(
        scan_folder,
        options.workdir,
        ledger.forgotten,
        Fingerprints(crops=ledger.alert_crops.crops, embeddings=enrolled.embeddings),
    )
    summary.deletion_scan = _scan_summary(scan, ledger)
    summary.problems = _problems(summary, expected_alerts, len(cast.listed))
    summary.ok = not summary.problems


def workdir_file(path: Path, content: str) -> str:
    path.write_text(content)
    path.chmod(0o600)
    return str(path)


async def _announce(console: Console, starts: datetime, ends: datetime, subjects: int) -> None:
    await asyncio.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()))
    console.print(
        f"[bold green]{_timestamp(starts)}  window armed: matching against {subjects} watchlisted people[/]"
    )
    await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()))
    console.print(f"[bold]{_timestamp(ends)}  window closed: camera faces are no longer matched[/]")


async def _print_alerts(
    console: Console,
    subscription: grpc.aio.UnaryStreamCall,  # type: ignore[type-arg]
    alerts: list[AlertSeen],
    subjects: dict[str, str],
    names: dict[str, str],
    plan: ClipPlan,
    clip_starts: datetime,
    starts: datetime,
    ends: datetime,
) -> None:
    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
        async for alert in subscription:
            reference = subjects.get(alert.subject_id, alert.subject_id)
            raised = alert.raised_at.ToDatetime(tzinfo=UTC)
            captured = alert.captured_at.ToDatetime(tzinfo=UTC)
            clip_seconds = (captured - clip_starts).total_seconds()
            seen = AlertSeen(
                alert.id,
                reference,
                names.get(reference, "?"),
                round(alert.score, 4),
                alert.threshold,
                alert.camera_id,
                raised.isoformat(),
                round(clip_seconds, 2),
                starts <= raised < ends,
                reference in plan.present_at(clip_seconds),
            )
            alerts.append(seen)
            console.print(
                f"[bold red]{_clock(raised)}  ALERT {seen.name} ({reference}): score {seen.score:.2f}"
                f" >= threshold {seen.threshold:.2f}, camera {seen.camera} -> officers notified[/]",
                highlight=False,
            )


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
        "enrolled_embeddings_found": scan.kept.embeddings,
    }


def _problems(summary: DemoSummary, armed_alerts: int, listed: int) -> list[str]:
    problems = []
    outcomes = summary.outcomes
    scan = summary.deletion_scan
    if not outcomes[Phase.BEFORE.value].get("not_armed"):
        problems.append("no face was answered 'not armed' before the window opened")
    if not outcomes[Phase.AFTER.value].get("not_armed"):
        problems.append("no face was answered 'not armed' after the window closed")
    for phase in (Phase.BEFORE, Phase.AFTER):
        if set(outcomes[phase.value]) - {"not_armed"}:
            problems.append(f"{phase.value}: answers other than 'not armed': {dict(outcomes[phase.value])}")
    if outcomes[Phase.ARMED.value].get("not_armed"):
        problems.append("a face was answered 'not armed' while the window was armed")
    alerted = {a.subject for a in summary.alerts}
    if len(alerted) < listed:
        problems.append(f"only {len(alerted)} of the {listed} watchlisted people raised an alert")
    if armed_alerts != len(summary.alerts):
        problems.append(f"{armed_alerts} alert answers but {len(summary.alerts)} alerts on the stream")
    problems += [
        f"alert {a.alert_id} raised outside the window" for a in summary.alerts if not a.inside_window
    ]
    problems += [
        f"alert {a.alert_id} names {a.subject}, who was not on screen then"
        for a in summary.alerts
        if not a.person_on_screen
    ]
    if scan["crops_found"] or scan["embeddings_found"]:
        problems.append(f"non-matching faces found on disk in {', '.join(scan['found_in'])}")
    if scan["alert_crops_found"] != scan["alert_crops"] or not scan["enrolled_embeddings_found"]:
        problems.append("the deletion scan could not find what must be there: it proves nothing")
    if not summary.audit.get("ok"):
        problems.append("the audit chain does not verify")
    return problems


def _print_summary(console: Console, summary: DemoSummary) -> None:
    _heading(console, "6. What happened")
    camera = summary.camera
    console.print(
        f"camera     {camera['frames']} frames ({camera['frames_dropped']} dropped), "
        f"{camera['faces_detected']} face sightings, {camera['faces_below_quality_gate']} below the quality "
        f"gate; the tracker sent {camera['faces_sent']} faces (each person's best, at most one per 0.6 s)"
    )
    table = Table(
        "", "not armed", "no match", "alert", title="Faces the camera sent, by the matcher's answer"
    )
    for phase in Phase:
        counts = summary.outcomes.get(phase.value, {})
        table.add_row(phase.label, *(str(counts.get(k, 0)) for k in ("not_armed", "no_match", "alert")))
    console.print(table)
    by_subject: dict[str, list[AlertSeen]] = {}
    for alert in summary.alerts:
        by_subject.setdefault(alert.subject, []).append(alert)
    alerts = Table("watchlisted person", "alerts", "scores", "threshold", title="Alerts")
    for entry in summary.watchlist:
        seen = by_subject.get(entry["reference"], [])
        scores = ", ".join(f"{a.score:.2f}" for a in seen) or "-"
        alerts.add_row(
            f"{entry['name']} ({entry['reference']})", str(len(seen)), scores, f"{summary.threshold:.2f}"
        )
    console.print(alerts)
    console.print(
        f"passers-by  {summary.passers_by} people walked past without raising an alert"
        if all(a.person_on_screen for a in summary.alerts)
        else "passers-by  [red]an alert named someone who was not on screen[/]"
    )
    stored = summary.stored
    console.print(
        f"store      {stored['alerts']} alerts, each with its face crop for the officers; "
        "of every other face only a count:"
    )
    for row in stored["counters"]:
        window = f"window {row['window']}" if row["window"] else "no window armed"
        console.print(f"             {row['count']:>4} {row['outcome']:<9} ({window})", highlight=False)
    audit = summary.audit
    verdict = "[green]intact[/]" if audit["ok"] else "[red]BROKEN[/]"
    console.print(f"audit      hash chain {verdict}: {audit['records']} records verified")
    scan = summary.deletion_scan
    found = scan["crops_found"] + scan["embeddings_found"]
    console.print(
        f"deletion   searched every byte of the work folder ({_describe(scan['files'])}; "
        f"{scan['bytes'] / 1e6:.1f} MB)",
        highlight=False,
    )
    console.print(
        f"           for the crops and embeddings of the {scan['non_matching_faces']} faces that did not "
        "match: "
        + (
            "[bold green]0 found[/]"
            if not found
            else f"[bold red]{found} found in {', '.join(scan['found_in'])}[/]"
        ),
        highlight=False,
    )
    console.print(
        f"           (the same search does find what is meant to be there: {scan['alert_crops_found']} of "
        f"{scan['alert_crops']} alert crops, {scan['enrolled_embeddings_found']} enrolled embeddings)",
        highlight=False,
    )
    console.print()
    if summary.ok:
        console.print(f"[bold green]demo OK[/] in {summary.seconds.get('total', 0):.0f} s")
    else:
        for problem in summary.problems:
            console.print(f"[bold red]problem:[/] {problem}", highlight=False)


def _describe(files: list[str]) -> str:
    """File names, with each subfolder summarised as one entry."""
    top = [name for name in files if "/" not in name]
    folders = Counter(name.split("/", 1)[0] for name in files if "/" in name)
    return ", ".join([*top, *(f"{folder}/ ({n} files)" for folder, n in sorted(folders.items()))])


async def _wait_for_interrupt(console: Console, tablet: str, password: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    console.print()
    console.print(
        f"Matcher and tablet keep running: open {tablet} and sign in as {OFFICER} / {password} to "
        "adjudicate the alerts. Press Ctrl-C to stop.",
        highlight=False,
    )
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
