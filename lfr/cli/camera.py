"""`lfr camera --config FILE`: run one camera node until its source ends or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from lfr.domain.errors import LfrError

app = typer.Typer(add_completion=False, invoke_without_command=True, help="Run a camera node.")


@app.callback()
def camera(
    config: Annotated[Path, typer.Option("--config", "-c", help="camera node YAML (see docs)")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from lfr.adapters.camera.config import load_camera_config
    from lfr.adapters.hardening import disable_core_dumps
    from lfr.bootstrap import build_camera_node

    disable_core_dumps()

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    try:
        node = build_camera_node(load_camera_config(config))
    except LfrError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, node.stop)
        summary = await node.run()
        typer.echo(
            f"frames {summary.frames} (dropped {summary.dropped_frames}), observations sent "
            f"{summary.sent}, unanswered at exit {summary.unanswered}"
        )

    asyncio.run(main())
