"""`lfr demo`: the end-to-end demo on the embedded default (see lfr.demo); `--synthetic` for the older
one with synthetic embeddings and no camera."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from lfr.cli.common import console, fail
from lfr.domain.errors import LfrError

app = typer.Typer(add_completion=False)


@app.callback(invoke_without_command=True)
def demo(
    images: Annotated[
        Path | None, typer.Option("--images", help="your own faces: folder the CSV's image paths are in")
    ] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option("--csv", help="who to enrol (the `lfr enrol` CSV); other images in --images pass by"),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="keep the database, clip and log here (default: a temporary folder)"),
    ] = None,
    json_summary: Annotated[
        Path | None, typer.Option("--json-summary", help="write the outcome as JSON to this file")
    ] = None,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="keep matcher and tablet up afterwards (Ctrl-C stops)")
    ] = False,
    threshold: Annotated[
        float,
        typer.Option(
            min=0.3, max=1.0, help="the window's alert threshold (floor: policy.equity_min_threshold)"
        ),
    ] = 0.5,
    tablet_listen: Annotated[
        str, typer.Option("--tablet-listen", help="host:port for the tablet (port 0: any free port)")
    ] = "127.0.0.1:0",
    model_root: Annotated[
        str | None, typer.Option("--model-root", help="folder holding models/<pack>/ (env LFR_MODEL_ROOT)")
    ] = None,
    model_pack: Annotated[str | None, typer.Option("--model-pack", help="(env LFR_MODEL_PACK)")] = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="the older demo: synthetic embeddings, no camera or models")
    ] = False,
    subjects: Annotated[int, typer.Option(help="--synthetic: people on the watchlist")] = 200,
    passers_by: Annotated[int, typer.Option(help="--synthetic: non-matching faces per phase")] = 300,
) -> None:
    """Run the end-to-end demo: enrol, arm a window, watch a clip with a real camera node, alert, forget,
    verify."""
    if (images is None) != (csv_file is None):
        fail("--images and --csv go together", 2)
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        fail(f"--workdir {workdir} is not empty: give a new or empty folder", 2)
    folder = workdir or Path(tempfile.mkdtemp(prefix="lfr-demo-"))
    try:
        if synthetic:
            from lfr.demo.synthetic import run_synthetic_demo

            asyncio.run(run_synthetic_demo(folder, subjects, passers_by, console))
            return
        ok = _real_demo(
            folder,
            images,
            csv_file,
            json_summary,
            keep_running,
            threshold,
            tablet_listen,
            model_root,
            model_pack,
        )
    finally:
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    if not ok:
        raise typer.Exit(1)


def _real_demo(
    folder: Path,
    images: Path | None,
    csv_file: Path | None,
    json_summary: Path | None,
    keep_running: bool,
    threshold: float,
    tablet_listen: str,
    model_root: str | None,
    model_pack: str | None,
) -> bool:
    from lfr.adapters.embedder import ModelSettings
    from lfr.demo.run import DemoOptions, demo_logging, run_demo

    options = DemoOptions(
        workdir=folder,
        images=images,
        csv=csv_file,
        threshold=threshold,
        tablet_listen=tablet_listen,
        keep_running=keep_running,
        models=ModelSettings(root=model_root, pack=model_pack, intra_op_threads=1),
    )
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with demo_logging(folder / "lfr.log"):
            summary = asyncio.run(run_demo(options, console))
    except (LfrError, OSError) as exc:
        fail(str(exc), 2)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    if json_summary is not None:
        json_summary.write_text(json.dumps(summary.as_json(), indent=2))
    return summary.ok
