"""Face tracker (constant-velocity prediction) that decides which faces are worth embedding.

A person walking past a camera is seen in dozens of frames. Embedding and sending every one of them wastes
the node's CPU and the matcher's, so each track keeps only its best face seen since it last sent one and
releases it at most once per `min_interval_s`. The first good face of a new track goes at once (an alert
should not wait); a track that disappears releases whatever best face it still holds. Pure numpy: the
payload is whatever the caller wants to embed later, and `discard` wipes a payload that lost to a better
face so no copy of it lingers.

Association: a face walking past at 10 fps moves most of a face-width between frames, running more than
one, so box overlap with the last position (plain IoU tracking) loses it almost every frame. Each track
keeps an alpha-beta (steady-state Kalman) estimate of its centre and velocity; a detection joins the
track whose PREDICTED centre is nearest, measured in face-widths, if it is within `max_residual` of the
prediction (or, for a track seen once, within what `max_speed` allows) and of a similar size. Appearance
is not used here: faces are embedded after tracking, and only the best ones (evaluation/tracking.py and
bench/tracking.py measure fragmentation and identity switches on generated clips).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class TrackerPolicy:
    min_iou: float = 0.3  # this much overlap with the predicted box always joins (slow, big faces)
    min_interval_s: float = 1.0  # at most one face per track per this many seconds
    max_age_s: float = 1.0  # a track unseen this long is over
    max_tracks: int = 64  # bounds memory when a crowd passes; the stalest tracks end first
    # Motion gating (appended: positional callers predate them).
    max_speed: float = 25.0  # face-widths per second a face seen once may have moved (sprinting, close)
    max_residual: float = 0.6  # face-widths a detection may be from a moving track's predicted centre ...
    drift: float = 2.0  # ... plus this many per second since it was last seen (turns, missed frames)
    first_step_s: float = 0.25  # a face seen once is looked for this far (max_speed x this) at most
    max_size_ratio: float = 1.6  # a detection this much larger or smaller than the track is someone else
    alpha: float = 0.8  # alpha-beta gains: how far the estimate follows the measured position ...
    beta: float = 0.5  # ... and velocity (0.8/0.5: jitter-tolerant yet quick to follow a turn)


@dataclass(slots=True)
class _Track(Generic[P]):
    id: str
    box: np.ndarray
    last_seen: float
    velocity: np.ndarray | None = None  # px/s of the box centre; None until seen twice
    last_sent: float | None = None
    best_score: float = float("-inf")
    best: P | None = None
    sent: int = field(default=0)


def _predicted_box(track: _Track[P], now: float) -> np.ndarray:
    if track.velocity is None:
        return track.box
    shift = track.velocity * max(now - track.last_seen, 0.0)
    predicted: np.ndarray = track.box + np.concatenate([shift, shift])
    return predicted


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` (n, 4) with every box in `b` (m, 4), x1 y1 x2 y2."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    out: np.ndarray = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return out


class Tracker(Generic[P]):
    def __init__(self, policy: TrackerPolicy, discard: Callable[[P], None] = lambda _: None) -> None:
        self._policy = policy
        self._discard = discard
        self._tracks: dict[str, _Track[P]] = {}
        # A random run prefix keeps track ids unique across node restarts.
        self._prefix = f"t{secrets.token_hex(3)}"
        self._counter = itertools.count(1)
        self.tracks_started = 0
        self._ended: list[str] = []  # ids of tracks that ended since `take_ended` was last called

    @property
    def active(self) -> int:
        return len(self._tracks)

    def assign(self, boxes: np.ndarray, now: float) -> list[str]:
        """Track id for each box (n, 4) of this frame: greedy nearest-to-prediction matching within each
        track's gate, new tracks for the others."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids: list[str | None] = [None] * boxes.shape[0]
        tracks = list(self._tracks.values())
        taken: set[int] = set()
        if tracks and boxes.shape[0]:
            cost = self._costs(tracks, boxes, now)
            for flat in np.argsort(cost, axis=None, kind="stable"):
                ti, bi = divmod(int(flat), boxes.shape[0])
                if not np.isfinite(cost[ti, bi]):
                    break
                if ids[bi] is None and ti not in taken:
                    taken.add(ti)
                    ids[bi] = tracks[ti].id
                    self._update(tracks[ti], boxes[bi], now)
        for bi, track_id in enumerate(ids):
            if track_id is None:
                ids[bi] = self._start(boxes[bi], now)
        return [i for i in ids if i is not None]

    def _costs(self, tracks: list[_Track[P]], boxes: np.ndarray, now: float) -> np.ndarray:
        """(tracks, boxes) distance from each predicted centre in face-widths; inf outside the gate."""
        policy = self._policy
        predicted = np.stack([_predicted_box(t, now) for t in tracks])
        widths = predicted[:, 2] - predicted[:, 0]
        box_widths = boxes[:, 2] - boxes[:, 0]
        centres = (predicted[:, :2] + predicted[:, 2:]) / 2
        box_centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        scale = np.maximum((widths[:, None] + box_widths[None, :]) / 2, 1e-6)
        distance = np.linalg.norm(centres[:, None, :] - box_centres[None, :, :], axis=2) / scale
        elapsed = np.array([max(now - t.last_seen, 0.0) for t in tracks])
        gate = np.array(
            [
                policy.max_speed * min(dt, policy.first_step_s)
                if t.velocity is None
                else policy.max_residual + policy.drift * dt
                for t, dt in zip(tracks, elapsed, strict=True)
            ]
        )
        # Sizes compare by the box's longer side: a face cut by the frame's edge as it walks in or out
        # keeps its height (or width) while the other side shrinks, and must stay the same person.
        sizes = (predicted[:, 2:] - predicted[:, :2]).max(axis=1)
        box_sizes = (boxes[:, 2:] - boxes[:, :2]).max(axis=1)
        ratio = np.maximum(sizes[:, None], 1e-6) / np.maximum(box_sizes[None, :], 1e-6)
        similar_size = (ratio <= policy.max_size_ratio) & (ratio >= 1 / policy.max_size_ratio)
        inside = ((distance <= gate[:, None]) & similar_size) | (
            iou_matrix(predicted, boxes) >= policy.min_iou
        )
        out: np.ndarray = np.where(inside, distance, np.inf)
        return out

    def _update(self, track: _Track[P], box: np.ndarray, now: float) -> None:
        dt = now - track.last_seen
        old_centre = (track.box[:2] + track.box[2:]) / 2
        centre = (box[:2] + box[2:]) / 2
        if dt <= 0:
            pass  # same instant (or a clock step back): take the box, keep the velocity
        elif track.velocity is None:
            track.velocity = (centre - old_centre) / dt
        else:
            predicted = old_centre + track.velocity * dt
            residual = centre - predicted
            centre = predicted + self._policy.alpha * residual
            track.velocity = track.velocity + self._policy.beta * residual / dt
        half = (box[2:] - box[:2]) / 2
        track.box = np.concatenate([centre - half, centre + half])
        track.last_seen = max(now, track.last_seen)

    def offer(self, track_id: str, score: float, payload: P) -> None:
        """Keep `payload` if it is the track's best since its last send; discard the loser either way."""
        track = self._tracks.get(track_id)
        if track is None or score <= track.best_score:
            self._discard(payload)
            return
        if track.best is not None:
            self._discard(track.best)
        track.best, track.best_score = payload, score

    def due(self, now: float) -> list[tuple[str, P]]:
        """Faces to embed and send now: held faces of tracks whose interval has passed, and of tracks that
        just ended. Ownership of each payload passes to the caller."""
        released: list[tuple[str, P]] = []
        for track in list(self._tracks.values()):
            expired = now - track.last_seen > self._policy.max_age_s
            interval_over = track.last_sent is None or now - track.last_sent >= self._policy.min_interval_s
            if track.best is not None and (interval_over or expired):
                released.append((track.id, track.best))
                track.best, track.best_score = None, float("-inf")
                track.last_sent = now
                track.sent += 1
            if expired:
                del self._tracks[track.id]
                self._ended.append(track.id)
        return released

    def take_ended(self) -> list[str]:
        """Ids of the tracks that ended (went unseen, were evicted or cleared) since the last call."""
        ended, self._ended = self._ended, []
        return ended

    def clear(self) -> None:
        for track in self._tracks.values():
            if track.best is not None:
                self._discard(track.best)
            self._ended.append(track.id)
        self._tracks.clear()

    def _start(self, box: np.ndarray, now: float) -> str:
        if len(self._tracks) >= self._policy.max_tracks:
            stalest = min(self._tracks.values(), key=lambda t: t.last_seen)
            if stalest.best is not None:
                self._discard(stalest.best)
            del self._tracks[stalest.id]
            self._ended.append(stalest.id)
        track_id = f"{self._prefix}-{next(self._counter)}"
        self._tracks[track_id] = _Track(track_id, box.copy(), now)
        self.tracks_started += 1
        return track_id
