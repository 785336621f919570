"""The supervisor's picture of running deployments: armed or not, cameras, and counts only.

Nothing here describes an individual non-match: faces that did not match survive only as counters.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from lfr.domain.alert import AlertState
from lfr.domain.clock import Clock
from lfr.domain.observation import TRACKS_COUNTER, Outcome
from lfr.domain.ports import UnitOfWorkFactory
from lfr.domain.principal import Principal, Role
from lfr.domain.window import DeploymentWindow
from lfr.services.deployments import can_see


@dataclass(frozen=True, slots=True)
class StreamState:
    """What the matcher knows of one camera's link: a stream open now or not, and when it last heard."""

    connected: bool
    last_seen: datetime


# Every camera that has streamed since the matcher started; provided when the matcher runs in-process.
OpenStreams = Callable[[], Mapping[str, StreamState]]

ALERT_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class CameraStatus:
    camera_id: str
    connected: bool | None  # None: this process cannot tell (the matcher runs elsewhere)
    last_seen: datetime | None  # when the matcher last heard from it (None: not since it started)
    last_activity: datetime | None  # when its counters last moved, as seen by this process
    faces_seen: int


@dataclass(frozen=True, slots=True)
class WindowOverview:
    window: DeploymentWindow
    armed: bool
    seconds_left: float | None  # until the window ends, while it is armed
    cameras: tuple[CameraStatus, ...]
    faces_by_outcome: dict[str, int]
    alerts_by_outcome: dict[str, int]
    people_seen: int = 0  # tracks started: one person walking past is one, however many faces

    @property
    def faces_seen(self) -> int:
        return sum(self.faces_by_outcome.values())

    @property
    def faces_discarded(self) -> int:
        return self.faces_seen - self.faces_by_outcome.get(Outcome.ALERT.value, 0)


class DeploymentOverviewService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, open_streams: OpenStreams | None = None) -> None:
        self._uow = uow
        self._clock = clock
        self._open_streams = open_streams
        self._seen_counts: dict[str, int] = {}
        self._last_activity: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def overview(self, actor: Principal) -> list[WindowOverview]:
        actor.require(Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR)
        now = self._clock.now()
        with self._uow() as uow:
            windows = [w for w in uow.windows.find() if can_see(w, actor)]
            totals = {w.id: uow.counters.totals(w.id) for w in windows}
            alerts = {w.id: uow.alerts.find([w.id], limit=ALERT_LIMIT) for w in windows}
        open_streams = self._open_streams() if self._open_streams is not None else None
        result = []
        for window in windows:
            faces: Counter[str] = Counter()
            per_camera: Counter[str] = Counter()
            people = 0
            for (_, camera, outcome), n in totals[window.id].items():
                if outcome == TRACKS_COUNTER:
                    people += n
                    continue
                faces[outcome] += n
                per_camera[camera] += n
            armed = window.is_armed(now)
            result.append(
                WindowOverview(
                    window=window,
                    armed=armed,
                    seconds_left=(window.ends_at - now).total_seconds() if armed else None,
                    cameras=tuple(
                        CameraStatus(
                            camera,
                            None if open_streams is None else _connected(open_streams.get(camera)),
                            _last_seen(open_streams, camera),
                            self._activity(window.id, camera, per_camera[camera], now),
                            per_camera[camera],
                        )
                        for camera in sorted(window.camera_ids)
                    ),
                    faces_by_outcome=dict(faces),
                    alerts_by_outcome=dict(
                        Counter(_alert_outcome(a.state, a.outcome) for a in alerts[window.id])
                    ),
                    people_seen=people,
                )
            )
        return result

    def _activity(self, window_id: str, camera: str, count: int, now: datetime) -> datetime | None:
        key = f"{window_id}\x00{camera}"
        with self._lock:
            previous = self._seen_counts.get(key)
            self._seen_counts[key] = count
            if previous is not None and count > previous:
                self._last_activity[key] = now
            return self._last_activity.get(key)


def _alert_outcome(state: AlertState, outcome: object) -> str:
    if state is AlertState.RAISED:
        return "open"
    if state is AlertState.AWAITING_VERIFICATION:
        return "awaiting_verification"
    return str(outcome)


def _connected(state: StreamState | None) -> bool:
    return state is not None and state.connected


def _last_seen(streams: Mapping[str, StreamState] | None, camera: str) -> datetime | None:
    state = streams.get(camera) if streams is not None else None
    return state.last_seen if state is not None else None
