"""Generated street clips with ground truth, and how well a tracker keeps one identity per person.

No images: a clip is the detector's output per frame (face boxes with jitter, missed detections and
people crossing in both directions at walking or running pace), each box labelled with the person it
belongs to. Scored as in multi-object tracking (Bernardin & Stiefelhagen 2008, CLEAR MOT): identity
switches (a person's box gets a different track id than that person's previous box) and fragmentation
(track ids per person beyond the first), plus tracks per person, which is what an operations report's
"people seen" over-counts by.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

FRAME_W, FRAME_H = 1280, 720


@dataclass(frozen=True, slots=True)
class Frame:
    time: float
    boxes: np.ndarray  # (n, 4) x1 y1 x2 y2
    people: tuple[int, ...]  # ground-truth person of each box


@dataclass(frozen=True, slots=True)
class Pace:
    name: str
    crossing_s: tuple[float, float]  # time to cross the frame's width, drawn uniformly from this range


WALKING = Pace("walking", (2.0, 3.0))  # the LFW clip: 2-3 s per crossing
RUNNING = Pace("running", (0.8, 1.2))


def street_clip(
    pace: Pace,
    people: int = 40,
    fps: float = 10.0,
    miss_rate: float = 0.1,
    jitter: float = 0.04,
    seed: int = 0,
) -> list[Frame]:
    """`people` faces crossing the frame left-right or right-left, starting at random times (a few on
    screen at once), each detected in a frame with probability 1 - miss_rate, box centre and size
    jittered by `jitter` of the face's width."""
    rng = np.random.default_rng(seed)
    dt = 1.0 / fps
    starts = np.sort(rng.uniform(0, people * 0.6, people))
    plans = []
    for person, start in enumerate(starts):
        side = rng.uniform(60, 110)
        duration = rng.uniform(*pace.crossing_s)
        direction = 1 if rng.random() < 0.5 else -1
        x0 = -side / 2 if direction > 0 else FRAME_W + side / 2
        speed = direction * (FRAME_W + side) / duration
        y = rng.uniform(side, FRAME_H - side)
        drift = rng.uniform(-30, 30)  # px/s up or down the frame
        plans.append((person, start, duration, side, x0, speed, y, drift))
    end = max(p[1] + p[2] for p in plans) + dt
    frames = []
    for step in range(int(np.ceil(end / dt))):
        now = step * dt
        boxes, who = [], []
        for person, start, duration, side, x0, speed, y, drift in plans:
            t = now - start
            if t < 0 or t > duration or rng.random() < miss_rate:
                continue
            cx = x0 + speed * t + rng.normal(0, jitter * side)
            cy = y + drift * t + rng.normal(0, jitter * side)
            s = side * (1 + rng.normal(0, jitter))
            if cx + s / 2 < 0 or cx - s / 2 > FRAME_W:
                continue
            boxes.append([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2])
            who.append(person)
        frames.append(Frame(now, np.array(boxes, dtype=np.float64).reshape(-1, 4), tuple(who)))
    return frames


@dataclass(frozen=True, slots=True)
class TrackingScore:
    people: int
    tracks: int
    identity_switches: int
    fragmentations: int  # track ids per person beyond the first, summed
    impure_tracks: int  # tracks that held boxes of more than one person

    @property
    def tracks_per_person(self) -> float:
        return self.tracks / self.people if self.people else 0.0


def score_tracker(frames: Sequence[Frame], assign: Callable[[np.ndarray, float], list[str]]) -> TrackingScore:
    """Feed every frame's boxes to `assign` (a tracker's) and count how its ids line up with the truth."""
    last_id: dict[int, str] = {}
    ids_of_person: dict[int, set[str]] = {}
    people_of_track: dict[str, set[int]] = {}
    switches = 0
    for frame in frames:
        ids = assign(frame.boxes, frame.time)
        for person, track in zip(frame.people, ids, strict=True):
            if person in last_id and last_id[person] != track:
                switches += 1
            last_id[person] = track
            ids_of_person.setdefault(person, set()).add(track)
            people_of_track.setdefault(track, set()).add(person)
    return TrackingScore(
        people=len(ids_of_person),
        tracks=len(people_of_track),
        identity_switches=switches,
        fragmentations=sum(len(ids) - 1 for ids in ids_of_person.values()),
        impure_tracks=sum(1 for people in people_of_track.values() if len(people) > 1),
    )
