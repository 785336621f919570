"""Building, sealing and destroying the watchlist a deployment matches against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.embedding import normalised_rows, require_model
from lfr.domain.errors import InvalidInput
from lfr.domain.limits import MAX_ID, MAX_LINE, MAX_TEXT, require_length
from lfr.domain.ports import UnitOfWork, UnitOfWorkFactory
from lfr.domain.principal import Principal, Role
from lfr.domain.watchlist import EnrolledSubject, Subject, Watchlist, content_hash
from lfr.services.ids import new_id


@dataclass(frozen=True, slots=True)
class SubjectSpec:
    reference: str
    display_name: str
    category: str
    reason: str
    image_source: str
    reference_image_jpeg: bytes | None = None


class WatchlistService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def create(self, name: str, model_id: str, dimension: int, actor: Principal) -> Watchlist:
        actor.require(Role.ADMIN, Role.SUPERVISOR)
        if not name.strip() or not model_id.strip():
            raise InvalidInput("a watchlist needs a name and the id of the model its embeddings come from")
        require_length("name", name, MAX_LINE)
        require_length("model_id", model_id, MAX_ID)
        if not 1 <= dimension <= 4096:
            raise InvalidInput(f"dimension {dimension} is outside 1..4096")
        now = self._clock.now()
        watchlist = Watchlist(new_id("wl"), name.strip(), model_id, dimension, actor.name, now)
        with self._uow() as uow:
            uow.watchlists.add(watchlist)
            uow.audit.append(
                AuditEvent(
                    AuditAction.WATCHLIST_CREATED,
                    actor.name,
                    "watchlist",
                    watchlist.id,
                    now,
                    {"name": watchlist.name, "model_id": model_id, "dimension": dimension},
                )
            )
            uow.commit()
        return watchlist

    def add_subject(
        self, watchlist_id: str, spec: SubjectSpec, embeddings: np.ndarray, model_id: str, actor: Principal
    ) -> Subject:
        actor.require(Role.ADMIN, Role.SUPERVISOR)
        if not spec.reference.strip():
            raise InvalidInput("a subject needs the force's reference")
        require_length("reference", spec.reference, MAX_ID)
        for field in ("display_name", "category", "image_source"):
            require_length(field, getattr(spec, field), MAX_LINE)
        require_length("reason", spec.reason, MAX_TEXT)
        with self._uow() as uow:
            watchlist = uow.watchlists.get(watchlist_id)
            watchlist.require_editable()
            require_model(model_id, watchlist.model_id)
            rows = normalised_rows(embeddings, watchlist.dimension)
            subject = Subject(
                id=new_id("sub"),
                watchlist_id=watchlist_id,
                reference=spec.reference.strip(),
                display_name=spec.display_name,
                category=spec.category,
                reason=spec.reason,
                image_source=spec.image_source,
                reference_image_jpeg=spec.reference_image_jpeg,
            )
            uow.watchlists.add_subject(subject, rows)
            uow.audit.append(
                AuditEvent(
                    AuditAction.WATCHLIST_SUBJECT_ADDED,
                    actor.name,
                    "watchlist",
                    watchlist_id,
                    self._clock.now(),
                    {
                        "subject_id": subject.id,
                        "reference": subject.reference,
                        "category": subject.category,
                        "embeddings": int(rows.shape[0]),
                        "image_source": subject.image_source,
                    },
                )
            )
            uow.commit()
        return subject

    def remove_subject(self, watchlist_id: str, subject_id: str, actor: Principal) -> None:
        actor.require(Role.ADMIN, Role.SUPERVISOR)
        with self._uow() as uow:
            uow.watchlists.get(watchlist_id).require_editable()
            uow.watchlists.remove_subject(watchlist_id, subject_id)
            uow.audit.append(
                AuditEvent(
                    AuditAction.WATCHLIST_SUBJECT_REMOVED,
                    actor.name,
                    "watchlist",
                    watchlist_id,
                    self._clock.now(),
                    {"subject_id": subject_id},
                )
            )
            uow.commit()

    def seal(self, watchlist_id: str, actor: Principal) -> Watchlist:
        actor.require(Role.ADMIN, Role.SUPERVISOR)
        with self._uow() as uow:
            watchlist = uow.watchlists.get(watchlist_id)
            watchlist.require_editable()
            enrolled = enrolled_subjects(
                uow.watchlists.subjects(watchlist_id), *uow.watchlists.embeddings(watchlist_id)
            )
            if not enrolled:
                raise InvalidInput(
                    f"watchlist {watchlist_id} has no subjects; an empty list cannot be sealed"
                )
            digest = content_hash(watchlist.model_id, watchlist.dimension, enrolled)
            sealed = watchlist.seal(digest, self._clock.now())
            uow.watchlists.update(sealed)
            uow.audit.append(
                AuditEvent(
                    AuditAction.WATCHLIST_SEALED,
                    actor.name,
                    "watchlist",
                    watchlist_id,
                    self._clock.now(),
                    {
                        "content_hash": digest,
                        "subjects": len(enrolled),
                        "embeddings": sum(int(e.embeddings.shape[0]) for e in enrolled),
                    },
                )
            )
            uow.commit()
        return sealed

    def destroy(self, watchlist_id: str, actor: Principal, reason: str = "") -> Watchlist:
        actor.require(Role.ADMIN, Role.SUPERVISOR)
        require_length("reason", reason, MAX_TEXT)
        with self._uow() as uow:
            destroyed = destroy_watchlist(uow, watchlist_id, actor.name, reason, self._clock.now())
            uow.commit()
        return destroyed

    def get(self, watchlist_id: str) -> Watchlist:
        with self._uow() as uow:
            return uow.watchlists.get(watchlist_id)

    def list_watchlists(self) -> list[Watchlist]:
        with self._uow() as uow:
            return uow.watchlists.all()

    def subjects(self, watchlist_id: str) -> list[Subject]:
        with self._uow() as uow:
            return uow.watchlists.subjects(watchlist_id)

    def subject(self, watchlist_id: str, subject_id: str) -> Subject:
        with self._uow() as uow:
            return uow.watchlists.get_subject(watchlist_id, subject_id)


def enrolled_subjects(
    subjects: list[Subject], subject_of_row: list[str], vectors: np.ndarray
) -> list[EnrolledSubject]:
    rows_by_subject: dict[str, list[int]] = {}
    for row, subject_id in enumerate(subject_of_row):
        rows_by_subject.setdefault(subject_id, []).append(row)
    return [EnrolledSubject(s, _rows(vectors, rows_by_subject.get(s.id, []))) for s in subjects]


def _rows(vectors: np.ndarray, rows: list[int]) -> np.ndarray:
    """The rows as a slice (a view, no copy) when they are contiguous, as stores return them."""
    if rows and rows[-1] - rows[0] + 1 == len(rows):
        return vectors[rows[0] : rows[-1] + 1]
    return vectors[rows]


def destroy_watchlist(
    uow: UnitOfWork, watchlist_id: str, actor: str, reason: str, now: datetime
) -> Watchlist:
    """Shared by the explicit destroy and the retention purge; runs inside the caller's unit of work."""
    destroyed = uow.watchlists.get(watchlist_id).destroy(now)
    erased = uow.watchlists.erase_content(watchlist_id)
    uow.watchlists.update(destroyed)
    uow.audit.append(
        AuditEvent(
            AuditAction.WATCHLIST_DESTROYED,
            actor,
            "watchlist",
            watchlist_id,
            now,
            {"subjects_erased": erased, "reason": reason},
        )
    )
    return destroyed
