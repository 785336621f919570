"""`lfr account`: acts on the store directly, because the first account cannot log in to create itself."""

from __future__ import annotations

from typing import Annotated

import typer

from lfr.adapters.storage import Store
from lfr.cli.common import ConfigOption, config_from, console, reported
from lfr.domain.principal import PrincipalKind, Role
from lfr.services.principals import PrincipalService

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Accounts of people and camera nodes.")


def _principals(config: ConfigOption) -> tuple[PrincipalService, Store]:
    from lfr.bootstrap import command_services

    services = command_services(config_from(config))
    return services.principals, services.store


@app.command("add")
def add(
    name: str,
    role: Annotated[list[Role] | None, typer.Option("--role", help="repeat for several roles")] = None,
    camera: Annotated[bool, typer.Option("--camera", help="a camera node, not a person")] = False,
    config: ConfigOption = None,
) -> None:
    """Create an account for a person (with --role ...) or a camera node (--camera)."""
    with reported():
        service, store = _principals(config)
        try:
            kind = PrincipalKind.CAMERA if camera else PrincipalKind.USER
            created = service.create(name, kind, role or [], actor="cli")
        finally:
            store.close()
    roles = ", ".join(sorted(r.value for r in created.roles))
    console.print(f"created {created.kind} account [bold]{created.name}[/] ({roles})")


@app.command("token")
def token(name: str, config: ConfigOption = None) -> None:
    """Issue a new bearer token for NAME (replacing any earlier one) and print it once."""
    with reported():
        service, store = _principals(config)
        try:
            issued = service.issue_token(name, actor="cli")
        finally:
            store.close()
    print(issued)


@app.command("list")
def list_accounts(config: ConfigOption = None) -> None:
    """List accounts and their roles."""
    with reported():
        service, store = _principals(config)
        try:
            for principal in service.list_principals():
                roles = ", ".join(sorted(r.value for r in principal.roles))
                console.print(f"{principal.name}\t{principal.kind}\t{roles}")
        finally:
            store.close()
