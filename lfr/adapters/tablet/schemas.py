"""JSON shapes of the tablet API (pydantic at the edge; the core keeps its dataclasses)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from lfr.domain.alert import Adjudication, AlertState
from lfr.domain.audit import AuditRecord
from lfr.domain.limits import MAX_VERSION
from lfr.domain.principal import Principal, Role
from lfr.domain.window import DeploymentWindow, WindowState
from lfr.services.alert_views import AlertCard, explain_score
from lfr.services.deployment_overview import WindowOverview

MAX_NOTES = 2000


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdjudicationIn(Body):
    outcome: Adjudication
    notes: str = Field(default="", max_length=MAX_NOTES)
    expected_version: int = Field(
        ge=1, le=MAX_VERSION, description="the alert version the officer was looking at"
    )


class AmendmentIn(Body):
    outcome: Adjudication
    reason: str = Field(min_length=1, max_length=MAX_NOTES, description="why the decision is changed")
    expected_version: int = Field(ge=1)


class CloseWindowIn(Body):
    reason: str = Field(min_length=1, max_length=MAX_NOTES, description="recorded in the audit trail")


class VerificationIn(Body):
    agree: bool = Field(description="true: the second officer confirms the match; false: decide afresh")
    expected_version: int = Field(ge=1, le=MAX_VERSION)


class SubjectOut(BaseModel):
    reference: str
    name: str
    category: str
    reason: str


class ReferenceImageOut(BaseModel):
    url: str
    provenance: str = Field(description="where the image came from (custody image, passport, ...)")


class AlertOut(BaseModel):
    id: str
    sequence: int
    version: int
    window_id: str
    camera_id: str
    location: str
    subject: SubjectOut
    score: float
    threshold: float
    captured_at: datetime
    raised_at: datetime
    state: AlertState
    outcome: Adjudication | None
    adjudicated_by: str | None
    adjudicated_at: datetime | None
    notes: str
    verified_by: str | None
    verified_at: datetime | None
    amended_by: str | None
    amended_at: datetime | None
    amendment_reason: str
    revision: int = Field(description="store-wide change number of this version of the alert")
    sightings: int = Field(description="faces of this passage (track) matched to the subject (issue 10)")
    first_seen_at: datetime = Field(description="capture time of the passage's first matching face")
    last_seen_at: datetime = Field(description="capture time of its latest matching face")
    score_words: str = Field(description="what the score means, in words, for the officer")
    crop_url: str = Field(description="probe crop; each fetch is an audited consultation")
    reference_url: str | None = Field(description="the watchlist's reference image, if it has one")
    reference_images: list[ReferenceImageOut] = Field(
        description="every reference image of the subject (the first is `reference_url`)"
    )
    group_id: str = Field(
        description="the first alert of its group: repeat sightings of the subject in the window within "
        "`tablet.group_interval_seconds` share one card (this alert's own id when alone)"
    )

    @classmethod
    def of(cls, card: AlertCard) -> AlertOut:
        a = card.alert
        base = f"/api/alerts/{a.id}"
        return cls(
            id=a.id,
            sequence=a.sequence,
            version=a.version,
            window_id=a.window_id,
            camera_id=a.camera_id,
            location=card.location,
            subject=SubjectOut(
                reference=card.subject_reference,
                name=card.subject_name,
                category=card.category,
                reason=card.reason,
            ),
            score=a.score,
            threshold=a.threshold,
            captured_at=a.captured_at,
            raised_at=a.raised_at,
            state=a.state,
            outcome=a.outcome,
            adjudicated_by=a.adjudicated_by,
            adjudicated_at=a.adjudicated_at,
            notes=a.notes,
            verified_by=a.verified_by,
            verified_at=a.verified_at,
            amended_by=a.amended_by,
            amended_at=a.amended_at,
            amendment_reason=a.amendment_reason,
            revision=a.revision,
            sightings=a.sightings,
            first_seen_at=a.first_seen_at or a.captured_at,
            last_seen_at=a.last_seen_at or a.captured_at,
            score_words=explain_score(a.score, a.threshold),
            crop_url=f"{base}/crop.jpg",
            reference_url=f"{base}/reference.jpg" if card.has_reference_image else None,
            reference_images=[
                ReferenceImageOut(url=f"{base}/reference/{n}", provenance=provenance)
                for n, provenance in enumerate(card.reference_provenances)
            ],
            group_id=card.group_id,
        )


class AlertPage(BaseModel):
    alerts: list[AlertOut]
    last_sequence: int = Field(description="resume the live feed after this sequence")
    server_now: datetime


class SessionOut(BaseModel):
    name: str
    roles: list[Role]
    csrf_token: str
    expires_at: datetime
    two_person_rule: bool


class WindowOut(BaseModel):
    id: str
    purpose: str
    legal_basis: str
    location: str
    state: WindowState
    armed: bool
    starts_at: datetime
    ends_at: datetime
    seconds_left: float | None
    threshold: float
    camera_ids: list[str]

    @classmethod
    def of(cls, window: DeploymentWindow, now: datetime) -> WindowOut:
        armed = window.is_armed(now)
        return cls(
            id=window.id,
            purpose=window.purpose,
            legal_basis=window.legal_basis,
            location=window.location,
            state=window.state,
            armed=armed,
            starts_at=window.starts_at,
            ends_at=window.ends_at,
            seconds_left=(window.ends_at - now).total_seconds() if armed else None,
            threshold=window.threshold,
            camera_ids=sorted(window.camera_ids),
        )


class CameraOut(BaseModel):
    camera_id: str
    connected: bool | None = Field(description="null when this process cannot see the matcher's streams")
    last_seen: datetime | None = Field(
        description="when the matcher last heard from this camera; null if not since it started"
    )
    last_activity: datetime | None
    faces_seen: int


class WindowOverviewOut(BaseModel):
    window: WindowOut
    cameras: list[CameraOut]
    faces_seen: int
    faces_discarded: int = Field(description="faces deleted at once: everything that raised no alert")
    faces_by_outcome: dict[str, int]
    alerts_by_outcome: dict[str, int]

    @classmethod
    def of(cls, o: WindowOverview, now: datetime) -> WindowOverviewOut:
        return cls(
            window=WindowOut.of(o.window, now).model_copy(update={"seconds_left": o.seconds_left}),
            cameras=[
                CameraOut(
                    camera_id=c.camera_id,
                    connected=c.connected,
                    last_seen=c.last_seen,
                    last_activity=c.last_activity,
                    faces_seen=c.faces_seen,
                )
                for c in o.cameras
            ],
            faces_seen=o.faces_seen,
            faces_discarded=o.faces_discarded,
            faces_by_outcome=o.faces_by_outcome,
            alerts_by_outcome=o.alerts_by_outcome,
        )


class OverviewOut(BaseModel):
    windows: list[WindowOverviewOut]
    server_now: datetime


class AuthorisationOut(BaseModel):
    window: WindowOut
    verdict: dict[str, object] = Field(
        description="what the authorisation policy (equity gate) recorded: its verdict, reasons, warnings"
    )


class ChainVerificationOut(BaseModel):
    ok: bool
    records_checked: int
    first_bad_seq: int | None
    reason: str


class AuditRecordOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    subject_kind: str
    subject_id: str
    details: dict[str, object]

    @classmethod
    def of(cls, r: AuditRecord) -> AuditRecordOut:
        return cls(
            seq=r.seq,
            at=r.at,
            actor=r.actor,
            action=r.action,
            subject_kind=r.subject_kind,
            subject_id=r.subject_id,
            details=r.details,
        )


def roles_of(principal: Principal) -> list[Role]:
    return sorted(principal.roles, key=lambda r: r.value)
