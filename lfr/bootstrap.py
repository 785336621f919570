"""The one composition root: turns an LfrConfig into wired services, and runs the matcher process.

Entry points (CLI, demo, benchmarks, tests) call `build_container` and `running_matcher` / `run_matcher`;
nothing else constructs adapters. Other processes' pieces (the tablet web app) plug in as extensions:
async context managers given the container, entered after the gRPC server starts, left before it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from lfr.adapters.envelope import image_sealer
from lfr.adapters.faiss_index import check_index_spec, faiss_index_factory
from lfr.adapters.grpc.streams import CameraStreams
from lfr.adapters.jpeg import JpegCropValidator
from lfr.adapters.memory import give_back_freed_memory
from lfr.adapters.metrics import PrometheusIngestMetrics, certificate_expiry, serve_metrics
from lfr.adapters.signing import audit_signing
from lfr.adapters.storage import Store, open_store, store_clock
from lfr.config import LfrConfig, matching_index_type
from lfr.domain.clock import Clock, SystemClock
from lfr.domain.errors import LfrError
from lfr.domain.window import WindowState
from lfr.services.access import AccessMonitor
from lfr.services.alert_feed import AlertFeed
from lfr.services.alert_views import AlertViewService
from lfr.services.alerts import AlertService
from lfr.services.arming import ArmingMonitor
from lfr.services.audit import AuditService
from lfr.services.deployments import AuthorisationPolicy, DeploymentService
from lfr.services.durability import AlertDurability
from lfr.services.equity import EvaluationService, equity_policy
from lfr.services.indexes import IndexCache
from lfr.services.ingest import IngestService
from lfr.services.principals import PrincipalService
from lfr.services.retention import RetentionService
from lfr.services.timekeeping import StoreClock
from lfr.services.track_evidence import TrackEvidence, TrackEvidencePolicy
from lfr.services.upkeep import MatcherUpkeep
from lfr.services.watchlists import WatchlistService

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lfr.adapters.camera.config import CameraNodeConfig
    from lfr.adapters.camera.node import CameraNode
    from lfr.adapters.embedder import InsightFaceEmbedder
    from lfr.adapters.grpc.server import MatcherServer
    from lfr.adapters.tablet.context import TabletServices
    from lfr.adapters.tablet.operations import TabletMetrics
    from lfr.services.deployment_overview import OpenStreams
    from lfr.services.passwords import PasswordHasher, PasswordService
    from lfr.v1 import ingest_pb2

logger = logging.getLogger(__name__)


# Libraries whose debug output could carry request content: SQLAlchemy logs statement parameters (an
# alert's crop) at INFO, and grpc's internals may dump message bytes. They stay at WARNING whatever the
# level asked for, so that no face data ever reaches a log.
QUIET_LOGGERS = ("sqlalchemy", "grpc", "asyncio", "PIL")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line (time in UTC, level, logger, message, exception if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO", filename: str | None = None, fmt: str | None = None) -> None:
    """Process-wide logging for entry points; lfr's own loggers never log biometric data. `fmt` is
    text or json (default: LFR_LOG_FORMAT, else text)."""
    fmt = (fmt or os.environ.get("LFR_LOG_FORMAT") or "text").lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: use text or json")
    logging.basicConfig(
        level=level.upper(),
        filename=filename,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if fmt == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


@dataclass
class Container:
    """Everything the matcher process is made of; one per process."""

    config: LfrConfig
    store: Store
    clock: Clock
    registry: CollectorRegistry
    metrics: PrometheusIngestMetrics
    principals: PrincipalService
    watchlists: WatchlistService
    deployments: DeploymentService
    alerts: AlertService
    audit: AuditService
    retention: RetentionService
    monitor: ArmingMonitor
    indexes: IndexCache
    ingest: IngestService
    feed: AlertFeed  # every alert change, to every channel's subscribers
    upkeep: MatcherUpkeep
    streams: CameraStreams  # which cameras stream to this process now; the ingest servicer keeps it
    access: AccessMonitor  # which accounts and tokens still work; long-lived streams and feeds ask it
    evaluations: EvaluationService  # the equity gate's evidence
    tablet_port: int | None = None  # set once the embedded tablet app listens
    armed_ids: frozenset[str] = frozenset()  # as of the last gate refresh: a change is checkpointed
    tablet_metrics: TabletMetrics | None = None  # registered once per registry, however many tablet apps

    def refresh_gate(self) -> None:
        armed = self.upkeep.refresh_gate()
        if armed != self.armed_ids:
            self.armed_ids = armed
            # Armed or disarmed (a window's start or end, a close): sign the trail now, not within a minute.
            self._checkpoint_logged("arming changed")

    def forget_watchlist(self, watchlist_id: str) -> None:
        self.upkeep.forget_watchlist(watchlist_id)

    def flush_counters(self) -> None:
        self.upkeep.flush_counters()

    def checkpoint_audit(self) -> None:
        """Signs the audit chain head and anchors it outside the database (if it moved)."""
        self.audit.checkpoint()

    def purge(self) -> None:
        self.upkeep.purge()

    def windows_changed(self) -> None:
        """A window was authorised or closed here or on another replica: re-arm or disarm now, and tell
        the followers of the feed."""
        self.refresh_gate()
        self._checkpoint_logged("a window change")
        self.feed.windows_changed()

    def _checkpoint_logged(self, after: str) -> None:
        try:
            self.checkpoint_audit()
        except (LfrError, OSError) as exc:
            logger.error("audit checkpoint after %s failed (%s)", after, type(exc).__name__)

    def ready_to_ingest(self) -> bool:
        """What gRPC health reports: the windows were read recently and alerts can be made durable."""
        return self.monitor.is_current() and not self.ingest.durability.suspended

    def resume_if_store_writes(self) -> None:
        self.ingest.durability.try_resume()

    def close(self) -> None:
        self.ingest.track_evidence.clear()
        self.feed.close()
        self.store.close()

    def run_duty(self, duty: str, action: Callable[[], None]) -> None:
        """Runs a background duty; a failure is logged and counted (lfr_duty_failures_total), not raised."""
        try:
            action()
        except Exception as exc:
            self.metrics.duty_failed(duty)
            logger.error("%s failed (%s)", duty.replace("_", " "), type(exc).__name__)

    def verify_audit(self) -> None:
        verdict = self.audit.verify_unattended()
        self.metrics.audit_verified(verdict.ok, verdict.records_checked, self.clock.now())
        if not verdict.ok:
            logger.error("audit chain broken at record %s: %s", verdict.first_bad_seq, verdict.reason)

    def check_certificates(self) -> None:
        """Exports when each configured certificate expires (re-read, so a rotated file shows)."""
        config = self.config
        for name, path in (
            ("grpc", config.grpc.tls_cert_file),
            ("grpc_client_ca", config.grpc.client_ca_file),
            ("tablet", config.tablet.tls_cert_file if config.tablet.enabled else None),
        ):
            if path is not None:
                self.metrics.certificate_expires(name, certificate_expiry(path))

    def health(self) -> None:
        """Raises unless the store answers a read (the tablet's /healthz)."""
        with self.store() as uow:
            uow.windows.find([WindowState.AUTHORISED])


# How often a feed re-reads the store in case a change was never announced. Over SQLite another process
# (`lfr tablet serve`, a CLI command) may write without telling this one; PostgreSQL announces every
# commit to every replica, so there it is only a safety net.
FEED_RECHECK_SECONDS = {"sqlite": 1.0, "postgresql": 30.0}


def build_container(
    config: LfrConfig,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    policy: AuthorisationPolicy | None = None,
) -> Container:
    """`policy` overrides the authorisation policy; by default it is the configured equity gate. `clock` is
    this replica's own clock; every service is given the store's time derived from it (timekeeping.py)."""
    store = open_store(
        config.store.url, config.store.timeouts(), image_sealer(config.encryption, config.store.url)
    )
    store.seal_plaintext_images()  # rows stored before encryption was configured
    matching = config.matching
    timekeeper = StoreClock(
        clock or SystemClock(), store_clock(store), timedelta(seconds=matching.max_clock_skew_seconds)
    )
    clock = timekeeper
    registry = registry or CollectorRegistry()
    metrics = PrometheusIngestMetrics(registry)
    monitor = ArmingMonitor(
        store,
        clock,
        metrics,
        max_staleness=timedelta(seconds=matching.gate_max_staleness_seconds),
        timekeeper=timekeeper,
        replica=matching.replica_name or f"{socket.gethostname()}:{os.getpid()}",
    )
    backend = config.store.url.split(":", 1)[0].split("+", 1)[0]
    feed = AlertFeed(store, clock, recheck_seconds=FEED_RECHECK_SECONDS.get(backend, 30.0))
    holder: list[Container] = []  # the deployment service's change hook needs the finished container
    signing = audit_signing(config.audit, config.store.url)
    evidence_rules = config.policy.evidence_rules()
    index_type = matching_index_type(config)
    deployments = DeploymentService(
        store,
        clock,
        on_change=lambda: holder[0].windows_changed() if holder else None,
        policy=policy
        if policy is not None
        else equity_policy(config.policy.equity_gate, evidence_rules, lambda window: index_type),
        separation_of_duties=config.policy.separation_of_duties,
    )
    index_spec = matching.index_spec()
    check_index_spec(index_spec)  # a typo in matching.index fails the start, not the first window
    indexes = IndexCache(store, faiss_index_factory(index_spec))
    ingest = IngestService(
        store,
        clock,
        monitor.gate,
        indexes,
        feed,
        JpegCropValidator(max_bytes=matching.max_crop_bytes),
        metrics,
        top_k=matching.top_k,
        durability=AlertDurability(store, clock, metrics),
        captured_at_max_age=timedelta(seconds=matching.captured_at_max_age_s),
        captured_at_max_ahead=timedelta(seconds=matching.captured_at_max_ahead_s),
        track_evidence=TrackEvidence(
            TrackEvidencePolicy(
                enabled=matching.track_fusion,
                support_margin=matching.track_support_margin,
                max_age_s=matching.track_memory_seconds,
            )
        ),
    )
    retention = RetentionService(store, clock, config.retention.policy())
    container = Container(
        config=config,
        store=store,
        clock=clock,
        registry=registry,
        metrics=metrics,
        principals=PrincipalService(store, clock),
        watchlists=WatchlistService(store, clock),
        deployments=deployments,
        alerts=AlertService(store, clock, config.policy.two_person_rule, metrics, publisher=feed),
        audit=AuditService(store, signing.signer, signing.keyring, signing.anchor, clock),
        retention=retention,
        monitor=monitor,
        indexes=indexes,
        ingest=ingest,
        feed=feed,
        upkeep=MatcherUpkeep(
            monitor, indexes, clock, retention, ingest, give_back_freed_memory, after_deletion=store.scrub
        ),
        streams=CameraStreams(clock, on_count=metrics.streams_open),
        access=AccessMonitor(store, clock),
        evaluations=EvaluationService(store, clock, evidence_rules, lambda window: index_type),
    )
    holder.append(container)
    return container


def tablet_services(
    container: Container, hasher: PasswordHasher | None = None, open_streams: OpenStreams | None = None
) -> TabletServices:
    """What the tablet's routes use: the container's own services (one DeploymentService, with the
    equity policy and the gate hook), plus the tablet's password and sign-in services."""
    from lfr.adapters.passwords import Argon2Hasher
    from lfr.adapters.tablet.context import TabletServices
    from lfr.services.deployment_overview import DeploymentOverviewService
    from lfr.services.passwords import PasswordService
    from lfr.services.sign_in_throttle import SignInThrottle

    store, clock = container.store, container.clock
    return TabletServices(
        alerts=container.alerts,
        views=AlertViewService(store, timedelta(seconds=container.config.tablet.group_interval_seconds)),
        deployments=container.deployments,
        overview=DeploymentOverviewService(store, clock, open_streams or container.streams.snapshot),
        principals=container.principals,
        passwords=PasswordService(store, clock, hasher or Argon2Hasher()),
        audit=container.audit,
        sign_in_throttle=SignInThrottle(store, clock, container.config.tablet.throttle_policy()),
        evaluations=container.evaluations,
    )


@dataclass
class CommandServices:
    """What one-shot CLI commands use (accounts, passwords): the store and the services over it."""

    store: Store
    principals: PrincipalService
    clock: Clock

    @functools.cached_property
    def passwords(self) -> PasswordService:
        # Built on first use: argon2 comes with the tablet extra, and account commands on a core install
        # (a matcher host) must not need it.
        from lfr.adapters.passwords import Argon2Hasher
        from lfr.services.passwords import PasswordService

        return PasswordService(self.store, self.clock, Argon2Hasher())

    def close(self) -> None:
        self.store.close()


def command_services(config: LfrConfig) -> CommandServices:
    """Opens the configured store for a CLI command; the caller closes it."""
    store = open_store(config.store.url)
    clock = SystemClock()
    return CommandServices(store, PrincipalService(store, clock), clock)


@contextlib.contextmanager
def listening(container: Container) -> Iterator[object]:
    """Over PostgreSQL, hears what other replicas commit (alert changes, window changes) at once; over
    SQLite or memory there is nothing to listen to (the feed's re-check covers other local processes)."""
    from lfr.adapters.storage.sql.engine import parse_store_url

    url = container.config.store.url
    if url.startswith("memory:") or parse_store_url(url).get_backend_name() != "postgresql":
        yield None  # (and psycopg, the postgres extra's, is not imported on a core install)
        return
    from lfr.adapters.storage.sql.notifications import PostgresListener

    refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-refresh")

    def window_changed(window_id: str) -> None:
        refresher.submit(_logged, "gate refresh", container.refresh_gate)
        container.feed.windows_changed()

    def reconnected() -> None:
        container.feed.resync()
        refresher.submit(_logged, "gate refresh", container.refresh_gate)

    listener = PostgresListener(url, container.feed.notify, window_changed, reconnected)
    listener.start()
    try:
        yield listener
    finally:
        listener.close()
        refresher.shutdown(wait=True)


def _logged(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:
        logger.error("%s failed (%s)", what, type(exc).__name__)


Extension = Callable[[Container], AbstractAsyncContextManager[object]]
CERTIFICATE_CHECK_SECONDS = 300.0


@dataclass
class Running:
    container: Container
    server: MatcherServer
    port: int
    metrics_port: int | None


async def _every(seconds: float, what: str, action: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(action)
        except Exception as exc:
            logger.error("%s failed (%s); retrying in %.1f s", what, type(exc).__name__, seconds)


def _duty(container: Container, duty: str, action: Callable[[], None]) -> Callable[[], None]:
    return lambda: container.run_duty(duty, action)


async def _watch_health(server: MatcherServer, container: Container, seconds: float = 0.25) -> None:
    """Keeps gRPC health in step with what ingest can do: NOT_SERVING while the windows cannot be read
    or alerts cannot be stored, so load balancers and operators see the outage."""
    while True:
        try:
            await server.set_serving(container.ready_to_ingest())
        except Exception as exc:  # never let the watch end: health would then freeze as it was
            logger.error("health update failed (%s)", type(exc).__name__)
        await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def running_matcher(
    container: Container, *, listen: str | None = None, extensions: Sequence[Extension] = ()
) -> AsyncIterator[Running]:
    """Serves gRPC (and metrics, if enabled) with the background duties running; on exit stops serving
    within the grace period and flushes the counters."""
    from lfr.adapters.grpc.server import create_server

    config = container.config
    server, port = create_server(container, listen or config.grpc.listen)
    metrics_server, metrics_port = None, None
    if config.metrics.enabled:
        metrics_server, metrics_port = serve_metrics(
            container.registry, config.metrics.listen, config.metrics.token()
        )
    # The port opens at once, health NOT_SERVING while the armed windows' indexes are built.
    await server.start(serving=False)
    try:
        await asyncio.to_thread(container.refresh_gate)
    except BaseException:
        await server.stop(0)  # it could not start: close the port it opened rather than leave it dangling
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        raise
    try:
        await asyncio.to_thread(container.access.refresh)
    except LfrError as exc:
        logger.error("accounts could not be read at start (%s)", type(exc).__name__)
    await server.started()
    container.feed.start()
    notifications = listening(container)
    notifications.__enter__()
    timed = [
        (config.matching.gate_refresh_seconds, "gate_refresh", container.refresh_gate),
        (config.matching.counter_flush_seconds, "counter_flush", container.flush_counters),
        (config.retention.purge_interval_seconds, "retention_purge", container.purge),
        (config.grpc.access_poll_seconds, "access_refresh", container.access.refresh),
        (config.matching.gate_refresh_seconds, "store_recovery", container.resume_if_store_writes),
        (CERTIFICATE_CHECK_SECONDS, "certificate_check", container.check_certificates),
        (config.audit.checkpoint_seconds, "audit_checkpoint", container.checkpoint_audit),
    ]
    if config.metrics.audit_verify_minutes > 0:
        timed.append((config.metrics.audit_verify_minutes * 60, "audit_verify", container.verify_audit))
    await asyncio.to_thread(container.run_duty, "certificate_check", container.check_certificates)
    duties = [
        asyncio.create_task(_every(seconds, duty, _duty(container, duty, action)))
        for seconds, duty, action in timed
    ]
    duties.append(asyncio.create_task(_watch_health(server, container)))
    if config.metrics.audit_verify_minutes > 0:  # once at start too, without holding the start up
        duties.append(
            asyncio.create_task(asyncio.to_thread(_duty(container, "audit_verify", container.verify_audit)))
        )
    try:
        async with AsyncExitStack() as stack:
            for extension in extensions:
                await stack.enter_async_context(extension(container))
            yield Running(container, server, port, metrics_port)
    finally:
        await server.stop(config.grpc.grace_seconds)
        for duty in duties:
            duty.cancel()
        await asyncio.gather(*duties, return_exceptions=True)
        try:
            await asyncio.to_thread(container.flush_counters)
        except LfrError as exc:
            logger.error("counters could not be flushed at shutdown (%s)", type(exc).__name__)
        try:
            await asyncio.to_thread(container.checkpoint_audit)
        except (LfrError, OSError) as exc:
            logger.error("the audit chain could not be checkpointed at shutdown (%s)", type(exc).__name__)
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        await asyncio.to_thread(notifications.__exit__, None, None, None)


def build_tablet_app(
    container: Container, hasher: PasswordHasher | None = None, serve_metrics: bool = False
) -> FastAPI:
    """The officers' tablet web app over the container's services and alert feed, with /healthz;
    `serve_metrics` adds /metrics (`lfr tablet serve`: no matcher metrics port beside it)."""
    from lfr.adapters.tablet.app import create_tablet_app, read_session_secret
    from lfr.adapters.tablet.operations import TabletMetrics, install_operations

    config = container.config
    app = create_tablet_app(
        tablet_services(container, hasher),
        container.feed,
        container.clock,
        config.tablet,
        read_session_secret(config.tablet),
        config.policy.two_person_rule,
    )
    if container.tablet_metrics is None:
        container.tablet_metrics = TabletMetrics(container.registry)
    install_operations(app, container.health, container.tablet_metrics, serve_metrics)
    return app


@contextlib.asynccontextmanager
async def serving_tablet(container: Container) -> AsyncIterator[object]:
    """Extension for `running_matcher`: the tablet app under uvicorn in the matcher's own event loop,
    so new alerts reach the live feeds without a database round trip."""
    from lfr.adapters.tablet.app import close_feeds
    from lfr.adapters.tablet.serve import uvicorn_server

    app = build_tablet_app(container)
    server = uvicorn_server(app, container.config.tablet, embedded=True)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start (port in use, bad certificate, ...)
            raise LfrError("the tablet web app stopped while starting")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    container.tablet_port = port
    logger.info("tablet web app listening on port %d", port)
    try:
        yield server
    finally:
        close_feeds(app)  # open live feeds would otherwise hold the shutdown to its grace period
        server.should_exit = True
        await task


async def run_matcher(
    config: LfrConfig,
    *,
    extensions: Sequence[Extension] = (),
    on_ready: Callable[[Running], None] | None = None,
) -> None:
    """The `lfr serve` process: runs until SIGTERM or SIGINT, then shuts down gracefully."""
    container = build_container(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running_matcher(container, extensions=extensions) as running:
            if on_ready is not None:
                on_ready(running)
            await stop.wait()
            logger.info("shutting down")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        container.close()


def build_camera_node(
    config: CameraNodeConfig,
    registry: CollectorRegistry | None = None,
    embedder: InsightFaceEmbedder | None = None,
    serve: bool = True,
    on_sent: Callable[[ingest_pb2.Observation], None] | None = None,
    on_result: Callable[[ingest_pb2.ObservationResult], None] | None = None,
) -> CameraNode:
    """A ready camera node (another process than the matcher); `embedder` may be shared (tests load the
    models once), `serve` starts its /metrics endpoint, `on_sent` / `on_result` see each observation
    as sent and each answer (the demo tallies outcomes and checks what was deleted). Camera adapters
    are imported here so the matcher process never loads OpenCV or onnxruntime."""
    from lfr.adapters.camera.capture import Capture, LatestFrameSlot, open_source
    from lfr.adapters.camera.client import MatcherClient
    from lfr.adapters.camera.metrics import CameraMetrics, export_certificate_expiry
    from lfr.adapters.camera.metrics import serve_metrics as serve_camera_metrics
    from lfr.adapters.camera.node import CameraNode, FacePipeline
    from lfr.adapters.embedder import InsightFaceEmbedder

    token = config.matcher.token()  # fail on a missing secret or certificate before the slow model load
    security = config.matcher.security()
    security.credentials()
    registry = registry or CollectorRegistry()
    metrics = CameraMetrics(registry, config.camera_id)
    export_certificate_expiry(metrics, security)
    source = open_source(config.source.uri, config.source.fps)
    embedder = embedder or InsightFaceEmbedder(config.models)
    slot = LatestFrameSlot(on_drop=metrics.frames_dropped.inc)
    pace = (config.source.fps or source.fps) if config.source.realtime else None
    capture = Capture(source, slot, pace, on_frame=metrics.frames_captured.inc)
    pipeline = FacePipeline(
        embedder,
        config.gate.policy(),
        config.tracker.policy(),
        config.crops.policy(),
        metrics,
        config.max_faces,
    )
    client = MatcherClient(
        config.matcher.address,
        token,
        config.camera_id,
        embedder.model_id,
        embedder.dimension,
        metrics,
        config.stream.policy(),
        security,
        on_result=on_result,
        on_sent=on_sent,
    )
    if serve and config.metrics.enabled:
        serve_camera_metrics(registry, config.metrics.listen)
    return CameraNode(capture, slot, pipeline, client, metrics, config.stream.drain_timeout_s)
