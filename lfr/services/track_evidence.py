"""What the matcher remembers of a track that has not (yet) matched: memory only, bounded, short-lived.

A camera node releases a track's best face about once a second. Each face alone may fall short of the
threshold while the faces together clearly agree, so the matcher also searches with the track's FUSED
probe: the unit-length mean of the track's faces (the probe-side twin of the mean template,
docs/evaluation.md). Averaging faces of one person keeps what is theirs and cancels pose and blur.

The rule against a tracker swap (two people's faces in one track): an alert from the fused probe is
raised only for a subject that at least one single face of the track supports with a score of at least
`threshold - support_margin`. Two strangers who each half-resemble a listed person can average to that
person's template; neither face alone reaches the floor, so no alert. A fused alert is always
"one face nearly matched and the rest of the track agreed".

What is kept per track: the running sum of its unit probes (d floats), the count, the last few source
references (so a re-sent face is not added twice) and each subject's best single-face score among the
search's top candidates. Never written anywhere; overwritten with zeros when the track goes quiet for
`max_age_s`, when the table is full (the stalest goes first), when its window is no longer armed, and
at shutdown.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from lfr.domain.matching import Candidate

TrackKey = tuple[str, str, str, str]  # (window id, camera id, node session, track id)


@dataclass(frozen=True, slots=True)
class TrackEvidencePolicy:
    enabled: bool = True
    max_tracks: int = 2048  # at 512 floats each, about 4 MiB of sums; the stalest track goes first
    max_age_s: float = 10.0  # a track with no face for this long is forgotten (nodes send ~1 face/s)
    support_margin: float = 0.10  # a fused alert needs one face at or above threshold - this
    max_subjects: int = 32  # best single scores kept per track (top candidates of each face)
    remembered_sources: int = 16  # recent source refs per track, to ignore re-sent faces


@dataclass(slots=True)
class _Track:
    window_id: str
    total: np.ndarray  # float32 sum of the track's unit probes (float64 would cost a cast per face)
    faces: int = 0
    updated: float = 0.0
    sources: deque[str] = field(default_factory=deque)
    best_single: dict[str, float] = field(default_factory=dict)

    def wipe(self) -> None:
        self.total.fill(0)
        self.best_single.clear()
        self.sources.clear()
        self.faces = 0


class TrackEvidence:
    def __init__(
        self, policy: TrackEvidencePolicy | None = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or TrackEvidencePolicy()
        self._monotonic = monotonic
        self._tracks: OrderedDict[TrackKey, _Track] = OrderedDict()  # least recently updated first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tracks)

    def add(
        self,
        key: TrackKey,
        source_ref: str | None,
        probe: np.ndarray,
        candidates: tuple[Candidate, ...],
        threshold: float | None = None,
    ) -> np.ndarray | None:
        """Adds one unit probe of the track and its single-face candidates; returns the fused probe (a
        new unit vector the caller wipes) once the track has two or more faces, else None. A face whose
        source was already added (a re-send) changes nothing and gets the current fused probe.

        With `threshold`, also None while no subject has a face at threshold - support_margin: the fused
        probe could not raise an alert then, so the caller need not search with it (almost every
        passer-by's track: the search is the matcher's main cost). Pass the same threshold for every face
        of a track (its window's): only single scores at or above the floor are kept."""
        if not self.policy.enabled:
            return None
        now = self._monotonic()
        with self._lock:
            self._expire(now)
            track = self._tracks.get(key)
            if track is None:
                track = self._start(key, probe.shape[-1])
            self._tracks.move_to_end(key)
            track.updated = now
            if source_ref is None or source_ref not in track.sources:
                if source_ref is not None:
                    track.sources.append(source_ref)  # a bounded deque: the oldest falls out
                track.total += probe
                track.faces += 1
                # Only scores that could support a fused alert are kept: for almost every passer-by,
                # nothing, which keeps this per-face path cheap (bench.matcher --track-fusion).
                floor = float("-inf") if threshold is None else threshold - self.policy.support_margin
                best = track.best_single
                for candidate in candidates:
                    if candidate.score >= floor and candidate.score > best.get(candidate.subject_id, -1.0):
                        best[candidate.subject_id] = candidate.score
                if len(best) > self.policy.max_subjects:
                    for subject in sorted(best, key=best.__getitem__)[: len(best) - self.policy.max_subjects]:
                        del best[subject]
            if track.faces < 2:
                return None
            if threshold is not None and not track.best_single:
                return None
            norm = float(np.linalg.norm(track.total))
            if norm == 0:
                return None
            fused: np.ndarray = (track.total / norm).astype(np.float32)
            return fused

    def is_new(self, key: TrackKey) -> bool:
        """Whether a face of this track would start it (not seen in the last `max_age_s`): how the
        matcher counts people seen. With fusion off nothing is remembered and every face is "new"."""
        with self._lock:
            return not self.policy.enabled or key not in self._tracks

    def faces(self, key: TrackKey) -> int:
        with self._lock:
            track = self._tracks.get(key)
            return track.faces if track is not None else 0

    def support(self, key: TrackKey, subject_id: str) -> float:
        """The best score any single face of the track gave `subject_id` (-inf if none did)."""
        with self._lock:
            track = self._tracks.get(key)
            return track.best_single.get(subject_id, float("-inf")) if track is not None else float("-inf")

    def supports(self, key: TrackKey, subject_id: str, threshold: float) -> bool:
        return self.support(key, subject_id) >= threshold - self.policy.support_margin

    def forget(self, camera_id: str, session: str, track_ids: Iterable[str]) -> int:
        """Forgets (wipes) these tracks of one camera's node session, in every window: the node said
        they ended. Returns how many were held."""
        ended = set(track_ids)
        if not ended:
            return 0
        with self._lock:
            doomed = [k for k in self._tracks if k[1] == camera_id and k[2] == session and k[3] in ended]
            for key in doomed:
                self._tracks.pop(key).wipe()
        return len(doomed)

    def retain_windows(self, armed: Iterable[str]) -> None:
        """Forgets (wipes) every track of a window that is no longer armed."""
        keep = set(armed)
        with self._lock:
            for key in [k for k, t in self._tracks.items() if t.window_id not in keep]:
                self._tracks.pop(key).wipe()

    def clear(self) -> None:
        with self._lock:
            for track in self._tracks.values():
                track.wipe()
            self._tracks.clear()

    def _expire(self, now: float) -> None:
        while self._tracks:
            key, oldest = next(iter(self._tracks.items()))
            if now - oldest.updated <= self.policy.max_age_s:
                break
            self._tracks.pop(key).wipe()

    def _start(self, key: TrackKey, dimension: int) -> _Track:
        while len(self._tracks) >= self.policy.max_tracks:
            _, stalest = self._tracks.popitem(last=False)
            stalest.wipe()
        track = _Track(
            key[0],
            np.zeros(dimension, dtype=np.float32),
            sources=deque(maxlen=self.policy.remembered_sources),
        )
        self._tracks[key] = track
        return track
