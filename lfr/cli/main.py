"""The `lfr` command. Sub-commands live in their own modules and are registered here explicitly."""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="lfr: live facial recognition watchlist matcher."
)


def _register() -> None:
    # Each entry: (module, attribute holding a typer.Typer, command name). Explicit, no plugin scanning.
    import importlib

    for module, attribute, name in SUBCOMMANDS:
        sub = getattr(importlib.import_module(module), attribute)
        app.add_typer(sub, name=name)


SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("evaluation.cli", "app", "eval"),
]

_register()
