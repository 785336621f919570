"""Deployment windows and the arming gate: the matcher is armed for a camera only inside an authorised,
unclosed window that lists that camera. Everything else, including not knowing, means disarmed."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from lfr.domain.errors import Conflict, InvalidInput, InvalidWindow
from lfr.domain.limits import MAX_ID, MAX_LINE, MAX_TEXT, require_length, require_lengths

MAX_WINDOW_LENGTH = timedelta(hours=24)


class WindowState(StrEnum):
    PENDING = "pending"  # created, awaiting an authorising officer
    AUTHORISED = "authorised"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """What a requester asks for; becomes a DeploymentWindow once validated."""

    purpose: str
    legal_basis: str
    location: str
    camera_ids: frozenset[str]
    watchlist_id: str
    threshold: float
    starts_at: datetime
    ends_at: datetime
    assigned_users: frozenset[str] = frozenset()

    def validate(self) -> None:
        problems = []
        if not self.purpose.strip():
            problems.append("purpose is required")
        if not self.legal_basis.strip():
            problems.append("legal basis is required")
        if not self.location.strip():
            problems.append("location is required")
        if not self.camera_ids or any(not c.strip() for c in self.camera_ids):
            problems.append("at least one non-empty camera id is required")
        if not 0.0 <= self.threshold <= 1.0 or self.threshold != self.threshold:
            problems.append(f"threshold {self.threshold} is outside [0, 1]")
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            problems.append("start and end must be timezone-aware")
        elif self.ends_at <= self.starts_at:
            problems.append("end must be after start")
        elif self.ends_at - self.starts_at > MAX_WINDOW_LENGTH:
            problems.append(f"a window may last at most {MAX_WINDOW_LENGTH}")
        try:
            require_length("purpose", self.purpose, MAX_TEXT)
            require_length("legal_basis", self.legal_basis, MAX_TEXT)
            require_length("location", self.location, MAX_LINE)
            require_length("watchlist_id", self.watchlist_id, MAX_ID)
            require_lengths("camera_ids", self.camera_ids, MAX_ID)
            require_lengths("assigned_users", self.assigned_users, MAX_ID)
        except InvalidInput as exc:
            problems.append(str(exc))
        if problems:
            raise InvalidWindow("; ".join(problems))


@dataclass(frozen=True, slots=True)
class DeploymentWindow:
    id: str
    purpose: str
    legal_basis: str
    location: str
    camera_ids: frozenset[str]
    watchlist_id: str
    watchlist_hash: str
    model_id: str
    threshold: float
    starts_at: datetime
    ends_at: datetime
    created_by: str
    created_at: datetime
    state: WindowState = WindowState.PENDING
    assigned_users: frozenset[str] = frozenset()
    authorised_by: str | None = None
    authorised_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    close_reason: str = ""
    armed_recorded: bool = False  # whether the audit log last recorded this window as armed
    version: int = 1

    def is_armed(self, now: datetime) -> bool:
        return self.state is WindowState.AUTHORISED and self.starts_at <= now < self.ends_at

    def has_expired(self, now: datetime) -> bool:
        return now >= self.ends_at

    def authorise(self, by: str, at: datetime) -> DeploymentWindow:
        if self.state is not WindowState.PENDING:
            raise Conflict(f"window {self.id} is {self.state}, only a pending window can be authorised")
        if self.has_expired(at):
            raise Conflict(f"window {self.id} ended at {self.ends_at.isoformat()}; it cannot be authorised")
        return dataclasses.replace(
            self, state=WindowState.AUTHORISED, authorised_by=by, authorised_at=at, version=self.version + 1
        )

    def close(self, by: str, at: datetime, reason: str) -> DeploymentWindow:
        if self.state is WindowState.CLOSED:
            raise Conflict(f"window {self.id} is already closed")
        return dataclasses.replace(
            self,
            state=WindowState.CLOSED,
            closed_by=by,
            closed_at=at,
            close_reason=reason,
            version=self.version + 1,
        )

    def overlaps(self, other: DeploymentWindow) -> bool:
        return (
            bool(self.camera_ids & other.camera_ids)
            and self.starts_at < other.ends_at
            and other.starts_at < self.ends_at
        )


class ArmingGate:
    """A snapshot of the live windows answering 'which window, if any, arms this camera now?'.

    Built from whatever the store last returned; callers replace it with `ArmingGate.disarmed()`
    when the store cannot be read, so an unknown state can never arm a camera.
    """

    def __init__(self, windows: Iterable[DeploymentWindow]) -> None:
        self._by_camera: dict[str, list[DeploymentWindow]] = {}
        for window in windows:
            if window.state is not WindowState.AUTHORISED:
                continue
            for camera in window.camera_ids:
                self._by_camera.setdefault(camera, []).append(window)

    @classmethod
    def disarmed(cls) -> ArmingGate:
        return cls(())

    def armed_window(self, camera_id: str, now: datetime) -> DeploymentWindow | None:
        armed = [w for w in self._by_camera.get(camera_id, ()) if w.is_armed(now)]
        # Authorisation refuses overlaps, so two armed windows mean the store is inconsistent: fail closed.
        return armed[0] if len(armed) == 1 else None

    def windows(self) -> list[DeploymentWindow]:
        seen = {w.id: w for ws in self._by_camera.values() for w in ws}
        return list(seen.values())
