"""`lfr account`: acts on the store directly, because the first account cannot log in to create itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated

import typer

from lfr.cli.common import ConfigOption, config_from, console, reported
from lfr.domain.principal import PrincipalKind, Role
from lfr.services.principals import PrincipalService

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Accounts of people and camera nodes.")


@contextlib.contextmanager
def _principals(config: ConfigOption) -> Iterator[PrincipalService]:
    """The account service over the configured store, closed when the command is done."""
    from lfr.bootstrap import command_services

    services = command_services(config_from(config))
    try:
        yield services.principals
    finally:
        services.store.close()


@app.command("add")
def add(
    name: str,
    role: Annotated[list[Role] | None, typer.Option("--role", help="repeat for several roles")] = None,
    camera: Annotated[bool, typer.Option("--camera", help="a camera node, not a person")] = False,
    config: ConfigOption = None,
) -> None:
    """Create an account for a person (with --role ...) or a camera node (--camera)."""
    with reported(), _principals(config) as service:
        kind = PrincipalKind.CAMERA if camera else PrincipalKind.USER
        created = service.create(name, kind, role or [], actor="cli")
    roles = ", ".join(sorted(r.value for r in created.roles))
    console.print(f"created {created.kind} account [bold]{created.name}[/] ({roles})")


@app.command("token")
def token(
    name: str,
    valid_days: Annotated[
        float | None, typer.Option("--valid-days", help="the token stops working after this; default never")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Issue a new bearer token for NAME (replacing any earlier one) and print it once."""
    with reported(), _principals(config) as service:
        valid_for = timedelta(days=valid_days) if valid_days is not None else None
        issued = service.issue_token(name, actor="cli", valid_for=valid_for)
    print(issued)


@app.command("list")
def list_accounts(config: ConfigOption = None) -> None:
    """List accounts and their roles."""
    with reported(), _principals(config) as service:
        for principal in service.list_principals():
            roles = ", ".join(sorted(r.value for r in principal.roles))
            state = "" if principal.active else "\tdisabled"
            console.print(f"{principal.name}\t{principal.kind}\t{roles}{state}")


@app.command("disable")
def disable(name: str, config: ConfigOption = None) -> None:
    """Stop NAME from doing anything: tokens, tablet sessions and open streams end within a second.
    The account is kept; `enable` restores it."""
    with reported(), _principals(config) as service:
        service.disable(name, actor="cli")
    console.print(f"disabled [bold]{name}[/]; its sessions and streams end within a second")


@app.command("enable")
def enable(name: str, config: ConfigOption = None) -> None:
    """Let a disabled account act again (with its existing token and password)."""
    with reported(), _principals(config) as service:
        service.enable(name, actor="cli")
    console.print(f"enabled [bold]{name}[/]")


@app.command("remove")
def remove(name: str, config: ConfigOption = None) -> None:
    """Delete NAME with its token and password; what it did stays in the audit trail."""
    with reported(), _principals(config) as service:
        service.remove(name, actor="cli")
    console.print(f"removed [bold]{name}[/]")


@app.command("roles")
def roles(
    name: str,
    role: Annotated[list[Role], typer.Option("--role", help="the complete new set; repeat for several")],
    config: ConfigOption = None,
) -> None:
    """Replace the roles of person NAME; their sessions and streams end, to restart under the new roles."""
    with reported(), _principals(config) as service:
        changed = service.set_roles(name, role, actor="cli")
    console.print(f"[bold]{name}[/] now has the roles {', '.join(sorted(r.value for r in changed.roles))}")


@app.command("expire-token")
def expire_token(name: str, config: ConfigOption = None) -> None:
    """Make NAME's bearer token stop working now (streams using it end); `token` issues a new one."""
    with reported(), _principals(config) as service:
        service.expire_token(name, actor="cli")
    console.print(f"the token of [bold]{name}[/] no longer works")
