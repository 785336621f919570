"""A process-local store with real transaction semantics (all or nothing), for tests and dry runs."""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import numpy as np

from lfr.domain.alert import Alert, TrackIdentity
from lfr.domain.audit import AuditEvent, AuditRecord, ChainHead, next_record
from lfr.domain.checkpoint import Checkpoint
from lfr.domain.errors import Conflict, InvalidInput, NotFound, StaleUpdate
from lfr.domain.evaluation import EvaluationSummary
from lfr.domain.ports import (
    AlertRepository,
    AuditLog,
    CounterRepository,
    EvaluationRepository,
    PrincipalRepository,
    WatchlistRepository,
    WindowRepository,
)
from lfr.domain.principal import Credentials, Principal
from lfr.domain.watchlist import Subject, TemplateImage, Watchlist
from lfr.domain.window import DeploymentWindow, WindowState


@dataclass
class MemoryState:
    windows: dict[str, DeploymentWindow] = field(default_factory=dict)
    watchlists: dict[str, Watchlist] = field(default_factory=dict)
    subjects: dict[str, Subject] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # by subject id
    templates: dict[str, list[TemplateImage]] = field(default_factory=dict)  # by subject id
    alerts: dict[str, Alert] = field(default_factory=dict)
    alert_sequence: int = 0
    alert_revision: int = 0
    audit: list[AuditRecord] = field(default_factory=list)
    head: ChainHead | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    counters: dict[tuple[str, str, str], int] = field(default_factory=dict)
    principals: dict[str, Principal] = field(default_factory=dict)
    token_hashes: dict[str, str] = field(default_factory=dict)  # hash -> principal name
    token_expiry: dict[str, datetime] = field(default_factory=dict)  # principal name -> token expiry
    password_hashes: dict[str, str] = field(default_factory=dict)
    evaluations: dict[str, EvaluationSummary] = field(default_factory=dict)


class MemoryStore:
    def __init__(self) -> None:
        self.state = MemoryState()
        self.lock = threading.RLock()

    def __call__(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    def seal_plaintext_images(self) -> int:
        """Nothing is at rest; present so MemoryStore satisfies the Store protocol."""
        return 0

    def scrub(self) -> bool:
        """Nothing is on disk; present so MemoryStore satisfies the Store protocol."""
        return True

    def close(self) -> None:
        """Nothing to release; present so MemoryStore satisfies the Store protocol."""


class MemoryUnitOfWork:
    windows: WindowRepository
    watchlists: WatchlistRepository
    alerts: AlertRepository
    audit: AuditLog
    counters: CounterRepository
    principals: PrincipalRepository
    evaluations: EvaluationRepository

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def __enter__(self) -> Self:
        self._store.lock.acquire()
        self._begin()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._store.lock.release()

    def commit(self) -> None:
        self._store.state = self._state
        self._begin()

    def rollback(self) -> None:
        self._begin()

    def _begin(self) -> None:
        """Works on shallow copies so an uncommitted change never touches the store's state."""
        self._state = copy.copy(self._store.state)
        for name in (
            "windows",
            "watchlists",
            "subjects",
            "embeddings",
            "templates",
            "alerts",
            "counters",
            "principals",
            "token_hashes",
            "password_hashes",
        ):
            setattr(self._state, name, dict(getattr(self._state, name)))
        self._state.audit = list(self._state.audit)
        self._state.checkpoints = list(self._state.checkpoints)
        self.windows = _Windows(self._state)
        self.watchlists = _Watchlists(self._state)
        self.alerts = _Alerts(self._state)
        self.audit = _Audit(self._state)
        self.counters = _Counters(self._state)
        self.principals = _Principals(self._state)
        self.evaluations = _Evaluations(self._state)


class _Windows:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, window: DeploymentWindow) -> None:
        if window.id in self._s.windows:
            raise Conflict(f"window {window.id} exists")
        self._s.windows[window.id] = window

    def get(self, window_id: str) -> DeploymentWindow:
        try:
            return self._s.windows[window_id]
        except KeyError:
            raise NotFound(f"no window {window_id}") from None

    def update(self, window: DeploymentWindow) -> None:
        if self.get(window.id).version != window.version - 1:
            raise StaleUpdate(f"window {window.id} changed concurrently")
        self._s.windows[window.id] = window

    def find(self, states: Sequence[WindowState] | None = None) -> list[DeploymentWindow]:
        found = [w for w in self._s.windows.values() if states is None or w.state in states]
        return sorted(found, key=lambda w: (w.created_at, w.id))


class _Watchlists:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, watchlist: Watchlist) -> None:
        if watchlist.id in self._s.watchlists:
            raise Conflict(f"watchlist {watchlist.id} exists")
        self._s.watchlists[watchlist.id] = watchlist

    def get(self, watchlist_id: str) -> Watchlist:
        try:
            return self._s.watchlists[watchlist_id]
        except KeyError:
            raise NotFound(f"no watchlist {watchlist_id}") from None

    def update(self, watchlist: Watchlist) -> None:
        self.get(watchlist.id)
        self._s.watchlists[watchlist.id] = watchlist

    def all(self) -> list[Watchlist]:
        return sorted(self._s.watchlists.values(), key=lambda w: (w.created_at, w.id))

    def add_subject(
        self, subject: Subject, embeddings: np.ndarray, templates: Sequence[TemplateImage] = ()
    ) -> None:
        self.get(subject.watchlist_id)
        if subject.id in self._s.subjects:
            raise Conflict(f"subject {subject.id} exists")
        if templates and len(templates) != len(embeddings):
            raise InvalidInput(f"{len(templates)} template images for {len(embeddings)} embeddings")
        self._s.subjects[subject.id] = subject
        self._s.embeddings[subject.id] = np.array(embeddings, dtype=np.float32, copy=True)
        if templates:
            self._s.templates[subject.id] = list(templates)

    def templates(self, watchlist_id: str) -> dict[str, list[TemplateImage]]:
        return {
            s.id: list(self._s.templates[s.id])
            for s in self.subjects(watchlist_id)
            if s.id in self._s.templates
        }

    def subject_templates(self, watchlist_id: str, subject_id: str) -> list[TemplateImage]:
        self.get_subject(watchlist_id, subject_id)
        return list(self._s.templates.get(subject_id, ()))

    def remove_subject(self, watchlist_id: str, subject_id: str) -> None:
        self.get_subject(watchlist_id, subject_id)
        del self._s.subjects[subject_id]
        del self._s.embeddings[subject_id]
        self._s.templates.pop(subject_id, None)

    def get_subject(self, watchlist_id: str, subject_id: str) -> Subject:
        subject = self._s.subjects.get(subject_id)
        if subject is None or subject.watchlist_id != watchlist_id:
            raise NotFound(f"no subject {subject_id} in watchlist {watchlist_id}")
        return subject

    def subjects(self, watchlist_id: str) -> list[Subject]:
        return sorted(
            (s for s in self._s.subjects.values() if s.watchlist_id == watchlist_id), key=lambda s: s.id
        )

    def embeddings(self, watchlist_id: str) -> tuple[list[str], np.ndarray]:
        watchlist = self.get(watchlist_id)
        subject_of_row: list[str] = []
        blocks = []
        for subject in self.subjects(watchlist_id):
            block = self._s.embeddings[subject.id]
            subject_of_row += [subject.id] * block.shape[0]
            blocks.append(block)
        if not blocks:
            return [], np.zeros((0, watchlist.dimension), dtype=np.float32)
        return subject_of_row, np.concatenate(blocks).astype(np.float32)

    def erase_content(self, watchlist_id: str) -> int:
        doomed = [s.id for s in self.subjects(watchlist_id)]
        for subject_id in doomed:
            del self._s.embeddings[subject_id]
            self._s.templates.pop(subject_id, None)
            del self._s.subjects[subject_id]
        return len(doomed)


class _Alerts:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, alert: Alert) -> Alert:
        if alert.id in self._s.alerts:
            raise Conflict(f"alert {alert.id} exists")
        source_ref = alert.source_ref
        if source_ref is not None and self.find_by_source(alert.camera_id, source_ref) is not None:
            raise Conflict(f"an alert for this observation of camera {alert.camera_id} exists")
        identity = alert.track_identity
        if identity is not None and self.find_for_track(identity) is not None:
            raise Conflict(
                f"track {alert.track_id} of camera {alert.camera_id} has an alert for this subject"
            )
        self._s.alert_sequence += 1
        self._s.alert_revision += 1
        stored = dataclasses.replace(alert, sequence=self._s.alert_sequence, revision=self._s.alert_revision)
        self._s.alerts[alert.id] = stored
        return stored

    def get(self, alert_id: str) -> Alert:
        try:
            return self._s.alerts[alert_id]
        except KeyError:
            raise NotFound(f"no alert {alert_id}") from None

    def find_by_source(self, camera_id: str, source_ref: str) -> Alert | None:
        return next(
            (a for a in self._s.alerts.values() if a.camera_id == camera_id and a.source_ref == source_ref),
            None,
        )

    def find_for_track(self, identity: TrackIdentity) -> Alert | None:
        found = next((a for a in self._s.alerts.values() if a.track_identity == identity), None)
        return dataclasses.replace(found, crop_jpeg=b"") if found is not None else None

    def find_for_subject(
        self, window_id: str, subject_id: str, up_to_sequence: int, limit: int = 1000
    ) -> list[Alert]:
        found = sorted(
            (
                a
                for a in self._s.alerts.values()
                if a.window_id == window_id and a.subject_id == subject_id and a.sequence <= up_to_sequence
            ),
            key=lambda a: a.sequence,
        )
        return [dataclasses.replace(a, crop_jpeg=b"") for a in found[-limit:]] if limit > 0 else []

    def update(self, alert: Alert) -> Alert:
        stored = self.get(alert.id)
        if stored.version != alert.version - 1:
            raise StaleUpdate(f"alert {alert.id} changed concurrently")
        self._s.alert_revision += 1
        updated = dataclasses.replace(
            alert,
            sequence=stored.sequence,
            revision=self._s.alert_revision,
            crop_jpeg=alert.crop_jpeg or stored.crop_jpeg,  # as the SQL store: no crop keeps the stored one
        )
        self._s.alerts[alert.id] = updated
        return updated

    def changed_since(
        self, after_revision: int, window_ids: Sequence[str] | None = None, limit: int = 100
    ) -> list[Alert]:
        found = [
            a
            for a in self._s.alerts.values()
            if a.revision > after_revision and (window_ids is None or a.window_id in window_ids)
        ]
        changed = sorted(found, key=lambda a: a.revision)[: max(limit, 0)]
        return [dataclasses.replace(a, crop_jpeg=b"") for a in changed]

    def last_revision(self) -> int:
        return self._s.alert_revision

    def find(
        self, window_ids: Sequence[str] | None = None, after_sequence: int = 0, limit: int = 100
    ) -> list[Alert]:
        found = [
            a
            for a in self._s.alerts.values()
            if a.sequence > after_sequence and (window_ids is None or a.window_id in window_ids)
        ]
        return [
            dataclasses.replace(a, crop_jpeg=b"") for a in sorted(found, key=lambda a: a.sequence)[:limit]
        ]

    def purge_raised_before(self, cutoff: datetime) -> int:
        doomed = [a.id for a in self._s.alerts.values() if a.raised_at < cutoff]
        for alert_id in doomed:
            del self._s.alerts[alert_id]
        return len(doomed)


class _Audit:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def append(self, event: AuditEvent) -> AuditRecord:
        record = next_record(self._s.audit[-1] if self._s.audit else None, event)
        self._s.audit.append(record)
        self._s.head = ChainHead(record.seq, record.hash)
        return record

    def records(self, from_seq: int = 1) -> Iterator[AuditRecord]:
        return iter([r for r in self._s.audit if r.seq >= from_seq])

    def head(self) -> ChainHead | None:
        return self._s.head

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._s.checkpoints.append(checkpoint)

    def checkpoints(self, from_seq: int = 1) -> list[Checkpoint]:
        return [c for c in self._s.checkpoints if c.seq >= from_seq]


class _Counters:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def increment(self, counts: dict[tuple[str, str, str], int]) -> None:
        for key, n in counts.items():
            self._s.counters[key] = self._s.counters.get(key, 0) + n

    def totals(self, window_id: str | None = None) -> dict[tuple[str, str, str], int]:
        return {k: n for k, n in self._s.counters.items() if window_id is None or k[0] == window_id}


class _Principals:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, principal: Principal) -> None:
        if principal.name in self._s.principals:
            raise Conflict(f"{principal.name} already exists")
        self._s.principals[principal.name] = principal

    def get(self, name: str) -> Principal:
        try:
            return self._s.principals[name]
        except KeyError:
            raise NotFound(f"no account {name}") from None

    def update(self, principal: Principal) -> None:
        stored = self.get(principal.name)
        # As in SQL: only end_sessions moves the generation, so an account edit cannot undo a sign-out.
        self._s.principals[principal.name] = replace(principal, session_generation=stored.session_generation)

    def all(self) -> list[Principal]:
        return sorted(self._s.principals.values(), key=lambda p: p.name)

    def set_token_hash(self, name: str, token_hash: str | None, expires_at: datetime | None = None) -> None:
        self.get(name)
        for old in [h for h, n in self._s.token_hashes.items() if n == name]:
            del self._s.token_hashes[old]
        self._s.token_expiry.pop(name, None)
        if token_hash is not None:
            self._s.token_hashes[token_hash] = name
            if expires_at is not None:
                self._s.token_expiry[name] = expires_at.astimezone(UTC)  # as the SQL stores hand it back

    def find_token(self, token_hash: str) -> Credentials | None:
        name = self._s.token_hashes.get(token_hash)
        if name is None or name not in self._s.principals:
            return None
        return Credentials(self._s.principals[name], token_hash, self._s.token_expiry.get(name))

    def remove(self, name: str) -> None:
        self.set_token_hash(name, None)
        del self._s.principals[name]
        self._s.password_hashes.pop(name, None)

    def credentials(self) -> dict[str, Credentials]:
        hashes = {n: h for h, n in self._s.token_hashes.items()}
        return {
            name: Credentials(p, hashes.get(name), self._s.token_expiry.get(name))
            for name, p in self._s.principals.items()
        }

    def find_by_token_hash(self, token_hash: str) -> Principal | None:
        name = self._s.token_hashes.get(token_hash)
        return self._s.principals.get(name) if name else None

    def set_password_hash(self, name: str, password_hash: str) -> None:
        self.get(name)
        self._s.password_hashes[name] = password_hash

    def password_hash(self, name: str) -> str | None:
        return self._s.password_hashes.get(name)

    def end_sessions(self, name: str) -> int:
        stored = self.get(name)
        self._s.principals[name] = replace(stored, session_generation=stored.session_generation + 1)
        return stored.session_generation + 1


class _Evaluations:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, summary: EvaluationSummary) -> None:
        if summary.id in self._s.evaluations:
            raise Conflict(f"evaluation {summary.id} exists")
        self._s.evaluations[summary.id] = summary

    def for_model(self, model_id: str) -> list[EvaluationSummary]:
        found = [e for e in self._s.evaluations.values() if e.model_id == model_id]
        return sorted(found, key=lambda e: e.recorded_at, reverse=True)
