"""What the demo saw: every answer the camera node got, counted by the phase of the window it came in,
and the summary the demo prints and writes as JSON."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from lfr.demo.clip import Phase
from lfr.demo.report import clock
from lfr.demo.scan import Fingerprints, crop_needle, embedding_needles
from lfr.v1 import ingest_pb2

_OUTCOMES = {
    ingest_pb2.OUTCOME_ALERT: "alert",
    ingest_pb2.OUTCOME_NO_MATCH: "no_match",
    ingest_pb2.OUTCOME_NOT_ARMED: "not_armed",
    ingest_pb2.OUTCOME_REJECTED: "rejected",
}
_SAID = {
    "no_match": "no match: answered and forgotten, nothing kept",
    "not_armed": "not armed: not even matched, nothing kept",
    "rejected": "rejected",
}


@dataclass(slots=True)
class AlertSeen:
    alert_id: str
    subject: str  # the listed person's reference
    name: str
    score: float
    threshold: float
    camera: str
    raised_at: str
    clip_seconds: float  # when the face was captured, seconds into the clip
    inside_window: bool
    person_on_screen: bool  # the alerted person was in the clip at that moment (the demo's ground truth)


@dataclass(slots=True)
class DemoSummary:
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    model_id: str = ""
    threshold: float = 0.0
    watchlist: list[dict[str, str]] = field(default_factory=list)
    passers_by: int = 0
    window: dict[str, str] = field(default_factory=dict)
    clip: dict[str, float] = field(default_factory=dict)
    camera: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    alerts: list[AlertSeen] = field(default_factory=list)
    stored: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    deletion_scan: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """The camera node's view of each face it sent: the matcher's answer, counted by the phase of the
    window it arrived in, and fingerprints of the face for the deletion check (see lfr.demo.scan)."""

    def __init__(self, console: Console, starts: datetime, ends: datetime) -> None:
        self._console = console
        self._starts, self._ends = starts, ends
        self._pending: dict[int, tuple[bytes, tuple[int, int]]] = {}
        self.outcomes: dict[str, Counter[str]] = {phase.value: Counter() for phase in Phase}
        self.forgotten = Fingerprints()
        self.alert_crops = Fingerprints()
        self.armed_alert_ids: set[str] = set()  # one per (track, subject): later faces update it
        self._unprinted: Counter[str] = Counter()

    def phase(self, when: datetime) -> Phase:
        if when < self._starts:
            return Phase.BEFORE
        return Phase.ARMED if when < self._ends else Phase.AFTER

    def sent(self, observation: ingest_pb2.Observation) -> None:
        self._pending[observation.seq] = (
            crop_needle(observation.crop_jpeg),
            embedding_needles(observation.embedding_f32le, observation.dimension),
        )

    def answered(self, result: ingest_pb2.ObservationResult) -> None:
        now = datetime.now(UTC)
        outcome = _OUTCOMES.get(result.outcome, "unknown")
        self.outcomes[self.phase(now).value][outcome] += 1
        crop, embedding = self._pending.pop(result.seq, (b"", (0, 0)))
        if outcome == "alert":
            self.alert_crops.crops.append(crop)
            if self.phase(now) is Phase.ARMED:
                self.armed_alert_ids.add(result.alert_id)
            return  # the Alerts.Subscribe stream prints it
        self.forgotten.crops.append(crop)
        self.forgotten.embeddings.append(embedding)
        if not self._unprinted:
            # The answers to one batch arrive together: one line for all of them.
            asyncio.get_running_loop().call_soon(self._print_answers, now)
        self._unprinted[outcome] += 1

    def _print_answers(self, when: datetime) -> None:
        for outcome, n in sorted(self._unprinted.items()):
            faces = "1 face " if n == 1 else f"{n} faces"
            self._console.print(
                f"[dim]{clock(when)}  {faces} -> {_SAID.get(outcome, outcome)}[/]", highlight=False
            )
        self._unprinted.clear()


def find_problems(summary: DemoSummary, armed_alerts: int, listed: int) -> list[str]:
    """`armed_alerts`: distinct alerts the camera was answered with while the window was armed."""
    problems = []
    outcomes = summary.outcomes
    scan = summary.deletion_scan
    if not outcomes[Phase.BEFORE.value].get("not_armed"):
        problems.append("no face was answered 'not armed' before the window opened")
    if not outcomes[Phase.AFTER.value].get("not_armed"):
        problems.append("no face was answered 'not armed' after the window closed")
    for phase in (Phase.BEFORE, Phase.AFTER):
        if set(outcomes[phase.value]) - {"not_armed"}:
            problems.append(f"{phase.value}: answers other than 'not armed': {dict(outcomes[phase.value])}")
    if outcomes[Phase.ARMED.value].get("not_armed"):
        problems.append("a face was answered 'not armed' while the window was armed")
    alerted = {a.subject for a in summary.alerts}
    if len(alerted) < listed:
        problems.append(f"only {len(alerted)} of the {listed} watchlisted people raised an alert")
    if armed_alerts != len(summary.alerts):
        problems.append(f"{armed_alerts} alerts answered but {len(summary.alerts)} alerts on the stream")
    problems += [
        f"alert {a.alert_id} raised outside the window" for a in summary.alerts if not a.inside_window
    ]
    problems += [
        f"alert {a.alert_id} names {a.subject}, who was not on screen then"
        for a in summary.alerts
        if not a.person_on_screen
    ]
    if scan["crops_found"] or scan["embeddings_found"]:
        problems.append(f"non-matching faces found on disk in {', '.join(scan['found_in'])}")
    if scan.get("alert_crops_in_clear"):
        problems.append("alert crops found unencrypted on disk")
    # Each stored alert keeps its track's best face; the faces it replaced may or may not still be on disk.
    stored_alerts = summary.stored.get("alerts", 0)
    if (
        scan["alert_crops_found"] < min(stored_alerts, scan["alert_crops"])
        or not scan["enrolled_embeddings_found"]
    ):
        problems.append("the deletion scan could not find what must be there: it proves nothing")
    if not summary.audit.get("ok"):
        problems.append("the audit chain does not verify")
    return problems
