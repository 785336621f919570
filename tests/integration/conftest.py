"""A real matcher on 127.0.0.1:0 (real gRPC, real FAISS) with accounts, a sealed watchlist and helpers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lfr.bootstrap import Container, Running, build_container, running_matcher
from lfr.config import LfrConfig, load_config
from lfr.domain.principal import PrincipalKind, Role
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from tests.support import tiny_jpeg

DIM = 512
MODEL = "model-test"
SUBJECTS = 12


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def stamp(when: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(when)
    return t


def auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def observation(
    seq: int,
    vector: np.ndarray,
    camera: str = "cam-1",
    model: str = MODEL,
    crop: bytes | None = None,
    dimension: int | None = None,
) -> ingest_pb2.Observation:
    payload = np.ascontiguousarray(vector, dtype="<f4").tobytes()
    return ingest_pb2.Observation(
        seq=seq,
        camera_id=camera,
        captured_at=stamp(datetime.now(UTC)),
        track_id=f"t{seq}",
        model_id=model,
        dimension=dimension if dimension is not None else len(vector),
        embedding_f32le=payload,
        crop_jpeg=tiny_jpeg() if crop is None else crop,
    )


def packed_batch(observations: list[ingest_pb2.Observation]) -> ingest_pb2.ObservationBatch:
    """The observations with their embeddings moved into the message's embeddings_f32le, in order."""
    moved = []
    for item in observations:
        moved.append(item.embedding_f32le)
        item.embedding_f32le = b""
    return ingest_pb2.ObservationBatch(observations=observations, embeddings_f32le=b"".join(moved))


@dataclass
class World:
    container: Container
    port: int
    tokens: dict[str, str]
    people: list[np.ndarray]
    rng: np.random.Generator
    channel: grpc.aio.Channel
    running: Running
    watchlist_id: str = ""
    subject_ids: list[str] = field(default_factory=list)

    def md(self, who: str) -> tuple[tuple[str, str]]:
        return auth(self.tokens[who])

    @property
    def deployments(self) -> control_pb2_grpc.DeploymentsAsyncStub:
        return control_pb2_grpc.DeploymentsStub(self.channel)  # type: ignore[return-value]

    @property
    def watchlists(self) -> control_pb2_grpc.WatchlistsAsyncStub:
        return control_pb2_grpc.WatchlistsStub(self.channel)  # type: ignore[return-value]

    @property
    def alerts(self) -> control_pb2_grpc.AlertsAsyncStub:
        return control_pb2_grpc.AlertsStub(self.channel)  # type: ignore[return-value]

    @property
    def audit(self) -> control_pb2_grpc.AuditAsyncStub:
        return control_pb2_grpc.AuditStub(self.channel)  # type: ignore[return-value]

    @property
    def ingest(self) -> ingest_pb2_grpc.CameraIngestAsyncStub:
        return ingest_pb2_grpc.CameraIngestStub(self.channel)  # type: ignore[return-value]

    def stranger(self) -> np.ndarray:
        return unit(self.rng.normal(size=DIM))

    async def build_watchlist(self) -> str:
        wl = await self.watchlists.CreateWatchlist(
            pb.CreateWatchlistRequest(name="test list", model_id=MODEL, dimension=DIM),
            metadata=self.md("sam"),
        )
        for i, person in enumerate(self.people):
            second = unit(person + 0.05 * self.rng.normal(size=DIM))
            subject = await self.watchlists.AddSubject(
                pb.AddSubjectRequest(
                    watchlist_id=wl.id,
                    reference=f"ref-{i}",
                    display_name=f"Person {i}",
                    category="wanted",
                    reason="warrant",
                    image_source="custody",
                    model_id=MODEL,
                    dimension=DIM,
                    embeddings_f32le=[person.astype("<f4").tobytes(), second.astype("<f4").tobytes()],
                ),
                metadata=self.md("sam"),
            )
            self.subject_ids.append(subject.id)
        await self.watchlists.SealWatchlist(pb.WatchlistRef(watchlist_id=wl.id), metadata=self.md("sam"))
        self.watchlist_id = wl.id
        return wl.id

    def window_request(self, **overrides: object) -> pb.CreateWindowRequest:
        now = datetime.now(UTC)
        fields: dict[str, object] = {
            "purpose": "find wanted people",
            "legal_basis": "common law",
            "location": "High St",
            "camera_ids": ["cam-1", "cam-2"],
            "watchlist_id": self.watchlist_id,
            "threshold": 0.8,
            "starts_at": stamp(now - timedelta(minutes=1)),
            "ends_at": stamp(now + timedelta(hours=1)),
            "assigned_users": ["olly"],
        }
        fields.update(overrides)
        return pb.CreateWindowRequest(**fields)  # type: ignore[arg-type]

    async def armed_window(self, **overrides: object) -> pb.Window:
        if not self.watchlist_id:
            await self.build_watchlist()
        window = await self.deployments.CreateWindow(
            self.window_request(**overrides), metadata=self.md("sam")
        )
        return await self.deployments.AuthoriseWindow(
            pb.WindowRef(window_id=window.id), metadata=self.md("sue")
        )

    async def stream(
        self, camera: str, batches: list[list[ingest_pb2.Observation]], packed: bool = False
    ) -> list[ingest_pb2.ObservationResults]:
        """`packed`: each message carries its embeddings in embeddings_f32le, as camera nodes do since
        issue 13, instead of one embedding_f32le per observation."""
        call = self.ingest.Stream(metadata=self.md(camera))
        answers = []
        for batch in batches:
            message = packed_batch(batch) if packed else ingest_pb2.ObservationBatch(observations=batch)
            message.answers_read = len(answers)
            await call.write(message)
            answers.append(await call.read())
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        return answers


async def rpc_error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    """The error a call ends with; fails the test if it succeeds."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded but should have failed")


async def first_answer(
    call: grpc.aio.StreamStreamCall, batch: list[ingest_pb2.Observation]
) -> ingest_pb2.ObservationResults:
    await call.write(ingest_pb2.ObservationBatch(observations=batch))
    answer: ingest_pb2.ObservationResults = await call.read()
    return answer


ACCOUNTS: dict[str, tuple[PrincipalKind, set[Role]]] = {
    "sam": (PrincipalKind.USER, {Role.SUPERVISOR, Role.ADMIN}),
    "sue": (PrincipalKind.USER, {Role.SUPERVISOR}),  # authorises what sam creates (separation of duties)
    "olly": (PrincipalKind.USER, {Role.OFFICER}),
    "otto": (PrincipalKind.USER, {Role.OFFICER}),  # not assigned to any window
    "aud": (PrincipalKind.USER, {Role.AUDITOR}),
    "cam-1": (PrincipalKind.CAMERA, set()),
    "cam-2": (PrincipalKind.CAMERA, set()),
    "cam-9": (PrincipalKind.CAMERA, set()),  # a known camera outside every window
}


def make_accounts(container: Container) -> dict[str, str]:
    tokens = {}
    for name, (kind, roles) in ACCOUNTS.items():
        container.principals.create(name, kind, roles, "test-setup")
        tokens[name] = container.principals.issue_token(name, "test-setup")
    return tokens


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each SQL store the matcher runs on: SQLite, and PostgreSQL where one is configured."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_store_url"
    url: str = request.getfixturevalue(fixture)
    return url


def matcher_config(store_url: str = "memory://", **overrides: object) -> LfrConfig:
    values: dict[str, object] = {
        "store.url": store_url,
        "metrics.enabled": False,
        "grpc.listen": "127.0.0.1:0",
        # These matchers are not about the equity gate (its own tests are); its default is refuse.
        "policy.equity_gate": "off",
    }
    values.update(overrides)
    return load_config(None, values)


@pytest.fixture
def config() -> LfrConfig:
    return matcher_config()


@contextlib.asynccontextmanager
async def running_world(config: LfrConfig, seed: int) -> AsyncIterator[World]:
    """A real matcher on 127.0.0.1:0 over `config`'s store, with its accounts and SUBJECTS random people."""
    container = build_container(config)
    tokens = make_accounts(container)
    rng = np.random.default_rng(seed)
    people = [unit(rng.normal(size=DIM)) for _ in range(SUBJECTS)]
    async with (
        running_matcher(container) as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        yield World(container, running.port, tokens, people, rng, channel, running)
    container.close()


async def serving_status(world: World) -> int:
    """The matcher's gRPC health, as a `HealthCheckResponse` status."""
    answer = await health_pb2_grpc.HealthStub(world.channel).Check(health_pb2.HealthCheckRequest())
    return int(answer.status)


@pytest.fixture
async def world(config: LfrConfig) -> AsyncIterator[World]:
    async with running_world(config, seed=11) as world:
        yield world
