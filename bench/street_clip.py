"""Alerts per listed passer on a street-like clip of LFW faces (issue 10): `python -m bench.street_clip`.

    python -m bench.street_clip [--seed 1] [--runs 1] [--passers 60] [--listed 8] [--threshold 0.5]

`--passers` LFW identities cross a 1280x720 street at 10 fps, one after another with several on screen at
once: most walk (2-3 s from one edge to the other), some run (1-1.5 s), in four rows, either way. `--listed`
of them are people with two or more LFW images: enrolled from one image, walking past in another. The
clip goes through what an operator runs: the matcher of `lfr serve` (embedded SQLite, the demo's
configuration: lfr.demo.run.local_matcher_config) with a watchlist enrolled and sealed over gRPC and a
deployment window authorised to cover the whole clip, and lfr's camera node reading the clip file in
real time with its default tracker (frames dropped when inference falls behind, as from a camera).

Measured afterwards from the store: stored alerts (one per track and subject) and "cards" (alerts of one
subject within CARD_GROUPING_S of that subject's first, as the tablet groups repeat sightings) per listed
passage; alerts for someone not on screen then (false alerts); and from the observation counters the
observations and tracks started ("people seen" in the operations report) per passer. A passage with more
than one alert is listed with each alert's track and when that track's faces were sent, which tells a
track that broke and restarted from two tracks at once.

The clip is made of research-dataset images and lives in a temporary folder (or `--workdir`) with the
matcher's database; the bench keeps no embedding or crop of a passer-by: the node's callback records only
each face's track id, capture time and answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import functools
import itertools
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import grpc
import numpy as np
from prometheus_client import CollectorRegistry
from rich.console import Console

from lfr.adapters.camera.config import CameraNodeConfig
from lfr.adapters.embedder import InsightFaceEmbedder, ModelSettings
from lfr.adapters.enrolment import EnrolmentRow
from lfr.bootstrap import build_camera_node, build_container, running_matcher
from lfr.demo.cast import Cast, Person
from lfr.demo.clip import ClipPlan, Walk, backdrop, paste, posed
from lfr.demo.outcomes import DemoSummary
from lfr.demo.portraits import DemoInputError, portrait_from_file
from lfr.demo.run import (
    AUDITOR,
    CAMERA,
    DemoOptions,
    DemoSession,
    DemoWindow,
    authorise_window,
    demo_accounts,
    enrol_cast,
    load_embedder,
    local_matcher_config,
    private_file,
)
from lfr.domain.observation import TRACKS_COUNTER
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc, ingest_pb2

SIZE = (1280, 720)
ROW_TOPS = (0, 165, 330, 495)  # walkers' cut-outs (~220 px tall, faces ~100) overlap only below the chin
WALKING_S = (2.0, 3.0)  # to cross the frame's width (the clip)
RUNNING_S = (1.0, 1.5)
RUNNING_SHARE = 0.15
START_SPACING_S = 0.8  # mean gap between passers' arrivals: two or three on screen at once
ROW_GAP_S = 0.5  # a row is one person's at a time: the next enters this long after the last left
LEAD_IN_S = 1.0  # empty street before the first passer: the window opens in it
TAIL_S = 1.0
WINDOW_LAG_S = 120.0  # the window stays armed this long after the clip's end: a slow machine still ends
ON_SCREEN_SLACK_S = 0.5  # a face's frame vs the plan: a cut-out's face shows a little after it enters
FOLLOW_EVERY_S = 0.02  # how often the node's frame counters are read
CARD_GROUPING_S = 300.0  # alerts of one subject this close together make one card on the tablet
_OUTCOMES = {
    ingest_pb2.OUTCOME_ALERT: "alert",
    ingest_pb2.OUTCOME_NO_MATCH: "no_match",
    ingest_pb2.OUTCOME_NOT_ARMED: "not_armed",
    ingest_pb2.OUTCOME_REJECTED: "rejected",
}


# --- the clip -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Crossing:
    walk: Walk  # walk.lane 0: left to right, 1: right to left
    start_s: float
    duration_s: float
    row: int
    running: bool

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def on_screen(self, t: float, slack_s: float = 0.0) -> bool:
        return self.start_s - slack_s <= t <= self.end_s + slack_s


@dataclass(frozen=True, slots=True)
class StreetPlan:
    crossings: tuple[Crossing, ...]
    fps: float
    duration_s: float

    @property
    def frames(self) -> int:
        return round(self.duration_s * self.fps)


@dataclass(slots=True)
class Playback:
    """Which frame the camera node had read, and how many it had run detection on, at each moment. A
    node on a busy machine falls behind: its capture thread reads late (the clip plays slower than real
    time) and detection skips frames; a face's capture time says which frame it came from only through
    this record."""

    fps: float
    wall: list[float] = field(default_factory=list)  # POSIX seconds
    captured: list[float] = field(default_factory=list)
    processed: list[float] = field(default_factory=list)

    def clip_s(self, when: datetime) -> float:
        if not self.wall:
            return float("nan")
        frames_read = float(np.interp(when.timestamp(), self.wall, self.captured))
        return max(0.0, frames_read - 0.5) / self.fps

    def longest_stall_s(self, start_s: float, end_s: float) -> float:
        """The longest wait between two frames through detection while the clip was between these."""
        moments = [
            w
            for w, c, p, previous in zip(
                self.wall[1:], self.captured[1:], self.processed[1:], self.processed[:-1], strict=True
            )
            if p > previous and start_s <= c / self.fps <= end_s
        ]
        return max((b - a for a, b in itertools.pairwise(moments)), default=float("nan"))


def pick_cast(lfw: Path, passers: int, listed: int, seed: int, usable: Callable[[Path], bool]) -> Cast:
    """`listed` identities with two or more images (enrolled from one, walking in another) and
    `passers - listed` others (one image each), drawn at random; `usable(image)` skips images in which
    the detector finds no face."""
    images: dict[str, list[str]] = defaultdict(list)
    with (lfw / "manifest.csv").open(newline="") as manifest:
        for row in csv.DictReader(manifest):
            images[row["identity"]].append(row["path"])
    rng = random.Random(seed)
    identities = sorted(images)
    rng.shuffle(identities)
    people: list[Person] = []
    rows: list[EnrolmentRow] = []
    for identity in identities:
        if len(people) >= passers:
            break
        paths = images[identity]
        if len(rows) < listed and len(paths) >= 2:
            enrol_image, walk_image = rng.sample(paths, 2)
            if not (usable(lfw / enrol_image) and usable(lfw / walk_image)):
                continue
            n = len(rows) + 1
            reference, name = f"LFW-{n:02d}", f"listed {n}"
            rows.append(EnrolmentRow(reference, name, "bench", "bench only", "LFW", enrol_image, n))
            people.append(Person(reference, name, True, (lfw / walk_image,)))
        elif len(people) - len(rows) < passers - listed:
            image = rng.choice(paths)
            if usable(lfw / image):
                n = len(people) - len(rows) + 1
                people.append(Person(f"passer-by-{n}", f"passer-by {n}", False, (lfw / image,)))
    if len(rows) < listed or len(people) < passers:
        raise DemoInputError(f"{lfw}: not enough usable identities for {passers} passers, {listed} listed")
    rng.shuffle(people)  # listed people walk at random places in the clip
    return Cast(tuple(people), tuple(rows), lfw, f"LFW ({lfw})")


def plan_street(cast: Cast, fps: float = 10.0, seed: int = 1) -> StreetPlan:
    """Passers arrive at random (START_SPACING_S apart on average) and each takes a row nobody is
    crossing, or waits for the first to clear: people overlap in time, never on one spot, so no face
    hides another (crossing paths and occlusion are bench.tracking's subject)."""
    rng = random.Random(seed)
    clear_at = [0.0] * len(ROW_TOPS)  # when each row's last passer has left
    arrival = LEAD_IN_S
    crossings: list[Crossing] = []
    for person in cast.people:
        arrival += rng.uniform(0, 2 * START_SPACING_S)
        free = [r for r, t in enumerate(clear_at) if t + ROW_GAP_S <= arrival]
        row = rng.choice(free) if free else min(range(len(ROW_TOPS)), key=clear_at.__getitem__)
        start = max(arrival, clear_at[row] + ROW_GAP_S)
        running = rng.random() < RUNNING_SHARE
        duration = rng.uniform(*(RUNNING_S if running else WALKING_S))
        clear_at[row] = start + duration
        arrival = start
        scale = rng.uniform(0.85, 1.1)
        walk = Walk(
            person,
            person.walk_images[0],
            lane=rng.randrange(2),
            flip=rng.random() < 0.5,
            gain=rng.uniform(0.85, 1.15),
            scale_from=scale,
            scale_to=scale * rng.uniform(0.95, 1.1),
            tilt_deg=rng.uniform(-7, 7),
            blur=rng.choice((0.0, 0.0, 0.5)),  # more would fail the quality gate
        )
        crossings.append(Crossing(walk, start, duration, row, running))
    return StreetPlan(tuple(crossings), fps, max(c.end_s for c in crossings) + TAIL_S)


def render_street(
    plan: StreetPlan, portrait_of: Callable[[Path], tuple[np.ndarray, float]], path: Path, seed: int = 1
) -> None:
    """Writes the clip as Motion-JPEG, as lfr.demo.clip.render_clip does the demo's."""
    rng = np.random.default_rng(seed)
    street = backdrop(rng, SIZE)
    grain = [rng.integers(-3, 4, street.shape, dtype=np.int16) for _ in range(4)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), plan.fps, SIZE)
    if not writer.isOpened():
        raise DemoInputError(f"cannot write {path}: OpenCV has no Motion-JPEG writer")
    width = SIZE[0]
    try:
        for index in range(plan.frames):
            t = index / plan.fps
            frame = street.copy()
            for crossing in plan.crossings:  # in order of start: a later passer walks in front
                if not crossing.start_s <= t < crossing.end_s:
                    continue
                progress = (t - crossing.start_s) / crossing.duration_s
                portrait, face_height = portrait_of(crossing.walk.image)
                person = posed(portrait, face_height, crossing.walk, progress)
                w = person.shape[1]
                travelled = (width + w) * progress
                left = int(travelled - w) if crossing.walk.lane == 0 else int(width - travelled)
                paste(frame, person, left, ROW_TOPS[crossing.row] + int(6 * np.sin(progress * 12)))
            writer.write(np.clip(frame.astype(np.int16) + grain[index % 4], 0, 255).astype(np.uint8))
    finally:
        writer.release()


# --- what the camera and the store saw ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentFace:
    track_id: str
    clip_s: float  # capture time, seconds from the clip's first frame
    outcome: str


@dataclass(frozen=True, slots=True)
class StoredAlert:
    reference: str  # the listed person it names
    track_id: str
    clip_s: float
    first_s: float
    last_s: float
    sightings: int


@dataclass(slots=True)
class Passage:
    reference: str
    start_s: float
    end_s: float
    running: bool
    alerts: list[StoredAlert] = field(default_factory=list)
    cards: int = 0


@dataclass(slots=True)
class StreetResult:
    seed: int
    passers: int
    passages: list[Passage]
    false_alerts: list[StoredAlert]
    observations: int
    people_seen: int  # tracks started, from the matcher's counters
    node_tracks: int  # distinct track ids the node sent faces for
    frames: int
    dropped_frames: int
    faces: list[SentFace]
    playback: Playback
    audit_ok: bool
    seconds: float = 0.0

    @property
    def found(self) -> int:
        return sum(1 for p in self.passages if p.alerts)

    @property
    def alerts(self) -> int:
        return sum(len(p.alerts) for p in self.passages)

    @property
    def cards(self) -> int:
        return sum(p.cards for p in self.passages)


def cards_of(alerts: Sequence[StoredAlert], grouping_s: float = CARD_GROUPING_S) -> dict[int, int]:
    """Card number of each alert (by index): a subject's alerts within `grouping_s` of the first of its
    current card share that card."""
    card_of: dict[int, int] = {}
    opened: dict[str, tuple[int, float]] = {}  # subject -> (card, its first alert's time)
    numbers = itertools.count()
    for index in sorted(range(len(alerts)), key=lambda i: alerts[i].clip_s):
        alert = alerts[index]
        card = opened.get(alert.reference)
        if card is None or alert.clip_s - card[1] > grouping_s:
            card = (next(numbers), alert.clip_s)
            opened[alert.reference] = card
        card_of[index] = card[0]
    return card_of


def attribute(plan: StreetPlan, alerts: Sequence[StoredAlert]) -> tuple[list[Passage], list[StoredAlert]]:
    """Each alert to the passage of the person it names that was on screen when its face was captured;
    an alert naming someone not on screen then is false."""
    passages = [
        Passage(c.walk.person.key, c.start_s, c.end_s, c.running)
        for c in plan.crossings
        if c.walk.person.listed
    ]
    false_alerts: list[StoredAlert] = []
    card_of = cards_of(alerts)
    cards: dict[int, set[int]] = defaultdict(set)
    for index, alert in enumerate(alerts):
        passage = next(
            (
                p
                for p in passages
                if p.reference == alert.reference
                and p.start_s - ON_SCREEN_SLACK_S <= alert.clip_s <= p.end_s + ON_SCREEN_SLACK_S
            ),
            None,
        )
        if passage is None:
            false_alerts.append(alert)
            continue
        passage.alerts.append(alert)
        cards[id(passage)].add(card_of[index])
    for passage in passages:
        passage.cards = len(cards[id(passage)])
    return passages, false_alerts


# --- the run --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreetOptions:
    seed: int
    passers: int
    listed: int
    threshold: float
    fps: float
    lfw: Path
    workdir: Path


async def run_street(options: StreetOptions, embedder: InsightFaceEmbedder) -> StreetResult:
    began = time.monotonic()
    workdir = options.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    portrait_of = functools.cache(functools.partial(portrait_from_file, embedder))

    def usable(image: Path) -> bool:
        try:
            portrait_of(image)
        except DemoInputError:
            return False
        return True

    cast = pick_cast(options.lfw, options.passers, options.listed, options.seed, usable)
    plan = plan_street(cast, options.fps, options.seed)
    clip = workdir / "street.avi"
    await asyncio.to_thread(render_street, plan, portrait_of, clip, options.seed)

    container = build_container(local_matcher_config(workdir, {}))
    try:
        tokens, _ = await asyncio.to_thread(demo_accounts, container)
        async with running_matcher(container) as running:
            address = f"127.0.0.1:{running.port}"
            async with grpc.aio.insecure_channel(address) as channel:
                session = DemoSession(
                    DemoOptions(workdir, threshold=options.threshold, fps=options.fps),
                    Console(quiet=True),
                    container,
                    channel,
                    address,
                    tokens,
                    DemoSummary(threshold=options.threshold),
                )
                watchlist = await enrol_cast(session, embedder, cast)
                # Armed from just after the clip's first frame until well after its last.
                covering = ClipPlan(
                    (), plan.fps, plan.duration_s, LEAD_IN_S / 2, plan.duration_s + WINDOW_LAG_S
                )
                window = await authorise_window(session, watchlist, covering)
                sent, playback, frames, dropped = await _watch(session, embedder, window, plan, clip)
                await asyncio.to_thread(container.flush_counters)
                with container.store() as uow:
                    totals = uow.counters.totals()
                    stored = uow.alerts.find([window.id], limit=100_000)
                verdict = await control_pb2_grpc.AuditStub(channel).Verify(
                    pb.Empty(), metadata=session.auth(AUDITOR)
                )
    finally:
        container.close()

    alerts = [
        StoredAlert(
            watchlist.references[a.subject_id],
            a.track_id,
            playback.clip_s(a.captured_at),
            playback.clip_s(a.first_seen_at or a.captured_at),
            playback.clip_s(a.last_seen_at or a.captured_at),
            a.sightings,
        )
        for a in stored
    ]
    faces = [SentFace(track_id, playback.clip_s(captured), outcome) for track_id, captured, outcome in sent]
    passages, false_alerts = attribute(plan, alerts)
    return StreetResult(
        seed=options.seed,
        passers=len(plan.crossings),
        passages=passages,
        false_alerts=false_alerts,
        observations=sum(n for (_, _, outcome), n in totals.items() if outcome != TRACKS_COUNTER),
        people_seen=sum(n for (_, _, outcome), n in totals.items() if outcome == TRACKS_COUNTER),
        node_tracks=len({f.track_id for f in faces}),
        frames=frames,
        dropped_frames=dropped,
        faces=faces,
        playback=playback,
        audit_ok=verdict.ok,
        seconds=time.monotonic() - began,
    )


async def _watch(
    session: DemoSession, embedder: InsightFaceEmbedder, window: DemoWindow, plan: StreetPlan, clip: Path
) -> tuple[list[tuple[str, datetime, str]], Playback, int, int]:
    """lfr's camera node over the clip, configured as an operator would: defaults but for the source.
    Returns each face sent (track id, capture time, answer), the playback record, frames and drops."""
    node_config = CameraNodeConfig.model_validate(
        {
            "camera_id": CAMERA,
            "matcher": {
                "address": session.address,
                "token_file": private_file(session.options.workdir / "camera-token", session.tokens[CAMERA]),
            },
            "source": {"uri": str(clip), "fps": plan.fps, "realtime": True},
            "metrics": {"enabled": False},
        }
    )
    pending: dict[int, tuple[str, datetime]] = {}
    faces: list[tuple[str, datetime, str]] = []

    def sent(observation: ingest_pb2.Observation) -> None:
        pending[observation.seq] = (observation.track_id, observation.captured_at.ToDatetime(tzinfo=UTC))

    def answered(result: ingest_pb2.ObservationResult) -> None:
        track_id, captured = pending.pop(result.seq, ("?", datetime.now(UTC)))
        faces.append((track_id, captured, _OUTCOMES.get(result.outcome, "unknown")))

    registry = CollectorRegistry()
    node = build_camera_node(
        node_config, registry, embedder=embedder, serve=False, on_sent=sent, on_result=answered
    )
    playback = Playback(plan.fps)
    await asyncio.sleep(max(0.0, (window.clip_starts - datetime.now(UTC)).total_seconds()))
    following = asyncio.create_task(_follow(registry, playback))
    try:
        summary = await node.run()
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
    return faces, playback, summary.frames, summary.dropped_frames


async def _follow(registry: CollectorRegistry, playback: Playback) -> None:
    labels = {"camera": CAMERA}
    while True:
        playback.wall.append(time.time())
        playback.captured.append(registry.get_sample_value("lfr_camera_frames_captured_total", labels) or 0.0)
        playback.processed.append(
            registry.get_sample_value("lfr_camera_frames_processed_total", labels) or 0.0
        )
        await asyncio.sleep(FOLLOW_EVERY_S)


# --- the report -----------------------------------------------------------------------------------------


def table(results: Sequence[StreetResult], listed: int) -> list[str]:
    lines = [
        "| seed | passers | listed found | alerts per listed passage: mean / max | cards per passage | "
        "passages with >1 alert | false alerts | observations | tracks (people seen) | tracks per passer | "
        "frames (dropped) |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        found = [p for p in r.passages if p.alerts]
        per = [len(p.alerts) for p in found]
        lines.append(
            f"| {r.seed} | {r.passers} | {r.found} of {listed} | "
            f"{statistics.mean(per) if per else 0:.2f} / {max(per, default=0)} | "
            f"{statistics.mean(p.cards for p in found) if found else 0:.2f} | "
            f"{sum(1 for n in per if n > 1)} | {len(r.false_alerts)} | {r.observations} | {r.people_seen} | "
            f"{r.people_seen / r.passers:.2f} | {r.frames} ({r.dropped_frames}) |"
        )
    return lines


def explain(result: StreetResult) -> list[str]:
    """Every passage with more than one alert, and every false alert: which tracks, when."""
    by_track: dict[str, list[float]] = defaultdict(list)
    for face in result.faces:
        by_track[face.track_id].append(face.clip_s)

    def track_line(alert: StoredAlert) -> str:
        times = sorted(by_track.get(alert.track_id, []))
        sent = ", ".join(f"{t:.1f}" for t in times)
        return (
            f"    track {alert.track_id[-8:]}: alert at {alert.clip_s:.1f} s, {alert.sightings} face(s) "
            f"{alert.first_s:.1f}-{alert.last_s:.1f} s; the track's faces sent at [{sent}] s"
        )

    lines = []
    for passage in result.passages:
        if len(passage.alerts) > 1:
            pace = "running" if passage.running else "walking"
            stall = result.playback.longest_stall_s(passage.start_s, passage.end_s)
            lines.append(
                f"  seed {result.seed}: {passage.reference} ({pace}, on screen {passage.start_s:.1f}-"
                f"{passage.end_s:.1f} s): {len(passage.alerts)} alerts; longest wait between frames "
                f"through detection meanwhile {stall:.2f} s"
            )
            lines += [track_line(a) for a in sorted(passage.alerts, key=lambda a: a.clip_s)]
    for alert in result.false_alerts:
        lines.append(f"  seed {result.seed}: false alert for {alert.reference}")
        lines.append(track_line(alert))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1, help="seeds seed, seed+1, ...")
    parser.add_argument("--passers", type=int, default=60)
    parser.add_argument("--listed", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--fps", type=float, default=10.0)
    datasets = Path(os.environ.get("LFR_TEST_DATASETS", "/work/shared/datasets"))
    parser.add_argument("--lfw", type=Path, default=datasets / "lfw", help="LFW with its manifest.csv")
    parser.add_argument("--workdir", type=Path, help="keep the clip and database here (default: removed)")
    args = parser.parse_args()
    embedder = load_embedder(ModelSettings(intra_op_threads=1))
    results = []
    for seed in range(args.seed, args.seed + args.runs):
        with contextlib.ExitStack() as stack:
            folder = args.workdir / f"seed-{seed}" if args.workdir else None
            if folder is None:
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lfr-street-")))
            options = StreetOptions(
                seed, args.passers, args.listed, args.threshold, args.fps, args.lfw, folder
            )
            result = asyncio.run(run_street(options, embedder))
        results.append(result)
        print(
            f"seed {seed}: {result.seconds:.0f} s, load average {os.getloadavg()[0]:.1f}, "
            f"audit chain {'verifies' if result.audit_ok else 'BROKEN'}",
            flush=True,
        )
    print()
    print("\n".join(table(results, args.listed)))
    details = [line for r in results for line in explain(r)]
    if details:
        print()
        print("\n".join(details))


if __name__ == "__main__":
    main()
