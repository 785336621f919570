"""Running the tablet app under uvicorn: alone (`lfr tablet serve`) or beside the gRPC server."""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from lfr.config import TabletSettings
from lfr.domain.errors import InvalidInput


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InvalidInput(f"tablet listen address {listen!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server sharing a process and event loop with the gRPC server: it leaves signals to
    the process's owner, who stops it by setting `should_exit`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_server(app: FastAPI, settings: TabletSettings, embedded: bool = False) -> uvicorn.Server:
    """A uvicorn Server to `await server.serve()`; embedded, it installs no signal handlers."""
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise InvalidInput("tablet TLS needs both tls_cert_file and tls_key_file, or neither")
    host, port = split_listen(settings.listen)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
        # Behind a TLS-terminating proxy, X-Forwarded-Proto makes cookies Secure and X-Forwarded-For names
        # the client the sign-in throttle counts; believed only from the proxies configured, else anyone
        # could pick a fresh address per guess.
        proxy_headers=bool(settings.forwarded_allow_ips.strip()),
        forwarded_allow_ips=settings.forwarded_allow_ips.strip() or None,
        server_header=False,
        log_level="info",
        access_log=False,  # paths carry alert ids; the audit log records who looked at what
        timeout_graceful_shutdown=3,  # live feeds never end by themselves
    )
    return EmbeddedServer(config) if embedded else uvicorn.Server(config)
