"""Alerts and their lifecycle. A machine raises an alert; only an identified person decides what it was.

raised ──adjudicate(confirmed, two-person)──▶ awaiting_verification ──verify(agree)──▶ adjudicated
   │                                               │
   │                                               └──verify(disagree)──▶ raised (decide afresh)
   └──adjudicate(any other outcome, or confirmed without two-person rule)──▶ adjudicated
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from lfr.domain.errors import AlreadyAdjudicated, Conflict, InvalidInput, PermissionDenied
from lfr.domain.matching import Candidate


class AlertState(StrEnum):
    RAISED = "raised"
    AWAITING_VERIFICATION = "awaiting_verification"
    ADJUDICATED = "adjudicated"


@dataclass(frozen=True, slots=True)
class TrackIdentity:
    """Whose faces one alert gathers: at most one alert per identity, whichever replica sees the track
    (the store enforces it). A node process names one session and its tracker one random track-id
    prefix, so a node restarted mid-track starts new tracks."""

    window_id: str
    camera_id: str
    node_session: str  # "" for a node that names none: its tracks still gather, as one session
    track_id: str
    subject_id: str


def node_session(source_ref: str | None) -> str:
    """The node session of an observation's "{node session}:{seq}" ("" when it named none)."""
    return source_ref.rpartition(":")[0] if source_ref else ""


class Adjudication(StrEnum):
    CONFIRMED = "confirmed"  # the person was the listed subject and was engaged
    FALSE_ALERT = "false_alert"  # the person was not the listed subject
    NOT_ENGAGED = "not_engaged"  # could not locate or chose not to engage


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    window_id: str
    camera_id: str
    track_id: str
    subject_id: str
    score: float
    threshold: float
    candidates: tuple[Candidate, ...]
    captured_at: datetime
    raised_at: datetime
    crop_jpeg: bytes
    model_id: str
    sequence: int = 0  # assigned by the store; lets subscribers catch up after a disconnect
    state: AlertState = AlertState.RAISED
    outcome: Adjudication | None = None
    adjudicated_by: str | None = None
    adjudicated_at: datetime | None = None
    notes: str = ""
    verified_by: str | None = None
    verified_at: datetime | None = None
    version: int = 1
    source_ref: str | None = None  # the observation's "{node session}:{seq}"; unique per camera when set
    # Store-wide change number, assigned on every add and update: feeds follow alerts by it, so a decision
    # made anywhere reaches every subscriber, and a reconnecting one resumes after the last it saw.
    revision: int = 0
    amended_by: str | None = None  # a supervisor who changed the recorded outcome afterwards
    amended_at: datetime | None = None
    amendment_reason: str = ""
    # Later faces of the same track matched to the same subject update this alert instead of raising
    # another (issue 10): how many faces, and when the first and the latest were captured.
    sightings: int = 1
    first_seen_at: datetime | None = None  # None: only `captured_at`'s face (alerts from before)
    last_seen_at: datetime | None = None

    @property
    def track_identity(self) -> TrackIdentity | None:
        """None for an alert from an observation that named no track: those are never gathered."""
        if not self.track_id:
            return None
        return TrackIdentity(
            self.window_id, self.camera_id, node_session(self.source_ref), self.track_id, self.subject_id
        )

    def seen_again(
        self, score: float, candidates: tuple[Candidate, ...], crop_jpeg: bytes, captured_at: datetime
    ) -> Alert:
        """Another face of this alert's track matched its subject. A better-scoring face replaces the
        crop, score and candidates officers see; the count and the seen-from/to times always grow. Only
        an alert nobody has decided on yet changes: a decision is about the evidence it was shown."""
        if self.state is not AlertState.RAISED:
            raise AlreadyAdjudicated(f"alert {self.id} is {self.state}; its evidence is fixed")
        first = min(self.first_seen_at or self.captured_at, captured_at)
        last = max(self.last_seen_at or self.captured_at, captured_at)
        better = score > self.score
        return dataclasses.replace(
            self,
            score=score if better else self.score,
            candidates=candidates if better else self.candidates,
            crop_jpeg=crop_jpeg if better else self.crop_jpeg,
            captured_at=captured_at if better else self.captured_at,
            sightings=self.sightings + 1,
            first_seen_at=first,
            last_seen_at=last,
            version=self.version + 1,
        )

    def adjudicate(
        self, outcome: Adjudication, by: str, at: datetime, notes: str = "", two_person: bool = False
    ) -> Alert:
        if self.state is not AlertState.RAISED:
            raise AlreadyAdjudicated(
                f"alert {self.id} was already adjudicated by {self.adjudicated_by} as {self.outcome}"
            )
        needs_second = two_person and outcome is Adjudication.CONFIRMED
        return dataclasses.replace(
            self,
            state=AlertState.AWAITING_VERIFICATION if needs_second else AlertState.ADJUDICATED,
            outcome=outcome,
            adjudicated_by=by,
            adjudicated_at=at,
            notes=notes,
            version=self.version + 1,
        )

    def amend(self, outcome: Adjudication, by: str, at: datetime, reason: str) -> Alert:
        """A supervisor corrects a decided alert's outcome; the original decider stays on record."""
        if self.state is AlertState.RAISED:
            raise Conflict(f"alert {self.id} has not been decided yet; adjudicate it instead")
        if not reason.strip():
            raise InvalidInput("amending a decision needs a reason")
        return dataclasses.replace(
            self,
            state=AlertState.ADJUDICATED,
            outcome=outcome,
            amended_by=by,
            amended_at=at,
            amendment_reason=reason.strip(),
            version=self.version + 1,
        )

    def verify(self, by: str, at: datetime, agree: bool) -> Alert:
        if self.state is not AlertState.AWAITING_VERIFICATION:
            raise Conflict(f"alert {self.id} is {self.state}; nothing awaits verification")
        if by == self.adjudicated_by:
            raise PermissionDenied("the second verifier must be a different person from the first")
        if agree:
            return dataclasses.replace(
                self, state=AlertState.ADJUDICATED, verified_by=by, verified_at=at, version=self.version + 1
            )
        return dataclasses.replace(
            self,
            state=AlertState.RAISED,
            outcome=None,
            adjudicated_by=None,
            adjudicated_at=None,
            notes="",
            version=self.version + 1,
        )
