"""What every lfr sub-command shares: config loading, the gRPC connection, and one-line errors."""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import grpc
import typer
from rich.console import Console

from lfr.adapters.grpc.channels import ChannelSecurity, open_channel
from lfr.config import LfrConfig, load_config
from lfr.domain.errors import LfrError

# Piped output (scripts, tests) must not be cut at 80 columns: ids are long.
console = Console(width=None if sys.stdout.isatty() else 240)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 240)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (default: built-in, sqlite under ./var/)"),
]
ServerOption = Annotated[str, typer.Option("--server", envvar="LFR_SERVER", help="matcher address host:port")]
TokenOption = Annotated[str, typer.Option("--token", envvar="LFR_TOKEN", help="bearer token (env LFR_TOKEN)")]
CaFileOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-file", envvar="LFR_CA_FILE", help="PEM CA that signed the matcher's certificate: use TLS"
    ),
]
ClientCertOption = Annotated[
    Path | None,
    typer.Option("--client-cert", envvar="LFR_CLIENT_CERT", help="PEM client certificate (mutual TLS)"),
]
ClientKeyOption = Annotated[
    Path | None,
    typer.Option("--client-key", envvar="LFR_CLIENT_KEY", help="PEM key of the client certificate"),
]

DEFAULT_SERVER = "127.0.0.1:50051"


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def config_from(path: Path | None) -> LfrConfig:
    try:
        return load_config(path)
    except LfrError as exc:
        fail(str(exc), 2)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turns gRPC and domain errors into one line on stderr and a non-zero exit code."""
    try:
        yield
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        name = code.name if code is not None else "ERROR"
        fail(f"{name}: {details}", 2 if code is grpc.StatusCode.INVALID_ARGUMENT else 1)
    except LfrError as exc:
        fail(f"{type(exc).__name__}: {exc}")


class Client:
    """A synchronous connection to the matcher with the caller's bearer token on every call."""

    def __init__(self, server: str, token: str, security: ChannelSecurity | None = None) -> None:
        if not token:
            fail("no token: pass --token or set LFR_TOKEN (issue one with `lfr account token NAME`)")
        self.channel = open_channel(server, security)
        self.metadata = (("authorization", f"Bearer {token}"),)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()


@contextlib.contextmanager
def client(
    server: str,
    token: str,
    ca_file: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> Iterator[Client]:
    """Plaintext unless a CA file or client certificate is given (then TLS, mutual with the certificate)."""
    security = ChannelSecurity(ca_file, client_cert, client_key)
    with reported(), Client(server, token, security) as connected:
        yield connected


_CONNECTION_OPTIONS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, default, annotation in (
        ("server", DEFAULT_SERVER, ServerOption),
        ("token", "", TokenOption),
        ("ca_file", None, CaFileOption),
        ("client_cert", None, ClientCertOption),
        ("client_key", None, ClientKeyOption),
    )
]


def connected(command: Callable[..., None]) -> Callable[..., None]:
    """Gives a command the connection options (--server, --token, the TLS files) and calls it with a
    connected Client as its first argument, so each command declares only its own options.

    Typer reads a command's options from its signature, so the wrapper's signature is the command's own
    (with annotations evaluated, minus the Client) followed by the connection options."""
    own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]

    @functools.wraps(command)
    def run(
        *args: Any,
        server: str,
        token: str,
        ca_file: Path | None,
        client_cert: Path | None,
        client_key: Path | None,
        **kwargs: Any,
    ) -> None:
        with client(server, token, ca_file, client_cert, client_key) as connection:
            command(connection, *args, **kwargs)

    parameters = own + _CONNECTION_OPTIONS
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run
