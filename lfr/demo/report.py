"""How the demo prints: section headings, times, and the closing summary."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from lfr.demo.clip import Phase

if TYPE_CHECKING:
    from lfr.demo.outcomes import AlertSeen, DemoSummary


def timestamp(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S")


def clock(when: datetime) -> str:
    """Local time to a tenth of a second."""
    return when.astimezone().strftime("%H:%M:%S.%f")[:-5]


def heading(console: Console, text: str) -> None:
    console.print()
    console.print(f"[bold cyan]{text}[/]")


def print_summary(console: Console, summary: DemoSummary) -> None:
    heading(console, "6. What happened")
    camera = summary.camera
    console.print(
        f"camera     {camera['frames']} frames ({camera['frames_dropped']} dropped), "
        f"{camera['faces_detected']} face sightings, {camera['faces_below_quality_gate']} below the quality "
        f"gate; the tracker sent {camera['faces_sent']} faces (each person's best, at most one per 0.6 s)"
    )
    table = Table(
        "", "not armed", "no match", "alert", title="Faces the camera sent, by the matcher's answer"
    )
    for phase in Phase:
        counts = summary.outcomes.get(phase.value, {})
        table.add_row(phase.label, *(str(counts.get(k, 0)) for k in ("not_armed", "no_match", "alert")))
    console.print(table)
    by_subject: dict[str, list[AlertSeen]] = {}
    for alert in summary.alerts:
        by_subject.setdefault(alert.subject, []).append(alert)
    alerts = Table("watchlisted person", "alerts", "scores", "threshold", title="Alerts")
    for entry in summary.watchlist:
        seen = by_subject.get(entry["reference"], [])
        scores = ", ".join(f"{a.score:.2f}" for a in seen) or "-"
        alerts.add_row(
            f"{entry['name']} ({entry['reference']})", str(len(seen)), scores, f"{summary.threshold:.2f}"
        )
    console.print(alerts)
    console.print(
        f"passers-by  {summary.passers_by} people walked past without raising an alert"
        if all(a.person_on_screen for a in summary.alerts)
        else "passers-by  [red]an alert named someone who was not on screen[/]"
    )
    stored = summary.stored
    console.print(
        f"store      {stored['alerts']} alerts, each with its face crop for the officers; "
        "of every other face only a count:"
    )
    for row in stored["counters"]:
        window = f"window {row['window']}" if row["window"] else "no window armed"
        outcome = "people" if row["outcome"] == "tracks" else row["outcome"]  # tracks started: people seen
        console.print(f"             {row['count']:>4} {outcome:<9} ({window})", highlight=False)
    audit = summary.audit
    verdict = "[green]intact[/]" if audit["ok"] else "[red]BROKEN[/]"
    console.print(f"audit      hash chain {verdict}: {audit['records']} records verified")
    scan = summary.deletion_scan
    found = scan["crops_found"] + scan["embeddings_found"]
    console.print(
        f"deletion   searched every byte of the work folder ({_describe(scan['files'])}; "
        f"{scan['bytes'] / 1e6:.1f} MB)",
        highlight=False,
    )
    console.print(
        f"           for the crops and embeddings of the {scan['non_matching_faces']} faces that did not "
        "match: "
        + (
            "[bold green]0 found[/]"
            if not found
            else f"[bold red]{found} found in {', '.join(scan['found_in'])}[/]"
        ),
        highlight=False,
    )
    console.print(
        f"           (the same search does find what is meant to be there: {scan['alert_crops_found']} of "
        f"{scan['alert_crops']} alert crops, {scan['enrolled_embeddings_found']} enrolled embeddings)",
        highlight=False,
    )
    console.print()
    if summary.ok:
        console.print(f"[bold green]demo OK[/] in {summary.seconds.get('total', 0):.0f} s")
    else:
        for problem in summary.problems:
            console.print(f"[bold red]problem:[/] {problem}", highlight=False)


def _describe(files: list[str]) -> str:
    """File names, with each subfolder summarised as one entry."""
    top = [name for name in files if "/" not in name]
    folders = Counter(name.split("/", 1)[0] for name in files if "/" in name)
    return ", ".join([*top, *(f"{folder}/ ({n} files)" for folder, n in sorted(folders.items()))])
