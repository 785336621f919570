"""`lfr model prepare`: a pack's recogniser rewritten for this CPU (fp32 or static int8), as a new pack."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from lfr.cli.common import console, fail
from lfr.domain.errors import LfrError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Model packs.")


@app.command("prepare")
def prepare(
    calibration: Annotated[
        Path,
        typer.Option(
            "--calibration",
            help="folder of face images (searched recursively) the camera would see: calibration and the "
            "agreement check",
        ),
    ],
    out_root: Annotated[
        Path, typer.Option("--out-root", help="folder to write models/<name>/ into (e.g. var/models)")
    ],
    pack: Annotated[str | None, typer.Option("--pack", help="source pack (env LFR_MODEL_PACK)")] = None,
    model_root: Annotated[
        str | None, typer.Option("--model-root", help="folder holding models/<pack>/ (env LFR_MODEL_ROOT)")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="new pack name (default: <pack>-<format>)")
    ] = None,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            help="auto: build fp32 and qdq, time both here, keep the faster that agrees with the original",
        ),
    ] = "auto",
    calibration_limit: Annotated[int, typer.Option(min=1, help="at most this many calibration images")] = 300,
    timing_runs: Annotated[int, typer.Option(min=1, help="one-face inferences timed per model")] = 200,
    min_cosine: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="median cosine to the original on held-out faces")
    ] = 0.98,
) -> None:
    """Write a copy of the pack whose recogniser is the fastest equivalent for this CPU, under a new model id.

    Embeddings of the prepared pack are not bit-identical to the original's: its model id differs, so
    watchlists enrolled with the original must be re-enrolled. Prove equivalence with `lfr eval run` on the
    development data, then `lfr eval compare ORIGINAL.json PREPARED.json`.
    """
    from lfr.adapters.embedder import ModelSettings
    from lfr.adapters.model_pack import PackFormat, PrepareRequest
    from lfr.adapters.model_pack import prepare as prepare_pack

    logging.basicConfig(level=logging.WARNING)
    try:
        chosen = PackFormat(format_)
    except ValueError:
        fail(f"--format must be one of {', '.join(f.value for f in PackFormat)}, not {format_!r}", 2)
    request = PrepareRequest(
        source=ModelSettings(root=model_root, pack=pack),
        out_root=out_root,
        name=name,
        format=chosen,
        calibration=calibration,
        calibration_limit=calibration_limit,
        timing_runs=timing_runs,
        min_cosine=min_cosine,
    )
    try:
        prepared = prepare_pack(request, say=lambda line: console.print(line, highlight=False))
    except LfrError as exc:
        fail(str(exc), 2)
    console.print(f"kept {prepared.format}: pack {prepared.folder}", highlight=False, soft_wrap=True)
    console.print(
        f"model id {prepared.model_id} (was {prepared.source_model_id})", highlight=False, soft_wrap=True
    )
    console.print(
        "a new model id: watchlists enrolled with the original pack must be re-enrolled with this one. "
        f"Use it with LFR_MODEL_ROOT={out_root} LFR_MODEL_PACK={prepared.folder.name}",
        highlight=False,
        soft_wrap=True,
    )
