"""`lfr db`: bring the store's schema up to date, or show which revision it is at."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lfr.config import load_config
from lfr.domain.errors import LfrError

app = typer.Typer(no_args_is_help=True, help="Database schema migrations (SQLite or PostgreSQL stores).")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML config file; LFR_STORE_URL overrides store.url")
]


def _store_url(config: Path | None) -> str:
    url = load_config(config).store.url
    if url.startswith("memory://"):
        raise typer.BadParameter(
            "the store is memory://, which has no schema to migrate", param_hint="store.url"
        )
    return url


@app.command()
def upgrade(
    config: ConfigOption = None,
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Migrates the store to REVISION (the latest by default). Safe to run while replicas start."""
    from lfr.adapters.storage.sql.engine import create_store_engine
    from lfr.adapters.storage.sql.migrate import current_revisions
    from lfr.adapters.storage.sql.migrate import upgrade as run_upgrade

    try:
        engine = create_store_engine(_store_url(config))
        try:
            run_upgrade(engine, revision)
            typer.echo(f"at revision {', '.join(current_revisions(engine)) or 'none'}")
        finally:
            engine.dispose()
    except LfrError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def current(config: ConfigOption = None) -> None:
    """Prints the store's schema revision and the latest this lfr knows; exits 2 if they differ."""
    from lfr.adapters.storage.sql.engine import create_store_engine
    from lfr.adapters.storage.sql.migrate import current_revisions, head_revision

    try:
        engine = create_store_engine(_store_url(config))
        try:
            revisions = current_revisions(engine)
        finally:
            engine.dispose()
    except LfrError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    latest = head_revision()
    typer.echo(f"current: {', '.join(revisions) or 'none'}")
    typer.echo(f"latest:  {latest}")
    if revisions != (latest,):
        raise typer.Exit(2)


@app.command("keygen-images")
def keygen_images(
    key_file: Annotated[Path, typer.Argument(help="where to write the key (hex, mode 0600)")],
) -> None:
    """Create a key-encryption key for face images at rest (encryption.key_file); never overwrites."""
    from lfr.adapters.envelope import kek_id, write_kek

    try:
        key = write_kek(key_file)
    except LfrError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"image key {kek_id(key).hex()} written to {key_file}; keep it off the database's storage")
