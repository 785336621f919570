"""The demo's camera clip: people walk past a street scene in three phases, before, during and after the
deployment window.

Each segment shows at most one watchlisted person and one passer-by, in two lanes that never cross, so
an alert's capture time says who it should be for. Quiet stretches separate the phases: the window opens
and closes in them, so a face seen before the window cannot reach the matcher after it opened however
slow the machine. Walks vary in scale, brightness, position and mirror image, so the embeddings the
camera computes are not copies of the enrolled ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from lfr.demo.cast import Cast, Person
from lfr.domain.errors import LfrError

SIZE = (640, 480)  # width, height
FACE_HEIGHT_PX = 100
LEAD_IN_S = 0.5
SEGMENT_S = 2.0
PAUSE_S = 0.6  # between segments: tracks end, so each face belongs to one segment
PHASE_GAP_S = 3.0
WINDOW_EDGE_S = 1.5  # where in a phase gap the window opens or closes
MAX_ARMED_SEGMENTS = 6


class Phase(StrEnum):
    BEFORE = "before"
    ARMED = "armed"
    AFTER = "after"

    @property
    def label(self) -> str:
        return {"before": "before the window", "armed": "window armed", "after": "after the window"}[
            self.value
        ]


@dataclass(frozen=True, slots=True)
class Walk:
    person: Person
    image: Path
    lane: int  # 0: left half, walking right; 1: right half, walking left
    flip: bool
    gain: float  # brightness
    scale_from: float
    scale_to: float
    tilt_deg: float  # head tilt, swaying a little as the person walks
    blur: float  # Gaussian sigma: slight motion or focus softness


@dataclass(frozen=True, slots=True)
class Segment:
    phase: Phase
    start_s: float
    end_s: float
    walks: tuple[Walk, ...]


@dataclass(frozen=True, slots=True)
class ClipPlan:
    segments: tuple[Segment, ...]
    fps: float
    duration_s: float
    arm_at_s: float  # offsets from the first frame
    disarm_at_s: float

    @property
    def frames(self) -> int:
        return round(self.duration_s * self.fps)

    def present_at(self, t: float, slack_s: float = 0.3) -> set[str]:
        """Keys of the people on screen within `slack_s` of `t` seconds into the clip."""
        return {
            walk.person.key
            for segment in self.segments
            if segment.start_s - slack_s <= t <= segment.end_s + slack_s
            for walk in segment.walks
        }


def plan_clip(cast: Cast, fps: float = 10.0, seed: int = 7) -> ClipPlan:
    listed, unlisted = cast.listed, cast.unlisted
    if not listed:
        raise LfrError("the demo needs at least one watchlisted person")
    rng = random.Random(seed)
    listed_walks = [(p, image) for p in listed for image in p.walk_images]
    unlisted_walks = [(p, p.walk_images[0]) for p in unlisted]
    pairs: list[tuple[Phase, tuple[Person, Path] | None, tuple[Person, Path] | None]] = [
        (Phase.BEFORE, listed_walks[0], unlisted_walks[0] if unlisted_walks else None)
    ]
    for n in range(min(MAX_ARMED_SEGMENTS, max(len(listed_walks), len(unlisted_walks)))):
        pairs.append(
            (
                Phase.ARMED,
                listed_walks[n] if n < len(listed_walks) else None,
                unlisted_walks[n] if n < len(unlisted_walks) else None,
            )
        )
    pairs.append((Phase.AFTER, listed_walks[-1], unlisted_walks[-1] if unlisted_walks else None))

    segments: list[Segment] = []
    t = LEAD_IN_S
    arm_at = disarm_at = 0.0
    for phase, wanted, other in pairs:
        if segments and segments[-1].phase != phase:
            if phase is Phase.ARMED:
                arm_at = t + WINDOW_EDGE_S
            else:
                disarm_at = t + WINDOW_EDGE_S
            t += PHASE_GAP_S
        elif segments:
            t += PAUSE_S
        lane = len(segments) % 2
        walks = tuple(
            Walk(
                person,
                image,
                lane if person.listed else 1 - lane,
                flip=rng.random() < 0.5,
                gain=rng.uniform(0.85, 1.15),
                scale_from=rng.uniform(0.85, 0.95),
                scale_to=rng.uniform(1.05, 1.2),
                tilt_deg=rng.uniform(-7, 7),
                blur=rng.choice((0.0, 0.0, 0.5)),  # more would fail the quality gate
            )
            for person, image in (w for w in (wanted, other) if w is not None)
        )
        segments.append(Segment(phase, t, t + SEGMENT_S, walks))
        t += SEGMENT_S
    return ClipPlan(tuple(segments), fps, t + LEAD_IN_S, arm_at, disarm_at)


def backdrop(rng: np.random.Generator, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A plain street of `size` (width, height): sky, building fronts with windows, pavement."""
    width, height = size
    kerb = height * 380 // 480
    scene = np.zeros((height, width, 3), np.uint8)
    rows = np.linspace(0, 1, height)[:, None]
    scene[:] = (np.stack([200 - 60 * rows, 190 - 60 * rows, 170 - 50 * rows], axis=-1)).astype(np.uint8)
    x = 0
    while x < width:
        w = int(rng.integers(90, 170))
        top = int(rng.integers(20, 120))
        colour = tuple(int(c) for c in rng.integers(90, 170, size=3))
        cv2.rectangle(scene, (x, top), (x + w, kerb), colour, -1)
        for wy in range(top + 15, kerb - 20, 40):
            for wx in range(x + 12, x + w - 20, 30):
                cv2.rectangle(scene, (wx, wy), (wx + 14, wy + 20), (70, 60, 50), -1)
        x += w + int(rng.integers(0, 20))
    cv2.rectangle(scene, (0, kerb), (width, height), (105, 110, 115), -1)
    noise = rng.normal(0, 3, scene.shape)
    noisy: np.ndarray = np.clip(scene + noise, 0, 255).astype(np.uint8)
    return noisy


def posed(portrait: np.ndarray, face_height: float, walk: Walk, progress: float) -> np.ndarray:
    """The walker's cut-out `progress` (0-1) of the way through the walk: scaled, mirrored, lit, tilted."""
    scale = (walk.scale_from + (walk.scale_to - walk.scale_from) * progress) * FACE_HEIGHT_PX / face_height
    person = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if walk.flip:
        person = cv2.flip(person, 1)
    person = cv2.convertScaleAbs(person, alpha=walk.gain, beta=0)
    h, w = person.shape[:2]
    tilt = walk.tilt_deg + 2 * np.sin(progress * 6)
    person = cv2.warpAffine(
        person, cv2.getRotationMatrix2D((w / 2, h / 2), tilt, 1.0), (w, h), borderMode=cv2.BORDER_REPLICATE
    )
    if walk.blur:
        person = cv2.GaussianBlur(person, (0, 0), walk.blur)
    return person


def paste(frame: np.ndarray, person: np.ndarray, left: int, top: int) -> None:
    """Copies `person` into `frame` with its top-left corner at (left, top); what falls outside is cut."""
    h, w = person.shape[:2]
    height, width = frame.shape[:2]
    x1, y1 = max(0, left), max(0, top)
    x2, y2 = min(width, left + w), min(height, top + h)
    if x2 > x1 and y2 > y1:
        frame[y1:y2, x1:x2] = person[y1 - top : y2 - top, x1 - left : x2 - left]


def _place(frame: np.ndarray, portrait: np.ndarray, face_height: float, walk: Walk, progress: float) -> None:
    person = posed(portrait, face_height, walk, progress)
    h, w = person.shape[:2]
    width, _ = SIZE
    travel = 110 * progress
    centre_x = (width * 0.25 + travel - 55) if walk.lane == 0 else (width * 0.75 - travel + 55)
    top = int(150 - h * 0.3 + 4 * np.sin(progress * 12))  # a walker's bob
    paste(frame, person, int(centre_x - w / 2), top)


def render_clip(
    plan: ClipPlan,
    portrait_of: Callable[[Path], tuple[np.ndarray, float]],
    path: Path,
    seed: int = 7,
) -> None:
    """Writes the clip as Motion-JPEG; `portrait_of(image)` gives a person's cut-out and face height."""
    rng = np.random.default_rng(seed)
    street = backdrop(rng)
    grain = [rng.integers(-3, 4, street.shape, dtype=np.int16) for _ in range(4)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), plan.fps, SIZE)
    if not writer.isOpened():
        raise LfrError(f"cannot write the demo clip {path}: OpenCV has no Motion-JPEG writer")
    try:
        for index in range(plan.frames):
            t = index / plan.fps
            frame = street.copy()
            for segment in plan.segments:
                if segment.start_s <= t < segment.end_s:
                    progress = (t - segment.start_s) / (segment.end_s - segment.start_s)
                    for walk in segment.walks:
                        portrait, face_height = portrait_of(walk.image)
                        _place(frame, portrait, face_height, walk, progress)
            writer.write(np.clip(frame.astype(np.int16) + grain[index % 4], 0, 255).astype(np.uint8))
    finally:
        writer.release()
