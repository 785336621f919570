"""`lfr doctor`: what this host runs that matters for speed, and whether it is the best it could run."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    help="Check this host: FAISS's BLAS kernel (chosen for the CPU at start) and the libraries in use.",
)


@app.callback()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    import numpy as np

    from lfr.adapters.blas_kernel import ensure_blas_kernel
    from lfr.adapters.faiss_index import faiss_version

    report = ensure_blas_kernel()
    facts: dict[str, object] = {
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss_version(),
        "blas_kernel": report.as_dict(),
    }
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
    else:
        typer.echo(f"CPU             {facts['cpu']}")
        typer.echo(f"numpy / faiss   {np.__version__} / {faiss_version()}")
        typer.echo(
            f"FAISS BLAS      {report.running} ({report.source}; OpenBLAS alone picks {report.detected}, "
            f"best for this CPU {report.best_supported})"
        )
        for note in report.notes:
            typer.echo(f"  note: {note}")
    if report.is_fallback:
        typer.echo(
            f"FAISS runs {report.running}, slower than the {report.best_supported} kernel this CPU supports",
            err=True,
        )
        raise typer.Exit(1)


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
