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
