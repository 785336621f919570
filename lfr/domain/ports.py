"""The interfaces the core needs from the outside world. Adapters implement them; services depend on them.

Storage follows the unit-of-work pattern: one transaction spans a change and its audit record, so an
alert or a window transition is never durable without its audit entry, nor the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

import numpy as np

from lfr.domain.alert import Alert, TrackIdentity
from lfr.domain.audit import AuditEvent, AuditRecord, ChainHead
from lfr.domain.checkpoint import Checkpoint, SignatureChecker, Signer
from lfr.domain.evaluation import EvaluationSummary
from lfr.domain.matching import Candidate
from lfr.domain.principal import Credentials, Principal
from lfr.domain.watchlist import Subject, TemplateImage, Watchlist
from lfr.domain.window import DeploymentWindow, WindowState


class WindowRepository(Protocol):
    def add(self, window: DeploymentWindow) -> None: ...
    def get(self, window_id: str) -> DeploymentWindow:
        """Raises NotFound."""
        ...

    def update(self, window: DeploymentWindow) -> None:
        """Saves `window` if the stored version is `window.version - 1`, else raises StaleUpdate."""
        ...

    def find(self, states: Sequence[WindowState] | None = None) -> list[DeploymentWindow]: ...


class WatchlistRepository(Protocol):
    def add(self, watchlist: Watchlist) -> None: ...
    def get(self, watchlist_id: str) -> Watchlist: ...
    def update(self, watchlist: Watchlist) -> None: ...
    def all(self) -> list[Watchlist]: ...
    def add_subject(
        self, subject: Subject, embeddings: np.ndarray, templates: Sequence[TemplateImage] = ()
    ) -> None:
        """`embeddings` is (n, d) float32 with unit rows; `templates`, if given, one per row."""
        ...

    def templates(self, watchlist_id: str) -> dict[str, list[TemplateImage]]:
        """Each subject's template images, in row order (subjects enrolled without them are absent)."""
        ...

    def subject_templates(self, watchlist_id: str, subject_id: str) -> list[TemplateImage]:
        """One subject's template images, in row order; empty if it was enrolled without them."""
        ...

    def remove_subject(self, watchlist_id: str, subject_id: str) -> None: ...
    def get_subject(self, watchlist_id: str, subject_id: str) -> Subject: ...
    def subjects(self, watchlist_id: str) -> list[Subject]: ...
    def embeddings(self, watchlist_id: str) -> tuple[list[str], np.ndarray]:
        """Every enrolled embedding as (subject id per row, (n, d) float32), in a stable order."""
        ...

    def erase_content(self, watchlist_id: str) -> int:
        """Deletes subjects, images and embeddings; keeps the watchlist row. Returns subjects erased."""
        ...


class AlertRepository(Protocol):
    def add(self, alert: Alert) -> Alert:
        """Stores a new alert and returns it with its store-assigned `sequence`. Raises Conflict if its id,
        its camera and `source_ref` (when set), or its `track_identity` (when it has a track) are already
        stored, committed by anyone; the unit of work stays usable. So two replicas racing to raise the
        same track's alert store one: the other learns it here and updates that one instead."""
        ...

    def get(self, alert_id: str) -> Alert: ...
    def find_by_source(self, camera_id: str, source_ref: str) -> Alert | None:
        """The alert raised for this camera's observation `source_ref`, if any."""
        ...

    def find_for_track(self, identity: TrackIdentity) -> Alert | None:
        """The alert already raised for this track identity, if any. Like every listing, without its crop."""
        ...

    def find_for_subject(
        self, window_id: str, subject_id: str, up_to_sequence: int, limit: int = 1000
    ) -> list[Alert]:
        """The latest `limit` alerts of this window naming this subject, up to and including sequence
        `up_to_sequence`, oldest first (for grouping repeat sightings). Without crops, as `find`."""
        ...

    def update(self, alert: Alert) -> Alert:
        """Optimistic: raises StaleUpdate unless the stored version is `alert.version - 1`. Returns the
        alert as stored, with its new `revision`. An alert without a crop keeps the stored crop; one with a
        crop (a better face of the same track) replaces it."""
        ...

    def changed_since(
        self, after_revision: int, window_ids: Sequence[str] | None = None, limit: int = 100
    ) -> list[Alert]:
        """Alerts added or changed after `after_revision`, in revision order. Revisions become visible in
        order (a later one is never readable before an earlier one), so a reader that resumes after the
        last revision it saw misses nothing. Without crops (b""), as `find`."""
        ...

    def last_revision(self) -> int: ...

    def find(
        self, window_ids: Sequence[str] | None = None, after_sequence: int = 0, limit: int = 100
    ) -> list[Alert]:
        """Alerts in sequence order, optionally only for some windows, without their crops (b""): a
        crop is read (and decrypted) only by `get`, for a consultation that is audited."""
        ...

    def purge_raised_before(self, cutoff: datetime) -> int: ...


class AuditLog(Protocol):
    def append(self, event: AuditEvent) -> AuditRecord:
        """Appends under a lock on the chain head, so concurrent writers (replicas) cannot fork the chain."""
        ...

    def records(self, from_seq: int = 1) -> Iterator[AuditRecord]: ...
    def head(self) -> ChainHead | None: ...
    def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...
    def checkpoints(self, from_seq: int = 1) -> list[Checkpoint]:
        """Signed checkpoints kept in the store for records at or after `from_seq`, oldest first."""
        ...


class CheckpointAnchor(Protocol):
    """Where checkpoints are kept outside the database: an append-only file, an external log. Whoever can
    write the database must not be able to change what is already here."""

    def append(self, checkpoint: Checkpoint) -> None: ...
    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint anchored so far; raises InvalidInput if the anchor holds anything else."""
        ...


class ImageSealer(Protocol):
    """Encrypts face images (alert crops, reference images) for storage with keys the store never holds.
    `context` names the row ("alert:<id>"), so a sealed image moved to another row does not open."""

    def seal(self, plaintext: bytes, context: str) -> bytes: ...
    def open(self, stored: bytes, context: str) -> bytes:
        """Raises StoreUnavailable if it was altered, moved, or sealed under a key not held."""
        ...


# Signing and checking checkpoints (Ed25519 in lfr/adapters/signing.py).
CheckpointSigner = Signer
CheckpointKeyring = SignatureChecker


class CounterRepository(Protocol):
    """Counts are all that survive of the faces that did not match."""

    def increment(self, counts: dict[tuple[str, str, str], int]) -> None:
        """Adds counts keyed by (window id or "", camera id, outcome)."""
        ...

    def totals(self, window_id: str | None = None) -> dict[tuple[str, str, str], int]: ...


class PrincipalRepository(Protocol):
    def add(self, principal: Principal) -> None: ...
    def get(self, name: str) -> Principal: ...
    def update(self, principal: Principal) -> None: ...
    def all(self) -> list[Principal]: ...
    def set_token_hash(self, name: str, token_hash: str | None, expires_at: datetime | None = None) -> None:
        """Replaces the account's token (expiring at `expires_at`, or never); None leaves it with no working
        token. Raises NotFound."""
        ...

    def find_token(self, token_hash: str) -> Credentials | None: ...

    def find_by_token_hash(self, token_hash: str) -> Principal | None: ...
    def remove(self, name: str) -> None:
        """Deletes the account with its token and password. Raises NotFound."""
        ...

    def credentials(self) -> dict[str, Credentials]:
        """Every account with its current token's hash and expiry, by name."""
        ...

    def set_password_hash(self, name: str, password_hash: str) -> None: ...
    def password_hash(self, name: str) -> str | None: ...
    def end_sessions(self, name: str) -> int:
        """Bumps the session generation atomically, ending every session issued before; returns the new
        generation. Raises NotFound."""
        ...


class EvaluationRepository(Protocol):
    def add(self, summary: EvaluationSummary) -> None: ...
    def for_model(self, model_id: str) -> list[EvaluationSummary]:
        """Newest first."""
        ...


class UnitOfWork(Protocol):
    windows: WindowRepository
    watchlists: WatchlistRepository
    alerts: AlertRepository
    audit: AuditLog
    counters: CounterRepository
    principals: PrincipalRepository
    evaluations: EvaluationRepository

    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Rolls back anything not committed."""
        ...

    def commit(self) -> None: ...
    def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


class VectorIndex(Protocol):
    """An exact or approximate nearest-neighbour index over one sealed watchlist."""

    @property
    def size(self) -> int: ...
    @property
    def dimension(self) -> int: ...
    def search(self, queries: np.ndarray, k: int) -> list[tuple[Candidate, ...]]:
        """For each unit-norm query row, the top-k subjects by best inner product, best first."""
        ...

    @property
    def subjects(self) -> list[str]: ...
    def search_codes(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`search` as arrays (queries x k): subject codes (indexes into `subjects`, -1 pads) and scores,
        so a batch is decided without building candidates for the non-matches."""
        ...


class VectorIndexFactory(Protocol):
    def __call__(self, subject_of_row: Sequence[str], vectors: np.ndarray) -> VectorIndex: ...


class AlertPublisher(Protocol):
    def publish(self, alert: Alert) -> None:
        """Told only after the alert (new or changed) is durable. Must not block."""
        ...


class CropValidator(Protocol):
    def check_envelope(self, crop: bytes | bytearray) -> None:
        """Cheap checks for every observation (size, JPEG start and end markers); raises InvalidCrop."""
        ...

    def __call__(self, crop: bytes | bytearray) -> None:
        """Full check, decoding the image, for a crop that will be kept; raises InvalidCrop."""
        ...


class IngestMetrics(Protocol):
    def observed(self, camera_id: str, outcome: str, count: int = 1) -> None: ...
    def rejected(self, code: str, count: int = 1) -> None: ...
    def match_latency(self, seconds: float) -> None: ...
    def windows(self, armed: Mapping[str, bool], open_by_schedule: int, read_at: datetime | None) -> None:
        """The live windows (armed or not) after a refresh, how many an authorised schedule says are
        open now, and when the windows were last read (None: not read by this refresh)."""
        ...

    def windows_read_failed(self) -> None: ...

    def alert_raised(self, since_capture_seconds: float | None = None) -> None: ...
    def alert_adjudicated(self, outcome: str) -> None: ...
