"""Builds the matcher's gRPC server from the container: servicers, interceptor, health, reflection."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lfr.adapters.grpc.channels import is_loopback
from lfr.adapters.grpc.control import (
    AlertsServicer,
    AuditServicer,
    DeploymentsServicer,
    EvaluationsServicer,
    WatchlistsServicer,
)
from lfr.adapters.grpc.ingest import CameraIngestServicer, MicroBatcher
from lfr.adapters.grpc.interceptors import AuthAndErrorsInterceptor, TokenCache, proxy_list
from lfr.adapters.grpc.resends import RecentResults
from lfr.adapters.grpc.tls import server_credentials
from lfr.services.backoff import Backoff
from lfr.v1 import control_pb2, control_pb2_grpc, ingest_pb2, ingest_pb2_grpc

if TYPE_CHECKING:
    from lfr.bootstrap import Container

logger = logging.getLogger(__name__)

SERVICE_NAMES = (
    ingest_pb2.DESCRIPTOR.services_by_name["CameraIngest"].full_name,
    *(s.full_name for s in control_pb2.DESCRIPTOR.services_by_name.values()),
)


class MatcherServer:
    """The aio server plus what must start and stop with it (the micro-batcher, health statuses)."""

    def __init__(self, server: aio.Server, batcher: MicroBatcher, health: health.aio.HealthServicer) -> None:
        self.grpc = server
        self._batcher = batcher
        self._health = health
        self._serving = True

    async def start(self, serving: bool = True) -> None:
        """`serving=False`: the port opens with health NOT_SERVING (indexes still building)."""
        self._batcher.start()
        await self.grpc.start()
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, status)

    async def started(self) -> None:
        """The start-up build is done: SERVING, without the warning a later change of health gets."""
        self._serving = True
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def set_serving(self, serving: bool) -> None:
        """Sets every service's health status, logging changes only."""
        if serving == self._serving:
            return
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        logger.warning("gRPC health: %s", "SERVING" if serving else "NOT_SERVING")
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, status)

    async def stop(self, grace: float | None) -> None:
        """NOT_SERVING first so load balancers drain, then let in-flight calls finish within `grace`."""
        await self._health.enter_graceful_shutdown()
        await self.grpc.stop(grace)
        await self._batcher.stop()

    async def wait_for_termination(self) -> None:
        await self.grpc.wait_for_termination()


def create_server(container: Container, address: str) -> tuple[MatcherServer, int]:
    """Binds `address` (use 127.0.0.1:0 for a free port) and returns the server and its port; TLS when
    `grpc.tls_cert_file` is set (raises InvalidInput for unusable certificate files)."""
    settings = container.config
    credentials = server_credentials(settings.grpc)  # before anything starts, so a bad file stops it
    limit = settings.grpc.max_message_bytes
    server = aio.server(
        interceptors=[
            AuthAndErrorsInterceptor(
                TokenCache(container.principals.authenticate_token),
                container.access,
                Backoff(container.clock, settings.grpc.token_backoff()),
                proxy_list(settings.grpc.forwarded_allow_ips),
            )
        ],
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ],
    )
    batcher = MicroBatcher(
        container.ingest.process,
        batch_max=settings.matching.batch_max,
        wait_seconds=settings.matching.batch_wait_ms / 1000,
    )
    recent = RecentResults(settings.grpc.resend_memory_entries, settings.grpc.resend_memory_seconds)
    ingest_pb2_grpc.add_CameraIngestServicer_to_server(
        CameraIngestServicer(
            container.ingest,
            batcher,
            max_in_flight=settings.grpc.stream_max_in_flight,
            recent=recent,
            streams=container.streams,
            max_unread_answers=settings.grpc.stream_max_unread_answers,
            max_streams_per_camera=settings.grpc.max_streams_per_camera,
        ),
        server,
    )
    gate = container.config.policy.equity_gate.value
    control_pb2_grpc.add_DeploymentsServicer_to_server(
        DeploymentsServicer(container.deployments, container.clock, container.evaluations, gate), server
    )
    control_pb2_grpc.add_EvaluationsServicer_to_server(
        EvaluationsServicer(container.evaluations, gate), server
    )
    control_pb2_grpc.add_WatchlistsServicer_to_server(
        WatchlistsServicer(container.watchlists, container.forget_watchlist), server
    )
    control_pb2_grpc.add_AlertsServicer_to_server(
        AlertsServicer(container.alerts, container.deployments, container.feed),
        server,
    )
    control_pb2_grpc.add_AuditServicer_to_server(AuditServicer(container.audit), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.grpc.reflection:
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    mode = "plaintext" if credentials is None else "TLS"
    if settings.grpc.client_ca_file is not None:
        mode = "mutual TLS"
    logger.info("gRPC listening on %s (port %d, %s)", address, port, mode)
    if credentials is None and not is_loopback(address):
        logger.warning(
            "gRPC on %s WITHOUT TLS: camera and user bearer tokens cross the network in clear; "
            "set grpc.tls_cert_file and grpc.tls_key_file",
            address,
        )
    return MatcherServer(server, batcher, health_servicer), port
