"""`lfr enrol --images DIR --csv FILE`: embed subjects' photos and add them to a watchlist on the matcher."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from lfr.cli.common import CaFileOption, ClientCertOption, ClientKeyOption
from lfr.domain.errors import LfrError

app = typer.Typer(add_completion=False, invoke_without_command=True, help="Enrol watchlist subjects.")


@app.callback()
def enrol(
    images: Annotated[Path, typer.Option("--images", help="folder the CSV's image paths are relative to")],
    csv_file: Annotated[
        Path, typer.Option("--csv", help="columns: subject_id,name,category,reason,image_source,image_path")
    ],
    matcher: Annotated[str, typer.Option("--matcher", help="matcher gRPC host:port")] = "127.0.0.1:50051",
    ca_file: CaFileOption = None,
    client_cert: ClientCertOption = None,
    client_key: ClientKeyOption = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="bearer token (else env LFR_TOKEN)")
    ] = None,
    watchlist_name: Annotated[
        str | None, typer.Option("--watchlist-name", help="create a new watchlist")
    ] = None,
    watchlist_id: Annotated[
        str | None, typer.Option("--watchlist-id", help="add to this draft watchlist")
    ] = None,
    seal: Annotated[
        bool, typer.Option("--seal", help="seal the watchlist when every subject was added")
    ] = False,
    pick: Annotated[
        str, typer.Option("--pick", help="several faces in one image: none, largest, central")
    ] = "none",
    model_root: Annotated[
        str | None, typer.Option("--model-root", help="folder holding models/<pack>/")
    ] = None,
    model_pack: Annotated[str | None, typer.Option("--model-pack")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="embed and report only; send nothing")] = False,
    agreement_floor: Annotated[
        float | None,
        typer.Option(
            "--agreement-floor",
            help="hold back a subject with a photo whose best similarity to its other photos is below this",
        ),
    ] = None,
) -> None:
    from rich.progress import Progress

    from lfr.adapters.embedder import InsightFaceEmbedder, ModelSettings
    from lfr.adapters.enrolment import AGREEMENT_FLOOR, Pick, embed_subjects, read_enrolment_csv
    from lfr.adapters.grpc.channels import ChannelSecurity, open_channel
    from lfr.adapters.watchlist_upload import upload_report

    logging.basicConfig(level=logging.ERROR)
    try:
        chosen = Pick(pick)
        rows = read_enrolment_csv(csv_file)
        token = (token_file.read_text() if token_file else os.environ.get("LFR_TOKEN", "")).strip()
        if not token and not dry_run:
            raise typer.BadParameter("no token: use --token-file or set LFR_TOKEN")
        # Checked before the slow embedding, so a bad certificate path fails at once.
        security = ChannelSecurity(ca_file, client_cert, client_key)
        security.credentials()
        embedder = InsightFaceEmbedder(ModelSettings(root=model_root, pack=model_pack))
        with Progress() as progress:
            task = progress.add_task("embedding", total=len(rows))
            report = embed_subjects(
                embedder,
                rows,
                images,
                chosen,
                lambda n: progress.advance(task, n),
                AGREEMENT_FLOOR if agreement_floor is None else agreement_floor,
            )
        for problem in report.problems:
            typer.echo(f"skipped {problem.image}: {problem.reason}", err=True)
        for reference in report.subjects_without_images:
            typer.echo(f"subject {reference} not enrolled: none of its images was usable", err=True)
        for flagged in report.flagged:
            typer.echo(f"subject {flagged.reference} held back for checking: {flagged.reason}", err=True)
        typer.echo(f"{len(report.subjects)} subject(s) ready, {len(report.problems)} image(s) skipped")
        if dry_run:
            report.wipe()
            return
        with open_channel(matcher, security) as channel, Progress() as progress:
            task = progress.add_task("uploading", total=len(report.subjects))
            result = upload_report(
                channel,
                token,
                report,
                watchlist_name=watchlist_name,
                watchlist_id=watchlist_id,
                seal=seal,
                progress=lambda n: progress.advance(task, n),
            )
        report.wipe()
    except (LfrError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for reference, reason in result.failed.items():
        typer.echo(f"subject {reference} refused by the matcher: {reason}", err=True)
    typer.echo(f"watchlist {result.watchlist_id}: {len(result.added)} subject(s) added")
    if result.sealed_hash:
        typer.echo(f"sealed, content hash {result.sealed_hash}")
    if result.failed or report.flagged:
        raise typer.Exit(1)
