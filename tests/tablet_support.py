"""A small deployment for tablet tests and the tablet benchmark: a sealed watchlist, an armed window,
real FAISS matching into the in-memory store, and the tablet app wired to it."""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import uvicorn
from fastapi import FastAPI

from lfr.adapters.passwords import Argon2Hasher
from lfr.adapters.storage import Store
from lfr.adapters.tablet.app import close_feeds, create_tablet_app
from lfr.adapters.tablet.context import TabletServices
from lfr.bootstrap import Container, build_container, listening, tablet_services
from lfr.config import TabletSettings, load_config
from lfr.domain.clock import Clock, SystemClock
from lfr.domain.observation import Observation, ObservationResult
from lfr.domain.principal import SYSTEM, Principal, PrincipalKind, Role
from lfr.domain.watchlist import Subject, TemplateImage
from lfr.domain.window import DeploymentWindow, WindowSpec
from lfr.services.alert_feed import AlertFeed
from lfr.services.deployment_overview import OpenStreams
from lfr.services.deployments import no_policy
from lfr.services.ingest import IngestService
from lfr.services.watchlists import SubjectSpec, WatchlistService
from tests.support import tiny_jpeg

DIM = 16
MODEL = "model-a"
PASSWORD = "correct horse battery"
SECRET = b"s" * 32
SUPERVISOR = Principal("sup", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


@dataclass
class TabletWorld:
    container: Container
    store: Store
    clock: Clock
    feed: AlertFeed
    services: TabletServices
    ingest: IngestService
    window: DeploymentWindow
    people: list[np.ndarray]
    subjects: list[Subject]
    settings: TabletSettings
    two_person_rule: bool
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(3))

    def app(self) -> FastAPI:
        return create_tablet_app(
            self.services, self.feed, self.clock, self.settings, SECRET, self.two_person_rule
        )

    def observe(
        self, person: int | None = 0, camera: str = "cam-1", track: str | None = None
    ) -> ObservationResult:
        """One face through the matcher: a listed person (by index) or a stranger (None). Each call is a
        new passage (its own track) unless `track` names one: a track raises one alert per subject."""
        vector = self.people[person] if person is not None else unit(self.rng.normal(size=DIM))
        observation = Observation(
            camera,
            self.clock.now(),
            track or f"t-{secrets.token_hex(4)}",
            MODEL,
            np.array(vector),
            bytearray(tiny_jpeg(b"probe")),
        )
        return self.ingest.process([observation])[0]

    def add_user(self, name: str, *roles: Role) -> Principal:
        principal = self.services.principals.create(name, PrincipalKind.USER, roles, "test")
        self.services.passwords.set_password(name, PASSWORD, "test")
        return principal


def build_world(
    clock: Clock,
    two_person_rule: bool = False,
    officers: frozenset[str] = frozenset({"olivia"}),
    open_streams: OpenStreams | None = None,
    store_url: str = "memory://",
    reference_images: int = 1,
    group_interval_seconds: float | None = None,
) -> TabletWorld:
    """Built by the composition root, as `lfr serve` builds it, over an in-memory store by default.
    Person 0 is enrolled with `reference_images` photos (the first is also its reference image); person
    1 with none."""
    overrides: dict[str, object] = {
        "store.url": store_url,
        "metrics.enabled": False,
        "policy.two_person_rule": two_person_rule,
        "matching.gate_max_staleness_seconds": 300,
    }
    if group_interval_seconds is not None:
        overrides["tablet.group_interval_seconds"] = group_interval_seconds
    config = load_config(None, overrides)
    container = build_container(config, clock=clock, policy=no_policy)
    store, rng = container.store, np.random.default_rng(11)
    watchlists = WatchlistService(store, clock)
    wl = watchlists.create("tablet", MODEL, DIM, SUPERVISOR)
    people = [unit(rng.normal(size=DIM)) for _ in range(2)]
    photos = [tiny_jpeg(b"reference", size=64)]
    photos += [tiny_jpeg(b"reference %d" % n, size=64) for n in range(1, reference_images)]
    subjects = [
        watchlists.add_subject(
            wl.id,
            SubjectSpec(
                f"REF-{i}",
                f"Person {i}",
                "Wanted on warrant",
                "Failed to appear at court",
                "custody image",
                photos[0] if i == 0 and reference_images else None,
                # One template per photo, as enrolment makes them (the mean of equal rows is the row).
                tuple(TemplateImage(f"photo {n}", jpeg) for n, jpeg in enumerate(photos))
                if i == 0 and reference_images > 1
                else (),
            ),
            np.repeat(p[None, :], reference_images if i == 0 and reference_images > 1 else 1, axis=0),
            MODEL,
            SUPERVISOR,
        )
        for i, p in enumerate(people)
    ]
    wl = watchlists.seal(wl.id, SUPERVISOR)
    services = tablet_services(container, Argon2Hasher.fast_for_tests(), open_streams)
    now = clock.now()
    window = services.deployments.create(
        WindowSpec(
            "find wanted people",
            "PACE s.1",
            "High Street north",
            frozenset({"cam-1", "cam-2"}),
            wl.id,
            0.8,
            now - timedelta(minutes=1),
            now + timedelta(hours=2),
            assigned_users=officers,
        ),
        SYSTEM,
    )
    services.deployments.authorise(window.id, SUPERVISOR)  # arms the gate through the change hook
    return TabletWorld(
        container,
        store,
        clock,
        container.feed,
        services,
        container.ingest,
        window,
        people,
        subjects,
        container.config.tablet,
        two_person_rule,
    )


def csrf_from(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert found, "page carries no CSRF token"
    return found.group(1)


class LiveServer:
    """The app under a real uvicorn on 127.0.0.1:0, in a thread (for SSE and the browser)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.server.config.timeout_graceful_shutdown = 1
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def __enter__(self) -> str:
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("tablet test server did not start")
            threading.Event().wait(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        close_feeds(self.app)
        self.server.should_exit = True
        self._thread.join(timeout=10)


@contextmanager
def replica_pair(url: str) -> Iterator[tuple[TabletWorld, Container, list[object | None]]]:
    """Two matcher replicas on one store: A, the tablet world (olivia an officer), and B. Each listens for
    the other's commits where the store can say (PostgreSQL: connected before this yields); None else."""
    with ExitStack() as stack:
        world = build_world(SystemClock(), store_url=url)
        stack.callback(world.container.close)
        world.add_user("olivia", Role.OFFICER)
        b = build_container(world.container.config, policy=no_policy)
        stack.callback(b.close)
        b.refresh_gate()
        listeners = [stack.enter_context(listening(c)) for c in (world.container, b)]
        for listener in listeners:
            if listener is not None:
                assert listener.wait_connected(5)  # type: ignore[attr-defined]
        yield world, b, listeners
