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
    ("lfr.cli.tablet", "app", "tablet"),
    ("evaluation.cli", "app", "eval"),
    ("lfr.cli.doctor", "app", "doctor"),
]

_register()
