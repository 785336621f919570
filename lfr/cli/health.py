"""`lfr health`: asks a matcher's gRPC health service whether it is serving; for container healthchecks
and Kubernetes exec probes (Kubernetes' own gRPC probe cannot speak TLS)."""

from __future__ import annotations

from typing import Annotated

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lfr.adapters.grpc.channels import ChannelSecurity, open_channel
from lfr.cli.common import DEFAULT_SERVER, CaFileOption, ClientCertOption, ClientKeyOption, ServerOption
from lfr.domain.errors import LfrError

app = typer.Typer(add_completion=False)


@app.callback(invoke_without_command=True)
def health(
    server: ServerOption = DEFAULT_SERVER,
    ca_file: CaFileOption = None,
    client_cert: ClientCertOption = None,
    client_key: ClientKeyOption = None,
    service: Annotated[str, typer.Option(help="a service name; empty: the server as a whole")] = "",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the answer")] = 3.0,
) -> None:
    """Exit 0 if the matcher's gRPC health says SERVING, 1 otherwise (no token needed)."""
    try:
        channel = open_channel(server, ChannelSecurity(ca_file, client_cert, client_key))
    except LfrError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    except grpc.RpcError as exc:
        code = exc.code().name if isinstance(exc, grpc.Call) else "ERROR"
        typer.echo(f"{server}: {code}", err=True)
        raise typer.Exit(1) from exc
    finally:
        channel.close()
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    typer.echo(f"{server}: {status}")
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        raise typer.Exit(1)
