"""The `lfr` command. Sub-commands live in their own modules and are registered here explicitly."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from lfr import __version__
from lfr.cli.extras import extra_for, install_hint

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="lfr: live facial recognition watchlist matcher."
)


def _register() -> None:
    # Each entry: (module, attribute holding a typer.Typer, command name). Explicit, no plugin scanning.
    # A command group whose extra is not installed is still listed, and says which extra it needs.
    import importlib

    for module, attribute, name in SUBCOMMANDS:
        try:
            sub = getattr(importlib.import_module(module), attribute)
        except ModuleNotFoundError as exc:
            extra = extra_for(exc)
            if extra is None:
                raise
            sub = _needs_extra(name, GROUP_EXTRA.get(name, extra))
        app.add_typer(sub, name=name)


def _needs_extra(name: str, extra: str) -> typer.Typer:
    """Stands in for a command group whose extra is missing: listed, and any use says what to install."""

    class NeedsExtra(TyperGroup):
        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            typer.echo(f"error: lfr {name}: {install_hint(extra)}", err=True)
            raise typer.Exit(3)

    stub = typer.Typer(
        cls=NeedsExtra, add_completion=False, help=f"(not installed here: needs the {extra} extra)"
    )

    @stub.callback()
    def unavailable() -> None:
        """(not installed)"""

    return stub


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lfr {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print lfr's version and exit"
    ),
) -> None:
    """lfr: live facial recognition watchlist matcher."""


def main() -> None:
    """The `lfr` console script: the app, with a missing optional extra reported in one line."""
    try:
        app()
    except ModuleNotFoundError as exc:
        extra = extra_for(exc)
        if extra is None:
            raise
        typer.echo(f"error: {install_hint(extra)} (missing module {exc.name})", err=True)
        sys.exit(3)


# The extra a whole command group is for (its modules may fail on another extra's module first).
GROUP_EXTRA = {
    "eval": "eval",
    "camera": "camera",
    "enrol": "camera",
    "model": "camera",
    "demo": "camera",
    "tablet": "tablet",
}

SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("lfr.cli.serve", "app", "serve"),
    ("lfr.cli.accounts", "app", "account"),
    ("lfr.cli.control", "window_app", "window"),
    ("lfr.cli.control", "watchlist_app", "watchlist"),
    ("lfr.cli.control", "alerts_app", "alerts"),
    ("lfr.cli.control", "audit_app", "audit"),
    ("lfr.cli.demo", "app", "demo"),
    ("lfr.cli.db", "app", "db"),
    ("lfr.cli.camera", "app", "camera"),
    ("lfr.cli.enrol", "app", "enrol"),
    ("lfr.cli.model", "app", "model"),
    ("lfr.cli.tablet", "app", "tablet"),
    ("lfr.cli.health", "app", "health"),
    ("evaluation.cli", "app", "eval"),
    ("lfr.cli.doctor", "app", "doctor"),
]

_register()
