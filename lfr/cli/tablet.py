"""`lfr tablet`: run the officers' web app on its own (scale-out), and set people's passwords."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from lfr.cli.common import ConfigOption, config_from, console, fail, reported

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The officers' alert tablet web app.")


@app.command("serve")
def serve(
    config: ConfigOption = None,
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING, ERROR"),
) -> None:
    """Serve the tablet app alone, against the shared store; over PostgreSQL its live feeds hear every
    replica's commits at once (LISTEN/NOTIFY)."""
    from lfr.adapters.hardening import disable_core_dumps
    from lfr.adapters.tablet.serve import uvicorn_server
    from lfr.bootstrap import build_container, build_tablet_app, configure_logging, listening

    disable_core_dumps()
    configure_logging(log_level)
    settings = config_from(config)
    with reported():
        container = build_container(settings)
        try:
            server = uvicorn_server(build_tablet_app(container, serve_metrics=True), settings.tablet)
            with listening(container):
                asyncio.run(server.serve())
        except OSError as exc:
            fail(f"cannot start: {exc}", 2)
        finally:
            container.close()


@app.command("password")
def password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Set the tablet sign-in password of an existing person's account (see `lfr account add`)."""
    from lfr.bootstrap import command_services

    if password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with reported():
        services = command_services(config_from(config))
        try:
            services.passwords.set_password(name, secret, actor="cli")
        finally:
            services.close()
    console.print(f"password set for [bold]{name}[/]")
