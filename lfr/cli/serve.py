"""`lfr serve`: run the matcher until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

import typer

from lfr.adapters import hardening
from lfr.bootstrap import Running, configure_logging, run_matcher, serving_tablet
from lfr.cli.common import ConfigOption, config_from, fail
from lfr.cli.extras import has_extra, install_hint
from lfr.domain.errors import LfrError

app = typer.Typer(add_completion=False)


@app.callback(invoke_without_command=True)
def serve(
    config: ConfigOption = None,
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING, ERROR"),
    log_format: str = typer.Option(
        "", "--log-format", help="text or json (one object per line); env LFR_LOG_FORMAT"
    ),
) -> None:
    """Run the matcher: gRPC for cameras and control clients, Prometheus metrics, background duties."""
    hardening.disable_core_dumps()
    try:
        configure_logging(log_level, fmt=log_format or None)
    except ValueError as exc:
        fail(str(exc), 2)
    settings = config_from(config)

    def ready(running: Running) -> None:
        # One parseable line, so supervisors and tests learn the bound ports.
        metrics = f" metrics :{running.metrics_port}" if running.metrics_port else ""
        tablet = running.container.tablet_port
        metrics += f" tablet :{tablet}" if tablet else ""
        typer.echo(f"lfr matcher ready: grpc port {running.port}{metrics}", err=False)

    tablet = settings.tablet.enabled
    if tablet and not has_extra("tablet"):
        # The matcher is the core install; the tablet is an extra on this host or another one.
        typer.echo(f"lfr serve: tablet web app not started: {install_hint('tablet')}", err=True)
        tablet = False
    try:
        extensions = [serving_tablet] if tablet else []
        asyncio.run(run_matcher(settings, extensions=extensions, on_ready=ready))
    except LfrError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot start: {exc}", 2)
