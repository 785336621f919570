"""`lfr demo --synthetic`: the whole flow in one process with synthetic embeddings over real loopback gRPC,
no camera and no face models.

A watchlist of synthetic people is sealed; a window is requested and authorised; a camera streams faces
before, inside and after the window. Only the wanted faces inside the window raise alerts; everything else
is answered and forgotten, leaving counters only; the audit chain verifies at the end.
"""

from __future__ import annotations

import asyncio
import functools
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from lfr.adapters.grpc import convert
from lfr.bootstrap import Container, build_container, running_matcher
from lfr.config import load_config
from lfr.domain.principal import PrincipalKind, Role
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc, ingest_pb2, ingest_pb2_grpc

MODEL = "synthetic-demo-model"
DIM = 512
CAMERA = "cam-demo-1"


def _unit(rows: np.ndarray) -> np.ndarray:
    unit: np.ndarray = (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)
    return unit


async def run_synthetic_demo(folder: Path, subjects: int, passers_by: int, console: Console) -> None:
    config = load_config(
        None,
        {
            "store.url": f"sqlite:///{folder / 'lfr.db'}",
            "grpc.listen": "127.0.0.1:0",
            "metrics.enabled": False,
            "matching.gate_refresh_seconds": 0.2,
            # Random vectors have no demographic evaluation to record: the gate warns (shown below) instead
            # of refusing as it does by default. See lfr/demo/run.py.
            "policy.equity_gate": "warn",
        },
    )
    container = build_container(config)
    tokens = _accounts(container, console)
    rng = np.random.default_rng(2026)
    people = _unit(rng.normal(size=(subjects, DIM)))
    async with running_matcher(container) as running:
        console.rule(f"[bold]lfr demo[/] - matcher on 127.0.0.1:{running.port}, store {config.store.url}")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await _scenario(container, channel, tokens, people, rng, passers_by, console)
    container.close()


def _accounts(container: Container, console: Console) -> dict[str, str]:
    accounts = {
        "sgt-demo": (PrincipalKind.USER, {Role.SUPERVISOR, Role.ADMIN}),
        "insp-demo": (PrincipalKind.USER, {Role.SUPERVISOR}),  # authorises what sgt-demo creates
        "pc-demo": (PrincipalKind.USER, {Role.OFFICER}),
        "auditor-demo": (PrincipalKind.USER, {Role.AUDITOR}),
        CAMERA: (PrincipalKind.CAMERA, set()),
    }
    tokens = {}
    for name, (kind, roles) in accounts.items():
        container.principals.create(name, kind, roles, "demo")
        tokens[name] = container.principals.issue_token(name, "demo")
    console.print(f"accounts: {', '.join(accounts)} (bearer tokens issued)")
    return tokens


async def _scenario(
    container: Container,
    channel: grpc.aio.Channel,
    tokens: dict[str, str],
    people: np.ndarray,
    rng: np.random.Generator,
    passers_by: int,
    console: Console,
) -> None:
    def md(who: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {tokens[who]}"),)

    watchlists = control_pb2_grpc.WatchlistsStub(channel)
    deployments = control_pb2_grpc.DeploymentsStub(channel)
    alerts = control_pb2_grpc.AlertsStub(channel)
    audit = control_pb2_grpc.AuditStub(channel)

    wl = await watchlists.CreateWatchlist(
        pb.CreateWatchlistRequest(name="demo wanted list", model_id=MODEL, dimension=DIM),
        metadata=md("sgt-demo"),
    )
    for i, person in enumerate(people):
        await watchlists.AddSubject(
            pb.AddSubjectRequest(
                watchlist_id=wl.id,
                reference=f"DEMO/{i:04d}",
                display_name=f"Synthetic person {i}",
                category="wanted on warrant",
                reason="demo",
                image_source="synthetic",
                model_id=MODEL,
                dimension=DIM,
                embeddings_f32le=[convert.embedding_to_bytes(person)],
            ),
            metadata=md("sgt-demo"),
        )
    sealed = await watchlists.SealWatchlist(pb.WatchlistRef(watchlist_id=wl.id), metadata=md("sgt-demo"))
    console.print(
        f"watchlist {sealed.id} sealed: {sealed.subject_count} subjects, hash {sealed.content_hash[:16]}..."
    )

    starts = datetime.now(UTC) + timedelta(seconds=2)
    window = await deployments.CreateWindow(
        pb.CreateWindowRequest(
            purpose="locate people wanted on warrant",
            legal_basis="demo",
            location="Demo Square",
            camera_ids=[CAMERA],
            watchlist_id=wl.id,
            threshold=0.6,
            starts_at=convert.timestamp(starts),
            ends_at=convert.timestamp(starts + timedelta(seconds=4)),
            assigned_users=["pc-demo"],
        ),
        metadata=md("sgt-demo"),
    )
    authorised = await deployments.AuthoriseWindow(
        pb.WindowRef(window_id=window.id), metadata=md("insp-demo")
    )
    console.print(f"window {window.id} authorised by insp-demo: {starts:%H:%M:%S} + 4 s, threshold 0.6")
    equity = authorised.equity_verdict
    console.print(
        f"[bold yellow]equity gate ({equity.gate}): {equity.outcome}[/] - " + "; ".join(equity.reasons[:1]),
        highlight=False,
    )

    subscription = alerts.Subscribe(pb.SubscribeRequest(window_id=window.id), metadata=md("pc-demo"))
    printer = asyncio.create_task(_print_alerts(subscription, console))
    camera = ingest_pb2_grpc.CameraIngestStub(channel).Stream(metadata=md(CAMERA))
    wanted = [3, 42 % len(people), 77 % len(people)]

    async def phase(name: str) -> None:
        strangers = _unit(rng.normal(size=(passers_by, DIM)))
        probes = [*strangers, *(_unit(people[w] + 0.03 * rng.normal(size=DIM)) for w in wanted)]
        batch = ingest_pb2.ObservationBatch(
            observations=[
                ingest_pb2.Observation(
                    seq=i,
                    camera_id=CAMERA,
                    captured_at=convert.timestamp(datetime.now(UTC)),
                    track_id=f"{name}-{i}",
                    model_id=MODEL,
                    dimension=DIM,
                    embedding_f32le=convert.embedding_to_bytes(v),
                    crop_jpeg=_crop(),
                )
                for i, v in enumerate(probes)
            ]
        )
        await camera.write(batch)
        answer = await camera.read()
        assert isinstance(answer, ingest_pb2.ObservationResults)
        counts: dict[str, int] = {}
        for r in answer.results:
            label = ingest_pb2.Outcome.Name(r.outcome).removeprefix("OUTCOME_").lower()
            counts[label] = counts.get(label, 0) + 1
        console.print(f"[bold]{name}[/]: {len(probes)} faces ({len(wanted)} wanted) -> {counts}")

    await phase("before the window")
    await _until(starts + timedelta(seconds=0.5))
    await phase("inside the window")
    await asyncio.sleep(0.5)
    await _until(starts + timedelta(seconds=4.5))
    await phase("after the window")
    await camera.done_writing()
    printer.cancel()
    subscription.cancel()

    container.flush_counters()
    with container.store() as uow:
        totals = uow.counters.totals()
        stored = uow.alerts.find(limit=1000)
    table = Table("window", "camera", "outcome", "faces", title="What survives of the faces: counters only")
    for (window_id, cam, outcome), n in sorted(totals.items()):
        table.add_row(window_id or "(none armed)", cam, outcome, str(n))
    console.print(table)
    console.print(
        f"alerts stored: {len(stored)} (one per wanted face inside the window, crops kept); "
        "non-matches stored: 0 (embeddings and crops wiped after the decision)"
    )
    verdict = await audit.Verify(pb.Empty(), metadata=md("auditor-demo"))
    colour = "green" if verdict.ok else "red"
    console.print(
        f"[{colour}]audit chain {'intact' if verdict.ok else 'BROKEN'}[/]: {verdict.records_checked} records"
    )


async def _print_alerts(subscription: grpc.aio.UnaryStreamCall, console: Console) -> None:  # type: ignore[type-arg]
    try:
        async for alert in subscription:
            console.print(
                f"  [bold red]ALERT[/] #{alert.sequence} camera {alert.camera_id} subject {alert.subject_id} "
                f"score {alert.score:.3f} -> officers notified",
                highlight=False,
            )
    except (asyncio.CancelledError, grpc.aio.AioRpcError):
        return


async def _until(when: datetime) -> None:
    await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


@functools.cache
def _crop() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), (128, 100, 80)).save(buffer, "JPEG")
    return buffer.getvalue()
